"""CIFAR ResNet-20 reference: pretrained accuracy on the real test set, PyTorch oracle, loader errors."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.data import (
    load_dataset,
    load_reference,
    pretrained_cifar10_resnet20,
    reference_for_dataset,
    select_lowest_loss_batch,
)
from jaxnas.nets.resnet import (
    CifarResNet,
    ResNet20,
    load_resnet20,
    state_dict_from_variables,
    variables_from_state_dict,
)
from tests.conftest import require_data

# PROVENANCE.md / resnet20_cifar10.md: 91.73 % on the 10,000 PNG-derived test images, per class:
PER_CLASS = np.array([92.0, 96.8, 87.6, 83.2, 91.7, 86.3, 94.2, 94.5, 95.3, 95.7])
STATED = 91.73


@pytest.fixture(scope="module")
def ref():
    root = require_data("resnet20_cifar10.npz")
    return pretrained_cifar10_resnet20(root)


@pytest.fixture(scope="module")
def cifar_test():
    root = require_data("cifar10/cifar10_test.npz")
    return load_dataset("cifar10", root=root, splits=("test",))


def test_pretrained_resnet20_reproduces_the_stated_test_accuracy(ref, cifar_test, capsys):
    """The full 10k test set, batched, compiled once (~10-20 s on the 2-core CPU)."""
    t0 = time.perf_counter()
    pred = ref.predict(cifar_test.x_test, batch_size=500)
    dt = time.perf_counter() - t0
    acc = 100.0 * np.mean(pred == cifar_test.y_test)
    per_class = np.array([100.0 * np.mean(pred[cifar_test.y_test == c] == c) for c in range(10)])
    with capsys.disabled():
        print(f"\n[resnet20] CIFAR-10 test accuracy {acc:.2f} % (stated {STATED} %), "
              f"10,000 images in {dt:.1f} s; per class {np.round(per_class, 1).tolist()}")
    assert abs(acc - STATED) <= 0.2
    np.testing.assert_allclose(per_class, PER_CLASS, atol=0.15)


def test_feature_shapes_and_named_loader(ref, cifar_test):
    (f1, f2, f3), logits = ref(cifar_test.x_test[:4])
    assert f1.shape == (4, 32, 32, 16) and f2.shape == (4, 16, 16, 32) and f3.shape == (4, 8, 8, 64)
    assert logits.shape == (4, 10)
    assert ref.mean == (0.485, 0.456, 0.406) and ref.std == (0.229, 0.224, 0.225)
    # raw uint8 == float [0,1] == pre-normalised input
    a = ref.logits(cifar_test.x_test[:4])
    b = ref.logits(cifar_test.x_test[:4].astype(np.float32) / 255)
    c = ref.logits(ref.normalise(cifar_test.x_test[:4]), normalised=True)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)
    for f, g in zip(ref.features(cifar_test.x_test[:4]), (f1, f2, f3)):
        np.testing.assert_array_equal(f, g)
    root = require_data("resnet20_cifar10.npz")
    for spec in ("cifar10_resnet20", root / "resnet20_cifar10.npz"):
        other = load_reference(spec, root=root)
        assert other.mean == ref.mean and other.std == ref.std
        # a batch of 2 against rows of a batch of 4: other kernel blocking, float32 rounding of
        # logits ~10 (one ulp ~1e-6; 1.9e-6 seen on some CPUs), as the checks above
        np.testing.assert_allclose(other.logits(cifar_test.x_test[:2]), a[:2], atol=1e-5)


def test_selected_batch_on_real_cifar10_is_confidently_classified(ref):
    root = require_data("cifar10/cifar10_train_part0.npz")
    with np.load(root / "cifar10" / "cifar10_train_part0.npz") as z:
        x, y = z["x"], z["y"]
    xb, yb, info = select_lowest_loss_batch(jax.random.key(0), x, y, ref, return_details=True)
    assert xb.shape == (32, 32, 32, 3) and yb.shape == (32,)
    assert np.all(np.argmax(ref.logits(xb, normalised=True), -1) == yb)
    assert float(np.max(info["loss"])) <= float(np.median(info["pool_loss"]))


# ------------------------------------------------------------------------------- PyTorch oracle


def _torch_resnet20(sd, train=False):
    """akamaster's resnet20 forward written with torch.nn.functional (independent of flax)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = {k: torch.from_numpy(v) for k, v in sd.items()}

    def bn(x, p):
        return F.batch_norm(x, t[p + ".running_mean"].clone(), t[p + ".running_var"].clone(),
                            t[p + ".weight"], t[p + ".bias"], training=train, momentum=0.1, eps=1e-5)

    def forward(x):
        out = F.relu(bn(F.conv2d(x, t["conv1.weight"], padding=1), "bn1"))
        feats = []
        for s, planes in enumerate((16, 32, 64)):
            for b in range(3):
                p = f"layer{s + 1}.{b}"
                stride = 2 if s > 0 and b == 0 else 1
                o = F.relu(bn(F.conv2d(out, t[p + ".conv1.weight"], stride=stride, padding=1), p + ".bn1"))
                o = bn(F.conv2d(o, t[p + ".conv2.weight"], padding=1), p + ".bn2")
                if stride != 1 or out.shape[1] != planes:
                    sc = F.pad(out[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
                else:
                    sc = out
                out = F.relu(o + sc)
            feats.append(out)
        logits = F.linear(F.avg_pool2d(out, out.size()[3]).view(out.size(0), -1),
                          t["linear.weight"], t["linear.bias"])
        return feats, logits

    return forward


@pytest.mark.parametrize("train", [False, True])
def test_forward_matches_pytorch_functional_oracle(ref, cifar_test, train):
    torch = pytest.importorskip("torch")
    sd = state_dict_from_variables(ref.variables, ref.model)
    xn = np.asarray(ref.normalise(cifar_test.x_test[:8]))
    with torch.no_grad():
        tf, tl = _torch_resnet20(sd, train)(torch.from_numpy(xn.transpose(0, 3, 1, 2).copy()))
    if train:
        (jf, jl), _ = ref.model.apply(ref.variables, xn, train=True, mutable=["batch_stats"])
    else:
        jf, jl = ref.apply(xn)
    np.testing.assert_allclose(jl, tl.numpy(), rtol=1e-4, atol=1e-4)
    for a, b in zip(jf, tf):
        np.testing.assert_allclose(a, b.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def test_state_dict_round_trip_and_depth_inference(tmp_path):
    m = CifarResNet(depth=32, num_classes=7)
    v = m.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
    sd = state_dict_from_variables(v, m)
    assert sd["conv1.weight"].shape == (16, 1, 3, 3) and sd["linear.weight"].shape == (7, 64)
    assert "layer3.4.bn2.running_var" in sd
    v2 = variables_from_state_dict(sd, m)
    for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(v2)):
        np.testing.assert_array_equal(a, b)
    np.savez(tmp_path / "r32.npz", **sd)
    m3, v3 = load_resnet20(tmp_path / "r32.npz")
    assert m3.depth == 32 and m3.num_classes == 7
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 1))
    np.testing.assert_allclose(m3.apply(v3, x)[1], m.apply(v, x)[1], atol=1e-6)


