"""The command line: summarize, run, show; bad input gives one line on stderr and exit code 2."""

from __future__ import annotations

import subprocess
import sys

from pathlib import Path

import pytest

from simstudy.cli import main, parse_true
from simstudy.store import read_netcdf

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("simstudy: error:") and fragment in lines[0], err
    assert "Traceback" not in err


def test_summarize_prints_table_and_writes_netcdf(capsys, tmp_path):
    out_file = tmp_path / "summary.nc"
    code, out, err = run_cli(
        capsys, "summarize", str(REFERENCE / "MIsim.csv"), "--estimate", "b", "--se", "se", "--true", "0.5",
        "--method", "method", "--ref", "CC", "--rep", "dataset", "--out", str(out_file),
    )
    assert code == 0, err
    assert "31.0463 (3.9375)" in out and "-2.6594 (2.2055)" in out
    summary = read_netcdf(out_file)
    assert float(summary["rel_precision"].sel({"method": "MI_T"}).squeeze()) == pytest.approx(26.3682, abs=1e-4)


def test_summarize_several_parameters(capsys):
    code, out, err = run_cli(
        capsys, "summarize", str(REFERENCE / "frailty.csv"), "--estimate", "b", "--se", "se",
        "--true", "trt=-0.5,fv=0.75", "--param", "par", "--method", "model", "--by", "fv_dist", "--rep", "i",
    )
    assert code == 0, err
    assert "fv_dist=Gamma, param=fv" in out and "fv_dist=Log-Normal, param=trt" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["summarize", "nope.csv", "--estimate", "b", "--se", "se", "--true", "0"], "does not exist"),
        (["summarize", "MIsim", "--estimate", "x", "--se", "se", "--true", "0"], "column 'x' is not in the table"),
        (["summarize", "MIsim", "--estimate", "b", "--se", "se", "--true", "0", "--level", "2"], "--level"),
        (["summarize", "MIsim", "--estimate", "b", "--se", "se", "--true", "0", "--bogus"], "unrecognized"),
        (["summarize", "MIsim", "--estimate", "b", "--se", "se", "--true", "0", "--ci-lower", "b"], "go together"),
        (["summarize", "MIsim", "--estimate", "b", "--se", "se", "--true", "a=x"], "parameter=number"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_summarize_input(capsys, argv, fragment):
    argv = [str(REFERENCE / "MIsim.csv") if a == "MIsim" else a for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, fragment)


def test_bad_table_through_cli(capsys, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("m,b,se\nA,1,0.1\nB,2,0.1\n")
    code, _, err = run_cli(capsys, "summarize", str(path), "--estimate", "b", "--se", "se", "--true", "0",
                           "--method", "m")
    assert_one_line_error(code, err, "single replicate")


def test_parse_true():
    assert parse_true("0.5") == 0.5
    assert parse_true("a=1,b=-2") == {"a": 1.0, "b": -2.0}
    assert parse_true("truth") == "truth"


def test_console_script_exit_code():
    proc = subprocess.run([sys.executable, "-m", "simstudy.cli", "summarize", "missing.csv", "--estimate", "b",
                           "--se", "se", "--true", "0"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "simstudy: error: table 'missing.csv' does not exist"


TOY = Path(__file__).with_name("toy_study.py")


def test_run_then_show(capsys, tmp_path):
    out = tmp_path / "toy"
    code, stdout, err = run_cli(capsys, "run", str(TOY), "--reps", "20", "--jobs", "1", "--out", str(out))
    assert code == 0, err
    assert "valid/reps" in stdout and f"results in {out}/" in stdout
    assert "simstudy: 100% (80/80 replicates" in err
    code, shown, _ = run_cli(capsys, "show", str(out))
    assert code == 0 and shown.strip() in stdout


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "nope.py"], "study file 'nope.py' does not exist"),
        (["run", "TOY", "--jobs", "0"], "--jobs: must be at least 1"),
        (["run", "TOY", "--reps", "-3"], "--reps: must be at least 1"),
        (["run", "TOY", "--reps", "many"], "--reps: expected a whole number"),
        (["run", "TOY", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["show", "nowhere"], "is not a run's output directory"),
    ],
)
def test_bad_run_input(capsys, argv, fragment):
    argv = [str(TOY) if a == "TOY" else a for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, fragment)


def test_bad_factor_value_in_study_file(capsys, tmp_path):
    text = TOY.read_text().replace('Design({"n": [10, 40]', 'Design({"n": [1, 40]')
    path = tmp_path / "bad.py"
    path.write_text(text)
    code, _, err = run_cli(capsys, "run", str(path), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "factor 'n' must be at least 2, got 1")
    assert not (tmp_path / "o").exists()
