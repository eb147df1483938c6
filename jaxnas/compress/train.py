"""Training, pruning and the beta x sparsity sweep (numerical only: no file I/O, no printing).

One jitted train step per model kind (beta-VAE or control) serves every beta, seed, mask and
pruning step of a sweep: beta and the classification weight are traced arguments and the masks
are an argument, so nothing recompiles between runs. The step is a plain ``jax.jit`` called
from a Python loop over batches (no ``lax.scan``: on XLA:CPU convolution gradients inside loops
are slow, DESIGN.md). Runs of different seeds and betas go one after another in one process.

Progress is reported through ``on_event(kind, **info)``: ``kind`` is ``'step'`` after every
train/fine-tune step (``n`` steps done), ``'stage'`` when a stage begins (``model``, ``seed``,
``what``) and ``'row'`` with each finished sweep row.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.compress.config import CompressConfig
from jaxnas.compress.data import StudyData
from jaxnas.compress.diagnostics import latent_summary, traversal_grid
from jaxnas.compress.loss import vae_loss
from jaxnas.compress.model import BetaVAE
from jaxnas.compress.pruning import (
    apply_masks,
    count_params,
    flops,
    global_magnitude_masks,
    masked_optimizer,
    ones_masks,
    prune,
    sparsity,
    sparsity_path,
)

__all__ = ["Trainer", "accuracy", "get_trainer", "model_label", "planned_steps", "prune_and_finetune",
           "run_model", "run_sweep"]


def model_label(beta: float | None) -> str:
    """``'control'`` for the plain classifier, else ``'beta=<beta>'``."""
    return "control" if beta is None else f"beta={beta:g}"


class Trainer:
    """A model with its jitted train and eval steps (compiled once, reused everywhere).

    Args:
      model: a :class:`BetaVAE` (``vae=False`` for the control).
      lr: Adam learning rate. recon: reconstruction likelihood.
    """

    def __init__(self, model: BetaVAE, lr: float = 1e-3, recon: str = "bernoulli"):
        self.model = model
        self.recon = recon
        shapes = jax.eval_shape(self._init, jax.random.key(0))
        self.tx = masked_optimizer(optax.adam(lr), shapes)

        def loss_fn(params, masks, x, y, key, beta, cls_weight):
            out = model.apply({"params": apply_masks(params, masks)}, x, key if model.vae else None)
            return vae_loss(out, x, y, beta, cls_weight, recon)

        def step(params, opt_state, masks, x, y, key, beta, cls_weight):
            (loss, m), g = jax.value_and_grad(loss_fn, has_aux=True)(
                params, masks, x, y, key, beta, cls_weight)
            updates, opt_state = self.tx.update(g, opt_state, params, masks=masks)
            return optax.apply_updates(params, updates), opt_state, {**m, "loss": loss}

        def predict(params, x):
            mu, _ = model.apply({"params": params}, x, method=model.encode)
            return jnp.argmax(model.apply({"params": params}, mu, method=model.classify), -1)

        self.step = jax.jit(step)
        self.predict = jax.jit(predict)

    def _init(self, key):
        x = jnp.zeros((1, *self.model.image_shape), jnp.float32)
        return self.model.init({"params": key}, x, jax.random.key(0))["params"]

    def init(self, key):
        """Fresh parameters from ``key`` (jitted: one compile instead of one per op)."""
        if not hasattr(self, "_init_jit"):
            self._init_jit = jax.jit(self._init)
        return self._init_jit(key)

    def fit(self, key, params, masks, x, y, steps: int, batch_size: int, beta: float,
            cls_weight: float, on_step: Callable[[], None] | None = None):
        """``steps`` Adam steps from a fresh optimiser state on shuffled batches (each epoch a
        new seeded permutation; the last partial batch is dropped). Returns (params, metrics of
        the last step as floats)."""
        opt_state = self.tx.init(params)
        masks = jax.device_put(masks)  # once, not at every step
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
        n = len(y)
        b = min(batch_size, n)
        per_epoch = n // b
        order = rng.permutation(n)
        beta_a, w_a = jnp.float32(beta), jnp.float32(cls_weight)
        m = {}
        for s in range(steps):
            i = s % per_epoch
            if s and i == 0:
                order = rng.permutation(n)
            idx = order[i * b:(i + 1) * b]
            params, opt_state, m = self.step(params, opt_state, masks, x[idx], y[idx],
                                             jax.random.fold_in(key, s), beta_a, w_a)
            if on_step is not None:
                on_step()
        return params, {k: float(v) for k, v in m.items()}


@functools.lru_cache(maxsize=16)
def get_trainer(model: BetaVAE, lr: float, recon: str) -> Trainer:
    """A :class:`Trainer`, cached per (model, lr, recon), so repeated sweeps in one process
    (tests, notebooks) reuse the compiled steps."""
    return Trainer(model, lr, recon)


def accuracy(trainer: Trainer, params, x, y, batch: int = 1000) -> float:
    """Test accuracy (fraction) of classify(mu(x)) with the given (masked) params."""
    correct = 0
    for i in range(0, len(y), batch):
        correct += int(jnp.sum(trainer.predict(params, x[i:i + batch]) == y[i:i + batch]))
    return correct / len(y)


def prune_and_finetune(key, trainer: Trainer, params, target: float, cfg: CompressConfig,
                       x, y, beta: float, on_step=None, on_prune_step=None):
    """Prune ``params`` (the trained dense network) to ``target`` with the configured schedule,
    fine-tuning ``cfg.finetune_steps`` after each step. Sparsity 0 is fine-tuned too, so every
    row of a sweep has had the same number of training steps (extra training alone must not
    look like a benefit of pruning).

    ``on_prune_step(k, sparsity, params_before_finetune, params_after)`` is called after each
    step (the sweep measures accuracy, parameters and FLOPs there). Returns (params, masks,
    info: the sparsity path and the params right after the last pruning step, before its
    fine-tuning)."""
    masks = ones_masks(params)
    path = sparsity_path(target, cfg.schedule, cfg.iterative_steps)
    before_ft = params
    for k, s in enumerate(path):
        masks = global_magnitude_masks(params, s, cfg.prune_scope,
                                       masks if cfg.schedule == "iterative" else None)
        params = prune(params, masks)
        before_ft = params
        if cfg.finetune_steps:
            params, _ = trainer.fit(jax.random.fold_in(key, k), params, masks, x, y,
                                    cfg.finetune_steps, cfg.batch_size, beta if beta else 0.0,
                                    cfg.cls_weight, on_step)
        if on_prune_step is not None:
            on_prune_step(k, s, before_ft, params)
    return params, masks, {"path": path, "before_finetune": before_ft}


def planned_steps(cfg: CompressConfig, n_train: int) -> int:
    """Total train + fine-tune steps of a sweep (for a progress bar)."""
    per_epoch = n_train // min(cfg.batch_size, n_train)
    ft = sum(len(sparsity_path(s, cfg.schedule, cfg.iterative_steps)) * cfg.finetune_steps
             for s in cfg.sparsities)
    models = len(cfg.betas) + int(cfg.control)
    return len(cfg.seeds) * models * (cfg.epochs * per_epoch + ft)


def run_model(seed: int, beta: float | None, trainer: Trainer, cfg: CompressConfig,
              data: StudyData, on_event=None) -> dict:
    """Train one model (``beta=None``: the control) from ``seed``, take its diagnostics, and
    prune it to every sparsity of the config. Returns {'rows', 'diagnostics', 'params'}."""
    ev = on_event or (lambda kind, **info: None)
    label = model_label(beta)
    key = jax.random.fold_in(jax.random.key(seed), 0 if beta is None else 1)
    k_init, k_train, k_prune, k_diag = jax.random.split(key, 4)
    params = trainer.init(k_init)
    ev("stage", model=label, seed=seed, what="train")
    t0 = time.perf_counter()
    steps = cfg.epochs * (len(data.y_train) // min(cfg.batch_size, len(data.y_train)))
    tick = lambda: ev("step", n=1)
    params, last = trainer.fit(k_train, params, ones_masks(params), data.x_train, data.y_train,
                               steps, cfg.batch_size, beta or 0.0, cfg.cls_weight, tick)
    train_s = time.perf_counter() - t0
    diag = {"model": label, "beta": beta, "seed": seed, "train_seconds": train_s,
            "train_steps": steps, "final_train_metrics": last}
    if trainer.model.vae:
        xd = data.x_test[:cfg.diag_images]
        diag.update(latent_summary(k_diag, trainer.model, params, xd, cfg.active_threshold))
    dense_flops = flops(params, trainer.model)
    rows, steps_log = [], []
    for target in cfg.sparsities:
        ev("stage", model=label, seed=seed, what=f"prune {target:.0%}")
        accs = {}

        def record(k, s, before, after, target=target, accs=accs):
            accs[k] = (accuracy(trainer, after, data.x_test, data.y_test),
                       accuracy(trainer, before, data.x_test, data.y_test)
                       if cfg.finetune_steps else None)
            steps_log.append({"model": label, "seed": seed, "target_sparsity": float(target),
                              "step": k + 1, "sparsity": sparsity(after, cfg.prune_scope),
                              "accuracy": accs[k][0], "accuracy_before_finetune": accs[k][1],
                              **count_params(after), "flops": flops(after, trainer.model)})

        pruned, _, info = prune_and_finetune(jax.random.fold_in(k_prune, int(target * 1e6)),
                                             trainer, params, target, cfg, data.x_train,
                                             data.y_train, beta or 0.0, tick, record)
        acc, acc0 = accs[len(info["path"]) - 1]
        acc0 = acc if acc0 is None else acc0
        row = {"dataset": data.name, "model": label, "beta": beta, "seed": seed,
               "target_sparsity": float(target), "achieved_sparsity": sparsity(pruned, cfg.prune_scope),
               "schedule": cfg.schedule, "prune_steps": len(info["path"]),
               "finetune_steps": cfg.finetune_steps,
               "accuracy": acc, "accuracy_before_finetune": acc0,
               **count_params(pruned), "flops": flops(pruned, trainer.model),
               "flops_dense": dense_flops,
               "kl_total": diag.get("kl_total"), "active_units": diag.get("active_units"),
               "total_correlation": diag.get("total_correlation")}
        rows.append(row)
        ev("row", row=row)
    return {"rows": rows, "steps": steps_log, "diagnostics": diag, "params": params}


def run_sweep(cfg: CompressConfig, data: StudyData, on_event=None) -> dict:
    """The whole sweep: for every seed, the control (if configured) and every beta; each is
    trained, diagnosed and pruned to every sparsity. Returns {'rows', 'steps' (one record per
    pruning step: sparsity, accuracy, parameters, FLOPs), 'diagnostics', 'traversals'}:
    traversals maps a beta label to {'latents', 'images'} (first seed only,
    images (rows, steps, H, W, C) in [0, 1])."""
    kw = dict(image_shape=data.image_shape, latent_dim=cfg.latent_dim, channels=cfg.channels,
              hidden=cfg.hidden, num_classes=data.num_classes)
    vae_tr = get_trainer(BetaVAE(**kw, vae=True), cfg.lr, cfg.recon) if cfg.betas else None
    ctl_tr = get_trainer(BetaVAE(**kw, vae=False), cfg.lr, cfg.recon) if cfg.control else None
    rows, steps, diags, trav = [], [], [], {}
    for seed in cfg.seeds:
        runs = ([(None, ctl_tr)] if cfg.control else []) + [(b, vae_tr) for b in cfg.betas]
        for beta, tr in runs:
            res = run_model(seed, beta, tr, cfg, data, on_event)
            rows += res["rows"]
            steps += res["steps"]
            diags.append(res["diagnostics"])
            if beta is not None and seed == cfg.seeds[0]:
                kl = np.asarray(res["diagnostics"]["kl_per_latent"])
                lat = [int(j) for j in np.argsort(-kl, kind="stable")[:cfg.traversal_latents]]
                imgs = traversal_grid(tr.model, res["params"], data.x_test[:1], lat,
                                      cfg.traversal_range, cfg.traversal_steps)
                trav[model_label(beta)] = {"latents": lat, "kl": [float(kl[j]) for j in lat],
                                           "images": imgs}
    return {"rows": rows, "steps": steps, "diagnostics": diags, "traversals": trav}