def test_loader_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="resnet20_cifar10.npz"):
        load_resnet20(tmp_path / "missing.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="corrupt.npz.*corrupt or not an .npz"):
        load_resnet20(tmp_path / "corrupt.npz")
    m = ResNet20()
    sd = state_dict_from_variables(m.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))), m)
    del sd["layer2.1.bn1.running_var"]
    np.savez(tmp_path / "partial.npz", **sd)
    with pytest.raises(ValueError, match="partial.npz.*layer2.1.bn1.running_var"):
        load_resnet20(tmp_path / "partial.npz")
    sd = state_dict_from_variables(m.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))), m)
    sd["layer1.0.conv2.weight"] = sd["layer1.0.conv2.weight"][:, :8]
    np.savez(tmp_path / "shape.npz", **sd)
    with pytest.raises(ValueError, match="shape.npz.*layer1_0.*conv2.*expected"):
        load_resnet20(tmp_path / "shape.npz")
    with pytest.raises(ValueError, match="unknown reference 'resnet1000'"):
        load_reference("resnet1000")
    with pytest.raises(FileNotFoundError, match="sidecar partial.json"):
        load_reference(tmp_path / "partial.npz")
    with pytest.raises(FileNotFoundError, match="train-reference --dataset cifar100"):
        reference_for_dataset("cifar100", cache=tmp_path)


def test_pytorch_default_and_kaiming_initialisation():
    """Init stats of PyTorch's defaults: U(+-1/sqrt(fan_in)) (kaiming_uniform a=sqrt5), or kaiming_normal."""
    torch = pytest.importorskip("torch")
    x = jnp.zeros((1, 32, 32, 3))
    v = ResNet20().init(jax.random.key(0), x)["params"]
    w = np.asarray(v["layer3_1"]["conv1"]["kernel"])  # fan_in 64*9
    tw = torch.nn.Conv2d(64, 64, 3, bias=False).weight.detach().numpy()
    bound = 1 / np.sqrt(64 * 9)
    assert np.abs(w).max() <= bound and np.abs(tw).max() <= bound
    np.testing.assert_allclose(w.std(), tw.std(), rtol=0.05)
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.05)
    lb = np.asarray(v["linear"]["bias"])
    assert np.abs(lb).max() <= 1 / 8 and np.abs(lb).max() > 0
    vk = ResNet20(init_scheme="kaiming_normal").init(jax.random.key(0), x)["params"]
    np.testing.assert_allclose(np.asarray(vk["layer3_1"]["conv1"]["kernel"]).std(),
                               np.sqrt(2 / (64 * 9)), rtol=0.05)
    # BN: weight 1, bias 0 as in PyTorch
    np.testing.assert_array_equal(v["bn1"]["scale"], 1.0)
    np.testing.assert_array_equal(v["bn1"]["bias"], 0.0)
    with pytest.raises(ValueError, match="unknown init"):
        ResNet20(init_scheme="xavier").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(depth=21).init(jax.random.key(0), x)
