"""The generic worker pool (jaxnas.workers) and the RMI estimator's use of it (issue 14):
workers run the parent's jaxnas whatever the current directory, a failing or dying worker is
a RuntimeError with its cause (never a BrokenPipeError), and workers ignore SIGINT."""

from __future__ import annotations

import importlib
import multiprocessing.process
import operator
import os
import signal
import sys
import time

import jax
import numpy as np
import pytest

import jaxnas.workers
from jaxnas.estimators.rmi import RMIEstimator
from jaxnas.workers import WorkerPool


@pytest.fixture
def bogus_cwd(tmp_path, monkeypatch):
    """A current directory holding another ``jaxnas`` package (one that raises on import),
    and ``''`` (the current directory) first on ``sys.path``, as under ``python -c``.
    (multiprocessing maps ``''`` to the directory it was first imported in: that is this
    one too here, as when the pool module is first imported after a ``chdir``.)"""
    pkg = tmp_path / "jaxnas"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('bogus jaxnas imported')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [""] + sys.path)
    monkeypatch.setattr(multiprocessing.process, "ORIGINAL_DIR", str(tmp_path))
    return tmp_path


def test_pool_maps_in_order_with_local_work():
    with WorkerPool(2, operator.add, (1, 2)) as pool:  # state 3 in every worker
        assert pool.map(operator.mul, [1, 2, 3, 4, 5]) == [3, 6, 9, 12, 15]
        assert pool.map(operator.mul, list(range(8)), local=lambda i: 3 * i) == [3 * i for i in range(8)]
        assert len(pool.workers) == 2
    assert pool.closed and pool.workers == []


def test_workers_import_the_parents_jaxnas_from_any_directory(bogus_cwd):
    with WorkerPool(1, importlib.import_module, ("jaxnas.workers",)) as pool:
        (path,) = pool.map(getattr, ["__file__"])
    assert path == jaxnas.workers.__file__


def test_failing_initializer_is_a_runtime_error_with_its_message():
    pool = WorkerPool(1, int, ("not a number",), name="RMI")
    with pytest.raises(RuntimeError, match=r"RMI worker process failed: .*ValueError.*not a number"):
        pool.map(operator.mul, [1, 2])
    assert pool.closed


def test_a_dying_worker_is_a_runtime_error():
    pool = WorkerPool(1, os.getpid, name="RMI")
    with pytest.raises(RuntimeError, match="RMI worker process failed: a worker process died"):
        pool.map(os.kill, [signal.SIGKILL, signal.SIGKILL])


def test_workers_ignore_sigint():
    with WorkerPool(1, os.getpid) as pool:
        pool.wait_ready()
        (pid,) = pool.workers
        os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert pool.map(operator.add, [0]) == [pid]  # fn(state, item) = pid + 0


SMALL = dict(C=4, N=1, steps=1)
ARCHS = np.array([[3, 2, 4, 1, 0, 3], [0, 4, 2, 3, 1, 2], [1, 1, 1, 1, 1, 1], [2, 3, 3, 4, 4, 0]])


def test_rmi_workers_from_a_folder_with_another_jaxnas(rmi_batch, bogus_cwd):
    """Issue 14: run from a folder that holds another ./jaxnas, workers still run the
    parent's code, and the scores are those of one process."""
    x, y, f = rmi_batch
    one = RMIEstimator(x, y, f, strategy="composed", workers=1, **SMALL)
    with RMIEstimator(x, y, f, strategy="composed", workers=2, **SMALL) as two:
        np.testing.assert_allclose(two.evaluate(jax.random.PRNGKey(4), ARCHS),
                                   one.evaluate(jax.random.PRNGKey(4), ARCHS), rtol=1e-6)


def test_rmi_worker_that_fails_to_start_is_a_runtime_error(rmi_batch):
    x, y, f = rmi_batch
    est = RMIEstimator(x, y, f, strategy="composed", workers=2, warmup=False, **SMALL)
    args = list(est._pool_args)
    args[3] = {**args[3], "stepz": 1}  # the worker's settings are refused
    est._pool_args = tuple(args)
    with pytest.raises(RuntimeError, match="RMI worker process failed: .*stepz"):
        est.evaluate(jax.random.PRNGKey(0), ARCHS)
    est.close()
