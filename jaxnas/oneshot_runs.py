"""Run folders of the one-shot methods (EvNAS, weight-sharing CMANAS; issue 11).

At the level of :mod:`jaxnas.runs` (it writes files; :mod:`jaxnas.cli` calls :func:`search`).
A one-shot run folder holds:

- ``checkpoint.msgpack``: the search state after the last finished generation (or
  pre-training epoch), written atomically after each one, with the run's fingerprint
  (method and config); ``jaxnas search METHOD --resume`` continues from it and gives the
  result of an uninterrupted run; removed once the run is complete;
- ``result.json``: config, metadata (timings, machine load), the answer (genotype; NB201:
  index and table accuracies), the per-generation history (best and mean fitness, distinct
  architectures) and the baselines (RSWS; the uniformly random architecture's table mean);
- ``history.csv`` and ``fitness.png`` (fitness per generation);
- ``supernet.msgpack``: the final supernet weights, optimiser state and BN statistics
  (:func:`jaxnas.nets.supernet_train.state_from_bytes` reads it);
- ``COMPLETE``: written last.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import flax.serialization as fser

from jaxnas import config as C
from jaxnas import methods, report, runs


class RunFolderError(ValueError):
    """The run folder holds another run, or an unreadable checkpoint (the CLI exits 2)."""


CHECKPOINT = "checkpoint.msgpack"
WEIGHTS = "supernet.msgpack"


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (a temporary file, flushed, renamed over it)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_checkpoint(out, fingerprint: dict, data: bytes) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = out / CHECKPOINT
    write_bytes(p, fser.msgpack_serialize({"fingerprint": json.dumps(fingerprint, sort_keys=True),
                                           "state": data}))
    return p


def load_checkpoint(out, fingerprint: dict) -> bytes | None:
    """The saved search state of this run, ``None`` if there is none.

    Raises:
        RunFolderError: the checkpoint belongs to another method/config, or is unreadable.
    """
    p = Path(out) / CHECKPOINT
    if not p.is_file():
        return None
    try:
        blob = fser.msgpack_restore(p.read_bytes())
        saved = json.loads(blob["fingerprint"])
        state = blob["state"]
    except Exception as e:  # noqa: BLE001 - any decoding failure is a corrupt file
        raise RunFolderError(f"{p} is not a readable jaxnas checkpoint ({type(e).__name__})") from e
    if saved != fingerprint:
        raise RunFolderError(f"{p} belongs to another run ({runs.first_difference(saved, fingerprint)});"
                         " use another --out")
    return state


def describe(data: dict) -> str:
    """A few lines: the answer, its accuracies, the baselines, the timings."""
    a, b, m = data["answer"], data.get("baselines") or {}, data["meta"]
    acc = lambda d: ("" if d.get("cifar10_test_acc") is None else
                     f", NB201 CIFAR-10 test {d['cifar10_test_acc']:.2f} %")
    lines = [f"{data['method']} ({m['space']}, seed {data['config']['seed']}): "
             f"{m['evaluations']} evaluations, {m['distinct']} distinct architectures, "
             f"{m['timing']['total_seconds']:.0f} s",
             f"answer: {a['genotype']}" + (f" (index {a['index']})" if "index" in a else "") + acc(a)]
    if m.get("oracle"):
        lines.append(a.get("selection", "ORACLE selection"))
    if "rsws" in b:
        lines.append(f"RSWS (best of {b['rsws']['evaluations']} random, same supernet): "
                     f"{b['rsws']['genotype']}" + acc(b["rsws"]))
    if "uniform_random" in b:
        u = b["uniform_random"]
        lines.append(f"uniformly random architecture: NB201 CIFAR-10 test mean "
                     f"{u['cifar10_test_acc_mean']:.2f} %, median {u['cifar10_test_acc_median']:.2f} %")
    return "\n".join(lines)


def write_result(result, out) -> dict[str, Path]:
    """Write the run folder (see the module docstring), ``COMPLETE`` last."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / runs.COMPLETE).unlink(missing_ok=True)
    data = runs.clean_json(result.to_json())
    paths = {"json": out / "result.json", "weights": out / WEIGHTS,
             "history_csv": out / "history.csv", "fitness_png": out / "fitness.png"}
    runs.write_json(paths["json"], data)
    write_bytes(paths["weights"], result.supernet)
    h = data["history"]
    rows = [{"generation": g, **{k: v[g] for k, v in h.items()}}
            for g in range(len(h.get("best_fitness", [])))]
    runs.write_text(paths["history_csv"], runs._csv(rows))
    title = f"{data['method']} ({data['meta']['space']})"
    report.plot_fitness(paths["fitness_png"], h, title + (" [ORACLE selection]" if
                                                          data["meta"].get("oracle") else ""))
    runs.write_text(out / runs.COMPLETE, json.dumps({"files": sorted(p.name for p in paths.values())}))
    (out / CHECKPOINT).unlink(missing_ok=True)
    return paths


def search(method: str, cfg, out, resume: bool, progress, data=None) -> str:
    """``jaxnas search`` for a one-shot config: run (or resume) into ``out``, write the folder,
    return the text to print. Raises :class:`RunFolderError` for a folder of another run."""
    out = Path(out)
    fingerprint = runs.run_fingerprint(method, C.as_dict(cfg))
    if resume and runs.is_complete(out):
        saved = json.loads((out / "result.json").read_text(encoding="utf-8"))
        if runs.run_fingerprint(method, saved.get("config", {})) != fingerprint:
            raise RunFolderError(f"{out} holds a finished run of another config; use another --out")
        return describe(saved) + f"\n(existing result in {out}; nothing rerun)"
    checkpoint = load_checkpoint(out, fingerprint) if resume else None
    result = methods.run(method, cfg, progress=progress, checkpoint=checkpoint, data=data,
                         on_checkpoint=lambda b: save_checkpoint(out, fingerprint, b))
    paths = write_result(result, out)
    return describe(result.to_json()) + "\n\nwrote " + ", ".join(str(p) for p in paths.values())
