"""`jaxnas table info|import`: output, --help, and exit status 0 / 1 / 2."""

import os
import subprocess
import sys

import numpy as np
import pytest

from jaxnas.bench import load_table
from jaxnas.cli import build_parser, main
from tests.conftest import require_data

ACC = "nb201_accuracy.csv.gz"
HW = "nb201_hw_costs.csv.gz"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXNAS_CACHE_DIR", str(tmp_path / "cache"))


def _run(*args, env_extra=None):
    env = {**os.environ, "JAXNAS_NO_COMPILATION_CACHE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "jaxnas", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("argv", [["--help"], ["table", "--help"], ["table", "info", "--help"],
                                  ["table", "import", "--help"]])
def test_every_table_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: jaxnas")
    if argv[-2:] == ["import", "--help"]:
        assert "--out" in out and "HW-NAS-Bench-v1_0.pickle" in out


def test_info_prints_coverage(capsys, monkeypatch):
    root = require_data(ACC, HW)
    assert main(["table", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "cifar10_test_acc" in out and "15625/15625" in out and "94.3733" in out
    assert "missing: edgegpu, edgetpu" in out
    monkeypatch.setenv("JAXNAS_DATA_DIR", str(root))
    assert main(["table", "info"]) == 0
    assert "cifar10_pixel3_latency" in capsys.readouterr().out


def test_import_then_info_on_the_npz(tmp_path, capsys):
    root = require_data(ACC)
    out = tmp_path / "acc.npz"
    assert main(["table", "import", str(root / ACC), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    np.testing.assert_array_equal(load_table(out).values, load_table(root / ACC).values)
    assert main(["table", "info", str(out)]) == 0
    assert f"{ACC} via acc.npz" in capsys.readouterr().out
    # default --out: the jaxnas cache, which `table info` without a path then reads
    assert main(["table", "import", str(root / ACC)]) == 0
    written = tmp_path / "cache" / "tables" / "nb201_accuracy.npz"
    assert f"wrote {written}" in capsys.readouterr().out and written.exists()


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["table", "info", "--bogus"], "unrecognized arguments: --bogus"),
        (["table", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["table"], "required"),
        (["table", "import"], "required: path"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_bad_values_exit_2(tmp_path, capsys):
    txt = tmp_path / "table.txt"
    txt.write_text("arch_index,x\n0,1\n")
    assert main(["table", "info", str(txt)]) == 2
    err = capsys.readouterr().err
    assert "unsupported table file" in err and err.count("\n") == 1
    root = require_data(ACC)
    assert main(["table", "import", str(root / ACC), "--out", str(tmp_path / "x.csv")]) == 2
    assert "--out must name a .npz file" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_bad_input_files_exit_2_without_traceback(tmp_path, capsys):
    """A missing or corrupt input file is wrong in what the user gave: exit 2, one line, as
    through a search config (issue 14: one rule for exit codes)."""
    assert main(["table", "info", str(tmp_path / "nb201_accuracy.csv.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxnas: error: benchmark table file not found") and err.count("\n") == 1
    bad = tmp_path / "broken.csv"
    bad.write_text("arch_index,x\n1,oops\n")
    assert main(["table", "import", str(bad), "--out", str(tmp_path / "b.npz")]) == 2
    err = capsys.readouterr().err
    assert "broken.csv: line 2, column 'x': cannot parse 'oops'" in err and "Traceback" not in err
    assert not (tmp_path / "b.npz").exists()
    # --debug re-raises with the full traceback
    with pytest.raises(ValueError, match="cannot parse 'oops'"):
        main(["--debug", "table", "info", str(bad)])


def test_exit_codes_in_a_real_process(tmp_path):
    root = require_data(ACC, HW)
    ok = _run("table", "info", str(root))
    assert ok.returncode == 0 and "cifar10_fpga_latency" in ok.stdout
    missing = _run("table", "info", str(tmp_path / "HW-NAS-Bench-v1_0.pickle"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "github.com/GATECH-EIC/HW-NAS-Bench" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    debug = _run("--debug", "table", "info", str(tmp_path / "HW-NAS-Bench-v1_0.pickle"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    usage = _run("table", "import")
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1
    (tmp_path / "no_tables").mkdir()
    no_default = _run("table", "info", env_extra={"JAXNAS_DATA_DIR": str(tmp_path / "no_tables"),
                                                  "JAXNAS_CACHE_DIR": str(tmp_path / "empty")})
    assert no_default.returncode == 2 and "JAXNAS_DATA_DIR" in no_default.stderr


def test_parser_lists_table_subcommands():
    parser = build_parser()
    text = parser.format_help()
    assert "table" in text
