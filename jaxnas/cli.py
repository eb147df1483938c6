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
    p = sub.add_parser("table", help="inspect and import benchmark tables (NB201 accuracy, HW-NAS-Bench)")
    tsub = p.add_subparsers(dest="table_cmd", required=True, parser_class=_Parser)
    info = tsub.add_parser("info", help="list the columns of a table and their coverage")
    info.add_argument("path", nargs="?", default=None,
                      help="a table file or a folder of them (default: $JAXNAS_DATA_DIR)")
    info.set_defaults(func=_table_info)
    imp = tsub.add_parser("import", help="import an official or CSV table into jaxnas's checksummed .npz cache")
    imp.add_argument("path", help="HW-NAS-Bench-v1_0.pickle, a CSV with arch_index or arch_str, or a folder")
    imp.add_argument("--out", default=None, help="output .npz (default: <cache dir>/tables/<name>.npz)")
    imp.set_defaults(func=_table_import)


def _table_info(args):
    from jaxnas.bench import load_table

    table = load_table(args.path)
    print(table.describe())


def _table_import(args):
    from jaxnas.bench import import_table

    out = import_table(args.path, args.out)
    print(f"wrote {out}")


# ---------------------------------------------------------------------------- main

_COMMANDS = [_add_table]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxnas", description="Evolutionary and hardware-aware NAS in JAX.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UsageError as e:
        if args.debug:
            raise
        print(f"jaxnas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxnas: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's one place that turns errors into status 1
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"jaxnas: error: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
