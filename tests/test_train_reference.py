"""`jaxnas train-reference`: trains a ResNet reference on a data-layer dataset and saves npz + JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxnas.cli import main
from jaxnas.data import channel_stats, load_digits_dataset, load_reference


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "digits_r20.npz"
    rc = main(["train-reference", "--dataset", "digits", "--epochs", "2", "--seed", "3",
               "--out", str(out)])
    assert rc == 0
    return out


def test_digits_reference_is_trained_saved_and_reloadable(digits_run, capfd):
    out = digits_run
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["dataset"] == "digits" and meta["num_classes"] == 10
    assert meta["settings"]["epochs"] == 2 and meta["settings"]["seed"] == 3
    assert meta["settings"]["augment"] == "none"
    assert meta["model"]["depth"] == 20 and len(meta["history"]) == 2
    # real learning on real data: far above the 10 % chance level after 2 epochs
    assert meta["test_accuracy"] > 0.8
    ds = load_digits_dataset(3)
    mean, std = channel_stats(ds.x_train)
    np.testing.assert_allclose(meta["normalisation"]["mean"], mean)
    np.testing.assert_allclose(meta["normalisation"]["std"], std)
    ref = load_reference(out)
    assert ref.mean == pytest.approx(mean) and ref.num_classes == 10
    assert ref.accuracy(ds.x_test, ds.y_test) == pytest.approx(meta["test_accuracy"], abs=1e-9)
    f1, f2, f3 = ref.features(ds.x_test[:5])
    assert f1.shape == (5, 8, 8, 16) and f2.shape == (5, 4, 4, 32) and f3.shape == (5, 2, 2, 64)


def test_same_seed_gives_the_same_weights_and_progress_is_shown(digits_run, tmp_path, capfd):
    capfd.readouterr()
    rc = main(["train-reference", "--dataset", "digits", "--epochs", "2", "--seed", "3",
               "--out", str(tmp_path)])
    assert rc == 0
    err = capfd.readouterr().err
    assert "train-reference digits" in err and "20/20" in err  # the tqdm bar (1347 // 128 * 2 steps)
    again = tmp_path / "digits_resnet20.npz"
    with np.load(digits_run) as a, np.load(again) as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_tfds_dataset_through_the_cli(tmp_path):
    """Any dataset the data layer loads: here MNIST via tfds.data_source under mock_data."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=64):
        rc = main(["train-reference", "--dataset", "mnist", "--source", "tfds", "--epochs", "1",
                   "--batch-size", "32", "--depth", "8", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    meta = json.loads((tmp_path / "mnist_resnet8.json").read_text())
    assert meta["data_source"] == "tfds:mnist" and meta["image_shape"] == [28, 28, 1]
    assert meta["settings"]["augment"] == "crop" and meta["settings"]["pad"] == 2
    assert 0.0 <= meta["test_accuracy"] <= 1.0
    assert load_reference(tmp_path / "mnist_resnet8.npz").model.depth == 8


@pytest.mark.parametrize("argv, code, msg", [
    (["--dataset", "imagenet"], 2, "unknown dataset 'imagenet'"),
    (["--epochs", "0"], 2, "epochs must be >= 1"),
    (["--depth", "21"], 2, "--depth must be 6n+2"),
    (["--dataset", "cifar100", "--source", "npz", "--data-dir", "{tmp}"], 1,
     "put cifar100_train*.npz"),
])
def test_bad_input_gives_one_clear_line(argv, code, msg, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["train-reference", "--no-progress", "--out", str(tmp_path), *argv]) == code
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_help_documents_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train-reference", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--epochs", "--dataset", "--out", "--seed", "--depth", "--augment", "--data-dir"):
        assert opt in text
