"""write_report: the files of a finished run's report (page, figures, tables), without figures or estimates,
and bad input refused with one line."""

from __future__ import annotations

import base64
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from simstudy.design import Design
from simstudy.engine.runner import RunConfig, run_study
from simstudy.engine.store import read_netcdf, write_netcdf
from simstudy.output.report import write_report
from simstudy.study import load_study
from support import STUDIES

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_image_is_an_embedded_png(run_dir: Path, page: str, figures, parse):
    images = parse(page).images
    files = sorted((run_dir / "figures").glob("*.png"))
    assert {f.stem for f in files} == figures
    assert len(images) == len(files)
    for src in images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == PNG
    # the embedded bytes are the files' bytes: the page needs nothing beside it
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in images}
    assert embedded == {f.read_bytes() for f in files}
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # no external resource
    for kind in ("pdf", "svg"):
        assert {f.stem for f in (run_dir / "figures").glob(f"*.{kind}")} == figures


def test_every_table_is_written_as_markdown_and_latex(tables_run: Path):
    for stem in ("measures_treat", "measures_treat_more", "failures"):
        assert (tables_run / "tables" / f"{stem}.md").is_file()
        assert (tables_run / "tables" / f"{stem}.tex").is_file()


def test_no_failures_is_one_sentence_and_no_table(tables_run: Path, tmp_path: Path, parse):
    summary = read_netcdf(tables_run / "summary.nc")
    for key in ("n_fit_failed", "n_nonconverged", "n_boundary"):
        summary[key] = summary[key] * 0
    write_netcdf(summary, tmp_path / "summary.nc")
    for name in ("study.json", "estimates.nc"):
        shutil.copy(tables_run / name, tmp_path / name)
    shutil.copytree(tables_run / "tables", tmp_path / "tables")  # a failures table from an earlier report
    checker = parse(write_report(tmp_path, figures=False).read_text())
    assert checker.errors == []
    assert "table-failures" not in checker.tables
    text = " ".join(checker.text)
    assert "None of the 480 fits (replicates \u00d7 estimators over all cells) failed, failed to converge or ended " \
           "on the boundary." in text
    assert not (tmp_path / "tables" / "failures.md").exists() and not (tmp_path / "tables" / "failures.tex").exists()


def test_without_figures_and_without_estimates(run_dir: Path, tmp_path: Path, figures, parse):
    for name in ("summary.nc", "study.json", "estimates.nc"):
        shutil.copy(run_dir / name, tmp_path / name)
    out = write_report(tmp_path, figures=False)
    checker = parse(out.read_text())
    assert checker.images == [] and checker.errors == []
    assert "table-measures_treat" in checker.tables
    assert not (tmp_path / "figures").exists()

    (tmp_path / "estimates.nc").unlink()
    checker = parse(write_report(tmp_path).read_text())
    assert len(checker.images) == len(figures) - 1  # all but the zip plot
    assert not (tmp_path / "figures" / "zip_treat.png").exists()
    assert "zip plots are left out" in " ".join(checker.text)


def test_bad_input_is_one_clear_line(tmp_path: Path, run_dir: Path):
    cases = []
    with pytest.raises(ValueError, match="is not a directory") as info:
        write_report(tmp_path / "nowhere")
    cases.append(info)
    with pytest.raises(ValueError, match="has no summary.nc") as info:
        write_report(tmp_path)
    cases.append(info)
    (tmp_path / "summary.nc").write_text("not netCDF")
    with pytest.raises(ValueError, match="cannot read") as info:
        write_report(tmp_path)
    cases.append(info)
    shutil.copy(run_dir / "summary.nc", tmp_path / "summary.nc")
    with pytest.raises(ValueError, match="has no study.json") as info:
        write_report(tmp_path)
    cases.append(info)
    assert all("\n" not in str(i.value) for i in cases)
    assert not (tmp_path / "report.html").exists()


def test_not_estimable_parameters_appear_in_the_report(tmp_path):
    # defect: OLS with instructor dummies returns NaN method effects with a reason; the report said nothing
    teaching = STUDIES / "teaching_methods.py"
    study = replace(load_study(teaching), design=Design(
        {"instructors_per_method": [3], "students_per_instructor": [5], "instructor_sd": [3.0]}))
    out = tmp_path / "run"
    run_study(study, RunConfig(reps=4, jobs=1, quiet=True, out=out))
    write_report(out, figures=False)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "not estimable: C(method)[T.1] is collinear with the fixed effects of instructor" in page
    summary = read_netcdf(out / "summary.nc")
    note = summary["note"].sel({"estimator": "ols_dummies", "param": "C(method)[T.2]"}).values.ravel()[0]
    assert note == "not estimable: C(method)[T.2] is collinear with the fixed effects of instructor"
