"""RMI estimator: representation similarity to a reference after one-batch training.

METHODS.md 5.1 (RMI-NAS, CVPR'22; the proxy of HW-EvRSNAS / MO-HDNAS). For each candidate
NB201 architecture a fresh TinyNetwork (PyTorch default init) is trained in train mode on one
fixed selected batch (X, y) with SGD (lr 0.1, momentum 0.9, weight decay 5e-4) on

    L = beta * sum_{i=1..3} (1 - CKA(F_i, F^T_i)) + (1 - beta) * CE(logits, y),   beta = 0.8

where F_i are the candidate's three stage features and F^T_i the reference's. The score is
the loss of forward index ``steps`` (150): the loss computed by the 151st forward, before
that step's update. Lower is better. NaN becomes +inf. A disconnected cell (no path from
input to output) is not trained: it gets the finite worst score ``beta * 3 + (1 - beta) *
log(num_classes)`` -- CKA 0 at every stage and chance-level cross-entropy.

Population evaluation strategies (DESIGN.md "Population evaluation: the performance core";
numbers in benchmarks/README.md):

* ``'mask'`` (:mod:`.mask`): every edge computes all ops, mixed by the one-hot genome; the
  whole training loop is one jitted function vmapped over the population. Compiles once per
  population size; it is traceable and is the natural GPU/TPU path.
* ``'composed'`` (:mod:`.composed`): op-level jitted units (a fused ReLU-conv-BN forward, its
  backward with the SGD update fused in, re-expressed pooling, a fused loss head) composed
  per member in Python, running only the chosen ops. Every unit compiles once per shape --
  never per architecture -- and all of them are compiled when the estimator is built. XLA:CPU
  runs one computation at a time per process, so members are trained in parallel by
  ``workers`` processes (:class:`jaxnas.workers.WorkerPool`; default one per core), handed out
  one at a time, largest first. This is the CPU path.

``strategy='auto'`` picks per backend by measurement: ``'composed'`` on CPU, ``'mask'``
elsewhere. A "grouped" strategy (members that chose the same op at an edge run as one batched
call) was measured on this CPU and not kept: batched per-member convolutions are grouped
convolutions, which XLA:CPU runs 4-10x slower, and multi-member units were no faster than
separate calls (a development measurement; not recorded in benchmarks/README.md).

Modules: :mod:`.loss` (teacher Grams, the loss, :func:`worst_score`, SGD), :mod:`.mask`,
:mod:`.composed`, :mod:`.estimator` (:class:`RMIEstimator`). Settings: one class,
:class:`jaxnas.config.RMISettings`. The numerical core does no file I/O: the selected batch and
the reference features come in as arrays (:func:`jaxnas.data.prepare_rmi_batch`).
"""

from jaxnas.estimators.rmi.estimator import (
    STRATEGIES,
    RMIEstimator,
    default_strategy,
    default_workers,
    merge_settings,
)
from jaxnas.estimators.rmi.loss import (
    CPU_COMPILER_OPTIONS,
    hparams,
    rmi_loss,
    teacher_grams,
    worst_score,
)

__all__ = [
    "CPU_COMPILER_OPTIONS",
    "RMIEstimator",
    "STRATEGIES",
    "default_strategy",
    "default_workers",
    "hparams",
    "rmi_loss",
    "merge_settings",
    "teacher_grams",
    "worst_score",
]
