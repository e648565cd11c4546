"""The command line: summarize, run, show; bad input gives one line on stderr and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simstudy.cli import main, parse_true
from simstudy.engine.store import read_netcdf

REFERENCE = Path(__file__).resolve().parent / "data" / "rsimsum"


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
        "--estimator", "method", "--ref", "CC", "--rep", "dataset", "--out", str(out_file),
    )
    assert code == 0, err
    assert "31.0463 (3.9375)" in out and "-2.6594 (2.2055)" in out
    summary = read_netcdf(out_file)
    assert float(summary["rel_precision"].sel({"estimator": "MI_T"}).squeeze()) == pytest.approx(26.3682, abs=1e-4)


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


# --- the catalogue of bad inputs: one line, exit code 2, existing results untouched -------------------


def _variant(tmp_path, *pairs: str) -> str:
    text = TOY.read_text()
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "variant.py"
    path.write_text(text)
    return str(path)


@pytest.fixture
def finished(capsys, tmp_path):
    out = tmp_path / "toy"
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "10", "--jobs", "1", "--out", str(out), "--quiet")
    assert code == 0, err
    return out, {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (("reps=200", "reps=200, nonsense=1"), "unexpected keyword argument 'nonsense'"),
        (("study = Study(", "study = (\n"), "syntax error in"),
        (('estimators={"mean": Mean(), "boom": Boom()}', "estimators={}"), "non-empty mapping"),
        (('Design({"n": [10, 40]', 'Design({"n": [10, 0]'), "factor 'n' must be at least 2, got 0"),
        (("return {\"y\": rng.normal(mu, sd, n)}", "return {\"y\": rng.normal(mu, sd, n) * np.nan}"),
         "NaN or infinite values in column 'y'"),
        (("return {\"y\": rng.normal(mu, sd, n)}", "return {\"z\": rng.normal(mu, sd, n)}",
          '"mean": Mean()', '"mean": __import__("simstudy.estimators").estimators.OLS("y ~ 1")'),
         "formula 'y ~ 1' names column 'y', which the data do not have"),
        (('"mean": Mean()', '"mean": __import__("simstudy.estimators").estimators.OLS("y ~ w")'),
         "formula 'y ~ w' names column 'w'"),
        # defect: a truth key that matches no parameter ran and printed bias 0.0000 (0.0000)
        (('return {"mean": mu}', 'return {"slope_x": mu}'),
         "true values that match no estimator's parameter: 'slope_x'; parameters without a true value: 'mean'"),
        (('estimators={"mean": Mean(), "boom": Boom()}', 'estimators={"mean": Mean()}, reference="boom"'),
         "reference estimator 'boom' is not among the estimators"),
    ],
)
def test_bad_study_leaves_results_untouched(capsys, tmp_path, finished, change, fragment):
    out, before = finished
    path = _variant(tmp_path, *change)
    code, _, err = run_cli(capsys, "run", path, "--out", str(out), "--jobs", "1")
    assert_one_line_error(code, err, fragment)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_other_study_in_directory_is_refused(capsys, tmp_path, finished):
    out, before = finished
    path = _variant(tmp_path, 'name="toy"', 'name="other"')
    code, _, err = run_cli(capsys, "run", path, "--out", str(out), "--jobs", "1")
    assert_one_line_error(code, err, "holds results of study 'toy', not 'other'")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_changed_study_needs_force(capsys, tmp_path, finished):
    out, _ = finished
    path = _variant(tmp_path, "seed=7", "seed=8")
    code, _, err = run_cli(capsys, "run", path, "--out", str(out), "--jobs", "1", "--reps", "10", "--quiet")
    assert_one_line_error(code, err, "--force recomputes them")
    code, _, err = run_cli(capsys, "run", path, "--out", str(out), "--jobs", "1", "--reps", "10", "--quiet",
                           "--force")
    assert code == 0, err


def test_write_failure_mid_run(capsys, tmp_path, monkeypatch):
    import simstudy.engine.runner as runner

    real, calls = runner.write_chunk, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "write_chunk", failing)
    out = tmp_path / "toy"
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "20", "--chunk-size", "5", "--jobs", "1",
                           "--out", str(out), "--quiet")
    assert_one_line_error(code, err, "No space left on device")
    assert len(list((out / "chunks").iterdir())) == 2
    monkeypatch.setattr(runner, "write_chunk", real)
    code, _, err = run_cli(capsys, "resume", str(out), "--quiet")
    assert code == 0, err


def test_failure_budget_stops_a_cell(capsys, tmp_path):
    out = tmp_path / "toy"
    code, stdout, err = run_cli(capsys, "run", str(TOY), "--reps", "200", "--chunk-size", "10", "--jobs", "1",
                                "--out", str(out), "--max-failure-rate", "0.3")
    assert code == 0, err
    assert "stopped early (failure rate above 0.3): n=10, mu=1" in stdout
    summary = read_netcdf(out / "summary.nc")
    n_rep = summary["n_rep"].sel({"estimator": "mean", "param": "mean"})
    assert int(n_rep.sel(n=10, mu=1.0)) < 200 and int(n_rep.sel(n=10, mu=0.0)) == 200


def test_concurrent_run_is_refused(capsys, tmp_path):
    from simstudy.engine.lock import RunLock

    out = tmp_path / "toy"
    out.mkdir()
    with RunLock(out):
        code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "5", "--out", str(out))
    assert_one_line_error(code, err, "another simstudy run")


# --- lose nothing, part 2 ------------------------------------------------------------------------------


def _files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_misplaced_checkpoint_is_recomputed_not_read(capsys, tmp_path):
    # defect: a chunk copied under another chunk's name was placed by its metadata, 10 replicates never ran
    clean, out = tmp_path / "clean", tmp_path / "run"
    for d in (clean, out):
        code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "20", "--chunk-size", "10", "--jobs", "1",
                               "--out", str(d), "--quiet")
        assert code == 0, err
    chunks = sorted((out / "chunks").iterdir())
    first = next(p for p in chunks if p.name.endswith("_00000001-00000011.parquet"))
    second = first.with_name(first.name.replace("00000001-00000011", "00000011-00000021"))
    second.write_bytes(first.read_bytes())  # the chunk of replicates 1-10 under the name of 11-20
    (out / "estimates.nc").unlink()
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "20", "--chunk-size", "10", "--jobs", "1",
                           "--out", str(out), "--quiet")
    assert code == 0, err
    assert "recomputing a damaged checkpoint" in err and second.name in err
    from simstudy.engine.store import read_netcdf as read

    assert read(out / "estimates.nc")["estimate"].equals(read(clean / "estimates.nc")["estimate"])


def test_interrupted_extension_is_flagged_by_show_and_report(capsys, tmp_path, monkeypatch):
    import simstudy.engine.runner as runner

    out = tmp_path / "toy"
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "10", "--jobs", "1", "--out", str(out), "--quiet")
    assert code == 0, err
    real, calls = runner.write_chunk, []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt  # the run is stopped mid-way through extending to 40 replicates
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "write_chunk", dies)
    code, _, _ = run_cli(capsys, "resume", str(out), "--reps", "40", "--chunk-size", "10", "--quiet")
    assert code == 130
    monkeypatch.setattr(runner, "write_chunk", real)
    for command in ("show", "report"):
        code, _, err = run_cli(capsys, command, str(out))
        assert_one_line_error(code, err, f"was interrupted, so summary.nc holds an earlier, smaller run; "
                                         f"`simstudy resume {out}` finishes it")
    code, _, err = run_cli(capsys, "resume", str(out), "--quiet")
    assert code == 0, err
    code, shown, err = run_cli(capsys, "show", str(out))
    assert code == 0 and "40/40" in shown, err


def test_outputs_of_two_runs_are_not_shown_as_one(capsys, tmp_path):
    out, other = tmp_path / "a", tmp_path / "b"
    for d in (out, other):
        code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "10", "--jobs", "1", "--out", str(d), "--quiet")
        assert code == 0, err
    (out / "summary.nc").write_bytes((other / "summary.nc").read_bytes())
    code, _, err = run_cli(capsys, "show", str(out))
    assert_one_line_error(code, err, "summary.nc does not belong to the run recorded in study.json")


def test_out_that_is_not_a_run_directory_is_refused(capsys, tmp_path):
    # defect: --out at a folder of the user's own files overwrote their study.py, estimates.nc, summary.nc
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("study.py", "estimates.nc", "summary.nc"):
        (mine / name).write_text(f"my own {name}\n")
    before = _files(mine)
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "5", "--jobs", "1", "--out", str(mine), "--quiet")
    assert_one_line_error(code, err, "holds files that are not a simstudy run's (estimates.nc, study.py, "
                                     "summary.nc); choose a new or empty directory")
    assert _files(mine) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "5", "--jobs", "1", "--out", str(empty), "--quiet")
    assert code == 0, err


def test_refused_command_changes_nothing(capsys, tmp_path, finished):
    # defect: a run refused for a bad --scheduler rewrote study.json (complete: false, new reps)
    pytest.importorskip("distributed")
    out, before = finished
    code, _, err = run_cli(capsys, "resume", str(out), "--reps", "30", "--backend", "dask", "--scheduler",
                           "tcp://127.0.0.1:9", "--quiet")
    assert code == 2 and "cannot connect to the Dask scheduler" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("content", ["[1, 2]", "{\"run\": [1]}", "not json"])
def test_damaged_study_json_is_one_line(capsys, tmp_path, finished, content):
    out, _ = finished
    (out / "study.json").write_text(content)
    for command in ("resume", "show"):
        code, _, err = run_cli(capsys, command, str(out))
        assert code == 2 and err.startswith("simstudy: error:") and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("limit", ["soon", -1, True])
def test_a_damaged_time_limit_is_refused_by_resume(capsys, tmp_path, finished, limit):
    out, _ = finished
    meta = json.loads((out / "study.json").read_text())
    meta["run"]["timeout"] = limit
    (out / "study.json").write_text(json.dumps(meta))
    before = (out / "estimates.nc").read_bytes()
    code, _, err = run_cli(capsys, "resume", str(out))
    assert code == 2 and err == (f"simstudy: error: {str(out / 'study.json')!r} is damaged (its time limit is "
                                 f"{limit!r}, not a number of seconds)\n")
    assert (out / "estimates.nc").read_bytes() == before


def test_temporary_files_are_swept(capsys, tmp_path, finished):
    out, _ = finished
    for tmp in (out / ".estimates.nc.abc123.tmp", out / "chunks" / ".x.parquet.zz.tmp"):
        tmp.write_text("half written")
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "10", "--jobs", "1", "--out", str(out), "--quiet")
    assert code == 0, err
    assert not list(out.rglob("*.tmp"))


def test_disk_full_while_writing_outputs_is_one_line_and_keeps_the_chunks(capsys, tmp_path, monkeypatch):
    # defect: "internal error: NetCDF: HDF error" (exit 1)
    import collections

    import simstudy.engine.runner as runner

    def full(ds, path):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(runner, "write_netcdf", full)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    out = tmp_path / "toy"
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "10", "--jobs", "1", "--out", str(out), "--quiet")
    assert_one_line_error(code, err, "(the disk is full); every finished chunk is safe in")
    assert len(list((out / "chunks").iterdir())) == 4
    monkeypatch.undo()
    code, _, err = run_cli(capsys, "resume", str(out), "--quiet")
    assert code == 0, err


def test_impossible_number_of_replicates_is_refused_up_front(capsys, tmp_path):
    # defect: --reps 10^12 ended in "internal error: MemoryError"
    out = tmp_path / "toy"
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", str(10**12), "--out", str(out))
    assert_one_line_error(code, err, "need about")
    assert "GiB to assemble" in err and not out.exists()


def test_shards_of_two_versions_of_a_study_never_mix(capsys, tmp_path):
    out = tmp_path / "run"
    v2 = _variant(tmp_path, "mu, sd, n)}", "mu, sd, n) + 0.0}")  # same numbers, different code
    code, _, err = run_cli(capsys, "run", str(TOY), "--reps", "20", "--shard", "0/2", "--out", str(out), "--quiet",
                           "--jobs", "1")
    assert code == 0, err
    code, _, err = run_cli(capsys, "run", v2, "--reps", "20", "--shard", "1/2", "--out", str(out), "--quiet",
                           "--jobs", "1")
    assert_one_line_error(code, err, "different version of this study")


def test_cells_where_every_replicate_fails_are_warned_about(capsys, tmp_path):
    # defect: a user DGP whose every replicate failed in a cell (0/5 valid) printed no warning
    path = _variant(tmp_path, "    def generate(self, rng, n=20, mu=0.0, sd=1.0):\n",
                    "    def generate(self, rng, n=20, mu=0.0, sd=1.0):\n        if mu > 0.5: raise ValueError('bad mu')\n")
    code, out, err = run_cli(capsys, "run", path, "--reps", "5", "--jobs", "1", "--out", str(tmp_path / "o"))
    assert code == 0
    warning = [line for line in err.splitlines() if line.startswith("simstudy: warning:")]
    assert len(warning) == 1 and "every replicate failed in 2 of 4 cells" in warning[0], err
    assert "generate failed: ValueError: bad mu" in warning[0]


def test_show_prints_any_measure(capsys, tmp_path, finished):
    out, _ = finished
    code, shown, err = run_cli(capsys, "show", str(out), "--measure", "power", "power_all", "emp_se")
    assert code == 0, err
    header = shown.splitlines()[0].split()
    assert header[header.index("param") + 1:] == ["power", "power_all", "emp_se", "valid/reps"]
    code, _, err = run_cli(capsys, "show", str(out), "--measure", "powr")
    assert_one_line_error(code, err, "unknown measure 'powr'; choose from bias")


def test_console_script_exits_with_the_code_of_main(monkeypatch, capsys, tmp_path):
    import gc

    from simstudy.cli import console

    monkeypatch.setattr(sys, "argv", ["simstudy", "show", str(tmp_path / "missing")])
    try:
        with pytest.raises(SystemExit) as exc:
            console()
        assert exc.value.code == 2
        assert capsys.readouterr().err.startswith("simstudy: error:")
        assert gc.get_freeze_count() > 0  # what is left is not traversed at exit
        assert not gc.isenabled()  # off while a command starts (simstudy.gc_policy)
    finally:
        gc.unfreeze()
        gc.enable()
