"""Where data is found (DESIGN.md "Where data is found"; issue 14 item 7): one resolver for
the dataset, reference and benchmark-table loaders and for the tests, and missing-data
errors that say what to get and where to put it."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from jaxnas import _paths
from jaxnas.bench import load_table
from jaxnas.data import default_data_dir, load_dataset
from tests import conftest


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A fake source checkout ``<tmp>/repo`` (jaxnas runs from it) beside ``<tmp>/shared``,
    with $JAXNAS_DATA_DIR unset and a private user cache."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("")
    monkeypatch.setattr(_paths, "PACKAGE_PARENT", repo)
    monkeypatch.delenv("JAXNAS_DATA_DIR", raising=False)
    monkeypatch.setenv("JAXNAS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_env_var_wins_even_over_an_existing_checkout_folder(checkout, monkeypatch):
    (checkout / "shared" / "data").mkdir(parents=True)
    monkeypatch.setenv("JAXNAS_DATA_DIR", str(checkout / "mine"))
    assert _paths.data_dir() == checkout / "mine"  # used as given, even before it exists
    assert default_data_dir() == conftest.shared_data_dir() == checkout / "mine"
    assert "from $JAXNAS_DATA_DIR" in _paths.describe_data_dir()


def test_checkout_fallback_only_when_the_folder_exists(checkout):
    user = checkout / "cache" / "data"
    assert _paths.checkout_data_dir() is None
    assert _paths.data_dir() == default_data_dir() == conftest.shared_data_dir() == user
    assert "the default; $JAXNAS_DATA_DIR is not set" in _paths.describe_data_dir()
    (checkout / "shared" / "data").mkdir(parents=True)
    assert _paths.data_dir() == default_data_dir() == conftest.shared_data_dir() \
        == checkout / "shared" / "data"
    assert "../shared/data" in _paths.describe_data_dir()


def test_no_fallback_outside_a_source_checkout(checkout):
    """An installed package (no pyproject.toml beside it) never looks in ../shared/data."""
    (checkout / "shared" / "data").mkdir(parents=True)
    (checkout / "repo" / "pyproject.toml").unlink()
    assert _paths.data_dir() == checkout / "cache" / "data"


def _small_csv(path, column, values):
    rows = [f"{i},{v!r}" for i, v in values.items()]
    with gzip.open(path, "wt") as f:
        f.write(f"arch_index,{column}\n" + "\n".join(rows) + "\n")


def test_load_table_without_a_path_reads_the_checkout_fallback(checkout):
    data = checkout / "shared" / "data"
    data.mkdir(parents=True)
    _small_csv(data / "nb201_accuracy.csv.gz", "cifar10_test_acc", {0: 85.5, 7: 91.25})
    t = load_table()
    assert t.columns == ("cifar10_test_acc",) and t.sources["cifar10_test_acc"] == "nb201_accuracy.csv.gz"
    assert t.numpy("cifar10_test_acc")[7] == np.float32(91.25) and t.count("cifar10_test_acc") == 2


def test_missing_data_messages_say_what_to_get_and_where(checkout):
    """No data anywhere: one line each, naming the folder looked in and what to put there."""
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("cifar10", source="npz")
    msg = str(e.value)
    assert "\n" not in msg
    assert str(checkout / "cache" / "data" / "cifar10") in msg  # where to put it
    assert "cifar10_train*.npz" in msg and "tfds build cifar10" in msg  # what to get
    with pytest.raises(FileNotFoundError) as e:
        load_table()
    msg = str(e.value)
    assert "\n" not in msg and str(checkout / "cache" / "data") in msg
    assert "JAXNAS_DATA_DIR is not set" in msg and "nb201_accuracy.csv.gz" in msg
    assert "github.com/GATECH-EIC/HW-NAS-Bench" in msg and "jaxnas table import" in msg


def test_the_real_checkout_resolves_to_the_shared_folder_tests_use(monkeypatch):
    """In this checkout, without $JAXNAS_DATA_DIR, the library finds what the tests find."""
    monkeypatch.delenv("JAXNAS_DATA_DIR", raising=False)
    shared = conftest.REPO.parent / "shared" / "data"
    if _paths.PACKAGE_PARENT != conftest.REPO or not shared.is_dir():
        pytest.skip(f"jaxnas is not imported from {conftest.REPO}, or there is no {shared}")
    assert _paths.data_dir() == conftest.shared_data_dir() == shared
