"""The ``jaxnas`` command: one entry point with subcommands.

Exit status: 0 on success, 2 for bad usage (unknown options or values, with a one-line
reason), 1 for a runtime failure (one line, no traceback unless ``--debug``).

Each subcommand is a ``_add_<name>(subparsers)`` function that registers its parser and
sets ``func``; ``_COMMANDS`` lists them. Handlers stay thin: the work lives in the layers.
"""

from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    """Bad user input found after parsing (an unknown name in a config, say): exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---------------------------------------------------------------------------- table


def _add_table(sub):
    p = sub.add_parser(
        "table",
        help="inspect and import benchmark tables (NB201 accuracy, HW-NAS-Bench)",
        description="Inspect NB201 benchmark tables (NAS-Bench-201/NATS accuracies, HW-NAS-Bench "
                    "device costs) and import them into jaxnas's checksummed .npz cache.",
    )
    tsub = p.add_subparsers(dest="table_cmd", required=True, parser_class=_Parser,
                            metavar="{info,import}")
    info = tsub.add_parser(
        "info",
        help="list the columns of a table and their coverage",
        description="Print every column with its number of known (non-NaN) architectures, "
                    "min, max, unit and source file, then which of the six HW-NAS-Bench devices "
                    "the table has per dataset. Without PATH: the data folder ($JAXNAS_DATA_DIR, else "
                    "../shared/data beside a source checkout) plus "
                    "the tables imported into the jaxnas cache.",
    )
    info.add_argument("path", nargs="?", default=None,
                      help="a table file (.csv, .csv.gz, .pickle, .npz) or a folder of them "
                           "(default: the data folder and imported tables)")
    info.set_defaults(func=_table_info)
    imp = tsub.add_parser(
        "import",
        help="import an official or CSV table into jaxnas's checksummed .npz cache",
        description="Read HW-NAS-Bench-v1_0.pickle (restricted unpickler), a CSV with an "
                    "arch_index or arch_str column, a jaxnas .npz, or a folder of them, and write "
                    "one checksummed .npz table (atomically: nothing is half-written). Tables in "
                    "the default output folder are loaded by `jaxnas table info` and "
                    "jaxnas.bench.load_table() without a path.",
    )
    imp.add_argument("path", help="HW-NAS-Bench-v1_0.pickle, a CSV with arch_index or arch_str, "
                                  "a .npz table, or a folder")
    imp.add_argument("--out", default=None,
                     help="output .npz file (default: <cache dir>/tables/<name>.npz)")
    imp.set_defaults(func=_table_import)


def _check_table_path(path: str | None) -> None:
    """Unsupported file types are usage errors (exit 2); missing/corrupt files exit 1."""
    from pathlib import Path

    from jaxnas.bench import SUPPORTED_SUFFIXES

    if path is None or Path(path).is_dir() or not Path(path).exists():
        return
    if not Path(path).name.lower().endswith(SUPPORTED_SUFFIXES):
        raise UsageError(
            f"unsupported table file {path!r}; expected {', '.join(SUPPORTED_SUFFIXES)} or a folder"
        )


def _table_info(args):
    from jaxnas.bench import load_table

    _check_table_path(args.path)
    try:
        table = load_table(args.path)
    except (ValueError, FileNotFoundError) as e:  # a corrupt or missing input file: exit 2
        raise UsageError(str(e).strip().splitlines()[0]) from e
    print(table.describe())


def _table_import(args):
    from jaxnas.bench import import_table

    _check_table_path(args.path)
    if args.out is not None and not args.out.lower().endswith(".npz"):
        raise UsageError(f"--out must name a .npz file, got {args.out!r}")
    try:
        out = import_table(args.path, args.out)
    except (ValueError, FileNotFoundError) as e:  # a corrupt or missing input file: exit 2
        raise UsageError(str(e).strip().splitlines()[0]) from e
    print(f"wrote {out}")


# ---------------------------------------------------------------------------- train-reference


def _add_train_reference(sub):
    p = sub.add_parser(
        "train-reference",
        help="train a reference (teacher) ResNet for a dataset that has no pretrained one",
        description="Train a CIFAR ResNet (default ResNet-20) from scratch on a dataset the data "
                    "layer loads, evaluate it on the test split, and save the weights (.npz, "
                    "PyTorch state_dict layout) plus a JSON with the dataset, accuracy, input "
                    "normalisation (training-set mean/std) and settings. Load it with "
                    "jaxnas.data.load_reference(PATH).")
    p.add_argument("--dataset", default="digits",
                   help="digits (scikit-learn, offline; default), cifar10, cifar100 or mnist")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--out", default=None,
                   help="output .npz file, or a folder for <dataset>_resnet<depth>.npz "
                        "(default: <cache dir>/references/); the .json goes next to it")
    p.add_argument("--seed", type=int, default=0, help="seed for init, shuffling, augmentation")
    p.add_argument("--depth", type=int, default=20, help="CIFAR ResNet depth 6n+2 (default 20)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--lr", type=float, default=0.1, help="initial SGD learning rate, cosine decay")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (default 5e-4)")
    p.add_argument("--augment", default="auto", choices=("auto", "flip-crop", "crop", "none"),
                   help="training augmentation; auto: flip-crop for CIFAR, crop for MNIST, none for digits")
    p.add_argument("--data-dir", default=None,
                   help="folder with local .npz datasets (default: $JAXNAS_DATA_DIR, else "
                        "../shared/data beside a source checkout, else ~/.cache/jaxnas/data)")
    p.add_argument("--source", default="auto", choices=("auto", "npz", "tfds"),
                   help="where to read the dataset: local npz if present else tfds (auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train_reference)


def _train_reference(args):
    from pathlib import Path

    from jaxnas import __version__
    from jaxnas.data import DATASETS, trained_reference_path
    from jaxnas.data.train import TrainSettings, default_augment, save_reference, train_reference

    if args.dataset not in DATASETS:
        raise UsageError(f"unknown dataset {args.dataset!r}; known: {', '.join(DATASETS)}")
    if args.depth < 8 or (args.depth - 2) % 6:
        raise UsageError(f"--depth must be 6n+2 (20, 32, 44, 56, 110), got {args.depth}")
    _check_seed(args.seed)
    augment = default_augment(args.dataset) if args.augment == "auto" else args.augment
    try:
        settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 weight_decay=args.weight_decay, augment=augment,
                                 pad=2 if args.dataset == "mnist" else 4, seed=args.seed)
    except ValueError as e:
        raise UsageError(str(e)) from e
    arch = f"resnet{args.depth}"
    out = trained_reference_path(args.dataset, arch) if args.out is None else Path(args.out)
    if out.suffix != ".npz":
        out = out / f"{args.dataset}_{arch}.npz"
    _check_out(out.parent)
    bar = None

    def start(info):
        nonlocal bar
        print(f"training {arch} on {args.dataset} ({info['source']}): {info['n_train']} train / "
              f"{info['n_test']} test images {info['image_shape']}, {settings.epochs} epochs, "
              f"{info['steps']} steps, augment={augment}")
        if not args.no_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=info["steps"], desc=f"train-reference {args.dataset}", unit="step")

    try:
        ref, meta = train_reference(
            args.dataset, settings, depth=args.depth, data_dir=args.data_dir, source=args.source,
            on_start=start,
            on_step=lambda i, loss: bar and (bar.update(1), bar.set_postfix(
                loss=f"{loss:.3f}", refresh=False)),
            on_epoch=lambda e, rec: bar and bar.write(
                f"epoch {e}: loss {rec['loss']:.4f} train acc {100 * rec['accuracy']:.2f} %"))
    finally:
        if bar is not None:
            bar.close()
    save_reference(ref, {**meta, "jaxnas_version": __version__}, out)
    print(f"test accuracy {100 * meta['test_accuracy']:.2f} % ({meta['n_test']} images); "
          f"trained in {meta['train_seconds']:.1f} s")
    print(f"wrote {out} and {out.with_suffix('.json').name}")


# ---------------------------------------------------------------------------- quickstart


def _quickstart_defaults() -> dict:
    import tomllib
    from importlib.resources import files

    return tomllib.loads(files("jaxnas").joinpath("quickstart.toml").read_text(encoding="utf-8"))


def _add_quickstart(sub):
    d = _quickstart_defaults()
    p = sub.add_parser(
        "quickstart",
        help="the main job: MO-HDNAS on real data (digits) and real local latency, offline",
        description="Run MO-HDNAS (NSGA-II over RMI similarity to a reference network, latency "
                    "on this machine and latency diversity) on NAS-Bench-201 networks scaled to "
                    "scikit-learn's bundled 8x8 digits: configs/quickstart.toml through the "
                    "same pipeline as `jaxnas search`. Needs no download and no GPU. Writes "
                    "pareto.json, pareto.csv, pareto.png, run.json and the results table to --out.")
    p.add_argument("--generations", type=int, default=d["generations"],
                   help=f"NSGA-II generations after the initial population (default {d['generations']})")
    p.add_argument("--population", type=int, default=d["population"],
                   help=f"population size, at least 4 (default {d['population']})")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the search and of the selected batch (default 0)")
    p.add_argument("--out", default=None,
                   help="output folder (default ./jaxnas-runs/quickstart-<timestamp>)")
    p.add_argument("--no-measure", action="store_true",
                   help="use analytic FLOPs as the hardware cost instead of measuring latency")
    p.add_argument("--steps", type=int, default=d["rmi"]["steps"],
                   help=f"RMI training steps whose loss is the score (default {d['rmi']['steps']}; "
                        "paper 150)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_quickstart)


def _quickstart(args):
    from jaxnas import methods, quickstart, runs

    _check_seed(args.seed)
    cfg = quickstart.config(generations=args.generations, population=args.population,
                            seed=args.seed, measure=not args.no_measure, steps=args.steps)
    try:
        methods.parse_config("mo_hdnas", cfg)
    except ValueError as e:
        raise UsageError(str(e)) from e
    out = _check_out(args.out or runs.default_out_dir("quickstart"))
    progress = runs.ConsoleProgress(bars=not args.no_progress)
    result = quickstart.run(cfg, progress=progress)
    paths = _write(result, out)
    print()
    print(quickstart.describe(result))
    print(f"\nplot: {paths['pareto']}\nresults: {paths['pareto_json']}, {paths['pareto_csv']}, "
          f"{paths['run_json']}")


# ---------------------------------------------------------------------------- search / report


def _search_methods():
    from jaxnas import methods

    return tuple(methods.METHODS)


def _add_search(sub):
    p = sub.add_parser(
        "search",
        help="run a search method over its results grid (devices x seeds x constraints)",
        description="Run METHOD over every HW-NAS-Bench device x seed (x constraint), with "
        "random search at the same budget; write result.json, cells.csv, summary.csv/.md, "
        "pareto.json/.csv, run.json and PNG plots. One-shot configs (evnas, nevonas, pevonas; "
        "cmanas with estimator = 'supernet') train a supernet and write result.json, history.csv, "
        "fitness.png, supernet.msgpack (checkpoint.msgpack after every generation).",
    )
    p.add_argument("method", help="hw_evrsnas, mo_hdnas, cmanas, evnas, nevonas, pevonas, random, rea")
    p.add_argument("--config", required=True,
                   help="TOML file of method settings (see configs/*.toml; unknown keys are errors)")
    p.add_argument("--out", default=None, help="output folder (default: jaxnas-runs/<method>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out: a finished run of the same config is printed "
                   "(another config is refused); an interrupted RMI run is replayed from its "
                   "fitness_cache.json, a one-shot run continues from its checkpoint.msgpack")
    p.set_defaults(func=_search)


def _read_toml(path: str) -> dict:
    import tomllib
    from pathlib import Path

    f = Path(path)
    if not f.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        return tomllib.loads(f.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: invalid TOML: {e}") from e


def _check_out(out):
    from jaxnas import runs
    try:
        return runs.check_out_dir(out)
    except ValueError as e:
        raise UsageError(str(e)) from e


def _check_seed(seed: int) -> None:
    if not 0 <= seed < 2**32:
        raise UsageError(f"--seed must be in [0, 2**32), got {seed}")


def _write(result, out):
    from jaxnas import report, runs

    return runs.write_result(result, out, extra_files=lambda o: report.write_plots(
        runs.clean_json(result.to_json()), o))


def _search(args):
    from jaxnas import config, methods, oneshot_runs, report, runs

    if args.method not in _search_methods():
        raise UsageError(f"unknown method {args.method!r}; known: {', '.join(_search_methods())}")
    raw = _read_toml(args.config)
    if "method" in raw:
        m = raw.pop("method")
        if m != args.method:
            raise UsageError(f"{args.config} is a config for {m!r}, not {args.method!r}")
    try:
        cfg = methods.parse_config(args.method, raw)
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0]) from e
    out = _check_out(runs.default_out_dir(args.method) if args.out is None else args.out)
    if methods.is_oneshot(cfg):  # a supernet run: its own folder layout and checkpoint
        try:
            return print(oneshot_runs.search(args.method, cfg, out, args.resume, runs.ConsoleProgress()))
        except (config.ConfigError, FileNotFoundError, oneshot_runs.RunFolderError) as e:
            raise UsageError(str(e).splitlines()[0]) from e
    fingerprint = runs.run_fingerprint(args.method, config.as_dict(cfg))
    cache = None
    if args.resume and runs.is_complete(out):
        try:
            data = runs.load_result(out)
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(str(e)) from e
        saved = data["meta"].get("fingerprint") or {}
        if saved != fingerprint:
            raise UsageError(f"{out} holds a finished run of another config "
                             f"({runs.first_difference(saved, fingerprint)}); use another --out")
        print(report.describe(data))
        print(f"(existing result in {out}; nothing rerun)")
        return
    if args.resume:
        try:
            cache = runs.load_fitness_cache(out, fingerprint)
        except ValueError as e:
            raise UsageError(str(e)) from e
    save = lambda scores: runs.save_fitness_cache(out, fingerprint, scores)
    try:
        result = methods.run(args.method, cfg, progress=runs.ConsoleProgress(),
                             fitness_cache=cache, on_fitness=save)
    except (config.ConfigError, FileNotFoundError) as e:  # what the user gave: exit 2
        raise UsageError(str(e).splitlines()[0]) from e
    result.meta["fingerprint"] = fingerprint
    paths = _write(result, out)
    print()
    print(report.describe(result.to_json()))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")


def _add_report(sub):
    p = sub.add_parser("report", help="print the results table of a finished run and draw its plots",
                       description="Print the results table of a finished search run and (re)write "
                                   "its PNG plots (Pareto fronts per device, regret per device "
                                   "and constraint, fitness and cost per generation) beside it.")
    p.add_argument("dir", help="a run folder written by `jaxnas search` (or its result.json)")
    p.add_argument("--no-plots", action="store_true", help="print the table only")
    p.set_defaults(func=_report)


def _report(args):
    from pathlib import Path

    from jaxnas import report, runs

    try:
        data = runs.load_result(args.dir)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from e
    print(report.describe(data))
    folder = Path(args.dir) if Path(args.dir).is_dir() else Path(args.dir).parent
    if not args.no_plots:
        paths = report.write_plots(data, folder)
        if paths:
            print(f"\nplots: {', '.join(str(p) for p in paths.values())}")


def _add_compress(sub):
    from jaxnas.compress import cli as compress_cli  # lazy: keeps `jaxnas --help` fast

    compress_cli.add_parser(sub, UsageError)


_COMMANDS = [_add_quickstart, _add_table, _add_train_reference, _add_search, _add_report,
             _add_compress]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxnas", description="Evolutionary and hardware-aware NAS in JAX.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in _COMMANDS:
        add(sub)
    return parser


def _stdout_closed() -> bool:
    try:
        sys.stdout.flush()
        return False
    except (BrokenPipeError, ValueError):
        return True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UsageError as e:
        if args.debug:  # the original error, with its traceback
            raise (e.__cause__ or e) from None
        print(f"jaxnas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxnas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError as e:
        if _stdout_closed():  # output piped into `head` and the like
            sys.stderr.close()
            return 0
        if args.debug:
            raise
        print(f"jaxnas: error: a pipe closed during the work ({e})", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the CLI's one place that turns errors into status 1
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"jaxnas: error: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
