"""``simstudy pilot``: the study file it writes runs, reproduces the pilot's fitted values as its truths,
takes edits, refuses changed data; bad pilot files and options are one line with exit code 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from simstudy.cli import main
from simstudy.engine.store import read_netcdf
from simstudy.estimators.pilot_fit import fit_pilot
from simstudy.output.study_file import default_effect, write_study_file
from simstudy.study import load_study

PILOT = Path(__file__).resolve().parents[1] / "data" / "pilot"
DIETOX = PILOT / "dietox.csv"
CALLS = PILOT / "callcentre_pilot.csv"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simstudy: error:") and fragment in lines[0], err


@pytest.fixture
def project(tmp_path):
    """A project folder with the pilot data in data/ and an empty studies/."""
    (tmp_path / "data").mkdir()
    (tmp_path / "studies").mkdir()
    shutil.copy(DIETOX, tmp_path / "data" / "dietox.csv")
    shutil.copy(CALLS, tmp_path / "data" / "calls.csv")
    return tmp_path


def test_written_study_runs_and_reproduces_the_pilot_fit_as_truths(project, capsys):
    study_file = project / "studies" / "dietox_power.py"
    code, out, err = run_cli(capsys, "pilot", project / "data" / "dietox.csv", "--formula", "Weight ~ Time",
                             "--groups", "Litter", "Pig", "--treatment-level", "Litter", "--out", study_file)
    assert code == 0, err
    assert "var(Litter) 9.54" in out and f"wrote {study_file}" in out and "simstudy power" in out
    pilot = fit_pilot(DIETOX, "Weight ~ Time", ["Litter", "Pig"])
    study = load_study(study_file)
    effect = default_effect(pilot)
    assert study.design.factors == {"n_clusters": [21, 42, 63, 84], "effect": [0.0, effect]}
    assert set(study.estimators) == {"ols", "ols_cr", "lmm"} and study.show == ("treat",)
    text = study_file.read_text()
    assert '"file_sha256": "2104ded65fcab904f6508bef06338b951be8295f753039951638f11156390f5b"' in text
    assert '"rows": 861' in text and '"formula": "Weight ~ Time"' in text and '"simstudy": ' in text
    assert 'PILOT_FILE = Path(__file__).resolve().parent / "../data/dietox.csv"' in text
    out_dir = project / "results"
    code, out, err = run_cli(capsys, "run", study_file, "--reps", "3", "--jobs", "1", "--quiet", "--out", out_dir)
    assert code == 0, err
    true = read_netcdf(out_dir / "estimates.nc")["true"]
    cell = {"n_clusters": 42, "effect": effect, "estimator": "lmm"}
    for name, value in {**pilot.fixed, **pilot.variances}.items():
        assert float(true.sel({**cell, "param": name})) == value, name  # the fitted values, exactly
    assert float(true.sel({**cell, "param": "treat"})) == effect


def test_edited_values_become_the_truths(project):
    pilot = fit_pilot(project / "data" / "dietox.csv", "Weight ~ Time", "Pig")
    study_file = write_study_file(pilot, project / "studies" / "pigs.py", data=project / "data" / "dietox.csv",
                                  effect_of="Time", effects=[6.5, 7.0])
    text = study_file.read_text()
    edited = text.replace(f'"var(Pig)": {pilot.variances["var(Pig)"]!r}', '"var(Pig)": 25.0')
    assert edited != text
    study_file.write_text(edited)
    study = load_study(study_file)
    assert study.dgp.truth(effect=7.0) == {**pilot.fixed, "Time": 7.0, **pilot.variances, "var(Pig)": 25.0}
    assert study.design.factors["effect"] == [6.5, 7.0] and study.show == ("Time",)


def test_a_changed_pilot_file_is_refused(project):
    data = project / "data" / "dietox.csv"
    pilot = fit_pilot(data, "Weight ~ Time", "Pig")
    study_file = write_study_file(pilot, project / "studies" / "pigs.py", data=data, treatment_level="Pig")
    data.write_text(data.read_text().replace("26.5,", "27.5,", 1))
    with pytest.raises(ValueError, match="is not the data the values were fitted to") as info:
        load_study(study_file)
    assert "\n" not in str(info.value)


def test_the_study_moves_with_its_data(project, tmp_path_factory):
    pilot = fit_pilot(project / "data" / "calls.csv", "call_CSAT ~ C(reason) + age", ["centre", "rep"],
                      nested_ids="within")
    write_study_file(pilot, project / "studies" / "calls.py", data=project / "data" / "calls.csv",
                     treatment_level="centre", clusters=[12, 24], cluster_sizes=[3, 5], subcluster_sizes=[8])
    moved = tmp_path_factory.mktemp("elsewhere") / "project"
    shutil.copytree(project, moved)
    study = load_study(moved / "studies" / "calls.py")
    assert study.design.factors["cluster_size"] == [3, 5] and study.design.factors["subcluster_size"] == [8]
    assert study.dgp.pilot.nested_ids == "within" and study.dgp.truth()["var(rep)"] == pilot.variances["var(rep)"]
    data = study.dgp.generate(np.random.default_rng(0), n_clusters=24, cluster_size=3, subcluster_size=8)
    assert data["call_CSAT"].size == 24 * 3 * 8


def test_slope_and_pilot_random_effects_study_runs(project, capsys):
    study_file = project / "studies" / "growth.py"
    code, out, err = run_cli(capsys, "pilot", project / "data" / "dietox.csv", "--formula", "Weight ~ Time",
                             "--groups", "Pig", "--slope", "Time", "--treatment-level", "Pig", "--treatment-by",
                             "Time", "--random-effects", "pilot", "--clusters", "72", "100", "--effect", "0.5",
                             "--reps", "50", "--seed", "7", "--out", study_file)
    assert code == 0, err
    assert out.rstrip().endswith("--estimator lmm --param treat:Time")  # one effect level: nothing to hold
    study = load_study(study_file)
    assert study.reps == 50 and study.seed == 7 and study.dgp.keep_pilot and study.dgp.random_effects == "pilot"
    code, out, err = run_cli(capsys, "run", study_file, "--reps", "2", "--jobs", "1", "--quiet", "--out",
                             project / "results")
    assert code == 0, err
    est = read_netcdf(project / "results" / "estimates.nc")
    assert float(est["true"].sel(n_clusters=100, effect=0.5, estimator="lmm", param="treat:Time")) == 0.5
    assert (est["status"].sel(estimator="lmm").values >= 0).all()


def test_power_search_runs_on_the_written_study(project, capsys):
    study_file = project / "studies" / "litters.py"
    code, _, err = run_cli(capsys, "pilot", project / "data" / "dietox.csv", "--formula", "Weight ~ Time",
                           "--groups", "Litter", "Pig", "--treatment-level", "Litter", "--effect", "0", "6",
                           "--out", study_file)
    assert code == 0, err
    code, out, err = run_cli(capsys, "power", study_file, "--factor", "n_clusters", "--estimator", "lmm", "--param",
                             "treat", "--set", "effect=6.0", "--range", "4:40", "--start-reps", "50", "--max-reps",
                             "100", "--jobs", "1", "--quiet", "--out", project / "power")
    assert code == 0, err
    assert "smallest n_clusters with power >= 0.8 for treat (lmm)" in out


def test_existing_study_file_is_kept_unless_forced(project, capsys):
    study_file = project / "studies" / "mine.py"
    study_file.write_text("# my edits\n")
    argv = ["pilot", project / "data" / "dietox.csv", "--formula", "Weight ~ Time", "--groups", "Pig", "--out",
            study_file]
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "exists; pass --force")
    assert study_file.read_text() == "# my edits\n" and out == ""
    code, out, err = run_cli(capsys, *argv, "--force")
    assert code == 0, err
    assert "load_pilot(" in study_file.read_text()


def test_without_out_the_fit_is_printed(capsys):
    code, out, err = run_cli(capsys, "pilot", CALLS, "--formula", "call_CSAT ~ C(reason) + age", "--groups",
                             "centre", "rep", "--nested-ids", "within")
    assert code == 0, err
    assert "12 centre, rep per centre 5" in out and "var(rep)" in out and "add --out" in out


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "argv", "fragment"),
    [
        (None, ["--formula", "y ~ x", "--groups", "g"], "does not exist"),
        ("", ["--formula", "y ~ x", "--groups", "g"], "cannot read pilot file"),
        ("g,x,y\n1,0.1,1\n1,0.2,2\n2,0.3,1\n2,0.5,3\n", ["--formula", "y ~ z", "--groups", "g"], "no column 'z'"),
        ("g,x,y\n1,0.1,a\n1,0.2,2\n2,0.3,1\n2,0.5,3\n", ["--formula", "y ~ x", "--groups", "g"],
         "response 'y' must be numeric"),
        ("g,x,y\n1,0.1,1\n1,0.2,2\n1,0.3,1\n1,0.5,3\n", ["--formula", "y ~ x", "--groups", "g"], "at least 2"),
        ("g,x,y\n1,0.1,1\n1,0.2,1\n2,0.3,1\n2,0.5,1\n", ["--formula", "y ~ x", "--groups", "g"],
         "cannot fit the pilot"),
        ("g,x,y\n1,0.1,1\n1,0.2,2\n2,0.3,1\n2,0.5,3\n", ["--formula", "y ~ x", "--groups", "a", "b", "c"],
         "--groups takes one grouping column"),
        ("g,x,y\n1,0.1,1\n1,0.2,2\n2,0.3,1\n2,0.5,3\n", ["--formula", "y ~ x", "--groups", "g",
                                                          "--treatment-level", "g"], "give --out"),
    ],
)
def test_bad_pilot_files_are_one_line_with_exit_2(tmp_path, capsys, content, argv, fragment):
    path = tmp_path / "pilot.csv" if content is None else _csv(tmp_path, "pilot.csv", content)
    code, _, err = run_cli(capsys, "pilot", path, *argv)
    assert_one_line_error(code, err, fragment)


def test_bad_study_options_are_one_line(project, capsys):
    argv = ["pilot", project / "data" / "dietox.csv", "--formula", "Weight ~ Time", "--groups", "Pig", "--out",
            project / "studies" / "x.py"]
    code, _, err = run_cli(capsys, *argv, "--treatment-level", "Litter")
    assert_one_line_error(code, err, "treatment_level must be one of Pig, unit")
    code, _, err = run_cli(capsys, *argv, "--effect", "1")
    assert_one_line_error(code, err, "effects need a treatment_level or effect_of")
    assert not (project / "studies" / "x.py").exists()
