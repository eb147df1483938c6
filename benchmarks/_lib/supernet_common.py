"""Helpers shared by the supernet benchmarks (not a benchmark script)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from jaxnas.data import load_npz_split
from jaxnas.data.search import CIFAR10_MEAN, CIFAR10_STD, normalise_np


def data_dir() -> str:
    env = os.environ.get("JAXNAS_DATA_DIR")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def load_cifar10(root, n: int, seed: int = 0):
    """``n`` seeded CIFAR-10 training images (normalised float32 NHWC) and int32 labels."""
    x, y = load_npz_split(os.path.join(root, "cifar10", "cifar10_train_part0.npz"))
    idx = np.random.default_rng(seed).permutation(len(y))[:n]
    return normalise_np(x[idx], CIFAR10_MEAN, CIFAR10_STD), y[idx].astype(np.int32)


class PeakRSS:
    """Peak resident set size of this process during a block (VmHWM, reset on entry)."""

    def __enter__(self):
        try:
            with open(f"/proc/{os.getpid()}/clear_refs", "w") as fh:
                fh.write("5")
            self.ok = True
        except OSError:
            self.ok = False
            self._max, self._stop = 0, False
            self._t = threading.Thread(target=self._poll, daemon=True)
            self._t.start()
        return self

    def _rss(self, key):
        try:
            with open(f"/proc/{os.getpid()}/status") as fh:
                for line in fh:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _poll(self):
        while not self._stop:
            self._max = max(self._max, self._rss("VmRSS:"))
            time.sleep(0.01)

    def __exit__(self, *exc):
        if self.ok:
            self.peak = self._rss("VmHWM:")
        else:
            self._stop = True
            self._t.join()
            self.peak = self._max
