"""Scale-out (DESIGN.md "Population evaluation", convention 7; issue 14): the population
sharded over the 'pop' mesh gives the results of one device, and JAX's multi-process runtime
(``jax.distributed.initialize()``) runs a population evaluation over a mesh spanning two
processes. Both run in subprocesses, so the device counts are independent of this process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxnas.estimators.rmi import RMIEstimator
from tests.conftest import REPO

# The 'mask' configuration of tests/test_rmi.py::test_mask_strategy_is_traceable (C=4, N=1,
# 2 steps, the real batch, these 3 members with #1 disconnected), so that the in-process
# 1-device run reuses that test's compiled program; on 8 devices they are padded to 8.
MASK = dict(strategy="mask", C=4, N=1, steps=2)
ARCHS = np.array([[3, 2, 4, 1, 0, 3], [3, 3, 3, 0, 0, 0], [0, 4, 2, 3, 1, 2]])

_RMI_SCRIPT = """
import json, sys, numpy as np, jax
from jaxnas.estimators.rmi import RMIEstimator
d = np.load(sys.argv[1])
assert len(jax.devices()) == 8 and jax.default_backend() == "cpu", jax.devices()
est = RMIEstimator(d["x"], d["y"], [d["f0"], d["f1"], d["f2"]], **json.loads(sys.argv[3]))
assert est.loopsafe, "the CPU default (loop-safe conv VJPs) is what this test checks"
key = jax.random.PRNGKey(5)
np.savez(sys.argv[2], scores=np.asarray(est.evaluate(key, d["archs"])),
         trajectory=est.trajectory(key, d["archs"]))
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    # the checkout under test first, whatever jaxnas is installed
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    return {**env, "JAX_PLATFORMS": "cpu", **extra}


def _wait(procs, timeout):
    outs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, f"subprocess failed (exit {p.returncode}):\n{out[-3000:]}"
    return outs


def test_one_device_equals_eight_devices(rmi_batch, tmp_path):
    """RMI 'mask' with its CPU defaults (loop-safe convolution VJPs, members mapped with
    lax.map): 3 members padded to 8 and sharded over 8 host devices (a subprocess with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=8``) give the scores and the whole loss
    trajectories of one device (this process). Issue 14: the 8-device run crashed with
    'Custom VJP bwd rule must produce an output with the same type ...'."""
    if len(jax.devices()) != 1 or jax.default_backend() != "cpu":
        pytest.skip(f"the 1-device reference runs in this process, which has {jax.devices()}")
    x, y, f = rmi_batch
    np.savez(tmp_path / "in.npz", x=x, y=y, f0=f[0], f1=f[1], f2=f[2], archs=ARCHS)
    eight_run = subprocess.Popen(
        [sys.executable, "-c", _RMI_SCRIPT, str(tmp_path / "in.npz"), str(tmp_path / "out.npz"),
         json.dumps(MASK)],
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:  # meanwhile, one device here
        est = RMIEstimator(x, y, f, **MASK)
        assert est.loopsafe
        key = jax.random.PRNGKey(5)
        one = {"scores": np.asarray(est.evaluate(key, ARCHS)),
               "trajectory": est.trajectory(key, ARCHS)}
    except BaseException:
        eight_run.kill()
        eight_run.wait()
        raise
    _wait([eight_run], timeout=600)
    eight = np.load(tmp_path / "out.npz")
    assert eight["scores"].shape == (3,) and eight["trajectory"].shape == (3, 3)
    assert np.all(np.isfinite(one["scores"]))
    np.testing.assert_allclose(eight["trajectory"], one["trajectory"], rtol=1e-6, atol=0)
    np.testing.assert_allclose(eight["scores"], one["scores"], rtol=1e-6, atol=0)


_DIST_SCRIPT = """
import sys, numpy as np, jax
port, pid = sys.argv[1], int(sys.argv[2])
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=pid, initialization_timeout=60)
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import PartitionSpec as P
from jaxnas import parallel
from jaxnas.bench import BenchTable
from jaxnas.estimators import TableEstimator
from jaxnas.spaces import nb201

assert jax.process_count() == 2 and jax.process_index() == pid
assert jax.local_device_count() == 2 and jax.device_count() == 4, jax.devices()
mesh = parallel.pop_mesh()  # all 4 devices of both processes
assert {d.process_index for d in mesh.devices.flat} == {0, 1}

# the same population on every process (same key); 6 members padded to 8
codes = nb201.sample(jax.random.PRNGKey(0), 6)
table = BenchTable(["cifar10_test_acc"], (np.arange(nb201.NUM_ARCHS) % 97)[:, None].astype(np.float32))
est = TableEstimator(table, "cifar10_test_acc")
padded, mask = parallel.pad_population(codes, jax.device_count())
sharded = parallel.shard_population(padded, mesh)

def local(c):
    s = est.evaluate(None, c)  # this device's members
    return s, jax.lax.psum(jnp.sum(s), parallel.AXIS)

scores, total = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P(parallel.AXIS),
                                      out_specs=(P(parallel.AXIS), P())))(sharded)
scores = np.asarray(multihost_utils.process_allgather(scores, tiled=True))
want = 100.0 - (np.asarray(nb201.index(np.asarray(padded))) % 97)
np.testing.assert_array_equal(scores, want.astype(np.float32))
assert float(total) == float(want.sum()), (float(total), float(want.sum()))
assert np.asarray(mask).sum() == 6
jax.distributed.shutdown()
import jaxnas
print(f"process {pid}: ok, {jax.device_count()} devices, total {float(total)}, {jaxnas.__file__}")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_evaluate_one_population_over_a_global_mesh():
    """Two processes on localhost, 2 CPU devices each, joined by
    ``jax.distributed.initialize(coordinator_address, num_processes, process_id)``: the
    'pop' mesh spans all 4 devices, a population (padded to 8) is sharded over it, each
    device scores its members (a table estimator) and a psum crosses processes (JAX's CPU
    collectives, gloo). Every process checks the gathered scores and the sum. (The programs
    are tiny, so both processes reach the collective well within gloo's 30 s set-up timeout.)"""
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, "-c", _DIST_SCRIPT, str(port), str(pid)],
                         env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for pid in (0, 1)
    ]
    outs = _wait(procs, timeout=120)
    for pid, out in enumerate(outs):
        assert f"process {pid}: ok, 4 devices" in out, out[-3000:]
        assert str(REPO / "jaxnas") in out, out[-3000:]  # the checkout under test


def supernet_case() -> np.ndarray:
    """Accuracies of 5 alphas under a tiny NB201 supernet trained 3 steps (seeded), with
    running and with train-mode BN; run on however many devices this process has."""
    from jaxnas.nets import supernet_train as st
    from jaxnas.nets.supernet import NB201Supernet
    from jaxnas.spaces import nb201

    model = NB201Supernet(C=4, N=1)
    opt = st.make_optimizer(2, 4)
    state = st.init_supernet(jax.random.PRNGKey(0), model, opt, (8, 8, 3))
    step = st.make_train_step(model, opt)
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 8, 8, 3))
    y = jax.numpy.arange(64, dtype=jax.numpy.int32) % 10
    alphas = nb201.discretize(jax.random.uniform(jax.random.PRNGKey(2), (5, 6, 5)))
    for i in range(3):
        w, o, b, _ = step(state.weights, state.opt_state, state.batch_stats, alphas[i],
                          (x[16 * i:16 * i + 16], y[16 * i:16 * i + 16]))
        state = st.SupernetState(w, o, b)
    return np.stack([np.asarray(st.make_population_eval(model, chunk=16, bn=bn)(
        state.weights, state.batch_stats, alphas, x, y)) for bn in ("running", "batch")])


def test_supernet_population_eval_one_device_equals_eight_devices(tmp_path):
    """The supernet's population evaluation sharded on the 'pop' mesh of 8 host devices (5
    members padded to 8) gives one device's accuracies exactly (issue 11)."""
    if len(jax.devices()) != 1 or jax.default_backend() != "cpu":
        pytest.skip(f"the 1-device reference runs in this process, which has {jax.devices()}")
    script = ("import sys, jax, numpy as np\nassert len(jax.devices()) == 8, jax.devices()\n"
              "from tests.test_scale_out import supernet_case\n"
              "np.save(sys.argv[1], supernet_case())\n")
    out = tmp_path / "eight.npy"
    eight_run = subprocess.Popen([sys.executable, "-c", script, str(out)], cwd=REPO,
                                 env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        one = supernet_case()
    except BaseException:
        eight_run.kill()
        eight_run.wait()
        raise
    _wait([eight_run], timeout=600)
    eight = np.load(out)
    assert one.shape == (2, 5) and len(np.unique(one)) > 1, one
    np.testing.assert_array_equal(eight, one)
