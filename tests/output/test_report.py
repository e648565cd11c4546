"""write_report: a self-contained HTML report, figures and Markdown/LaTeX tables from a finished run."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from simstudy.design import Design
from simstudy.engine.runner import RunConfig, run_study
from simstudy.engine.store import read_netcdf, write_netcdf
from simstudy.output.report import MORE_MEASURES, TABLE_DIGITS, TABLE_MEASURES, tex_escape, write_report
from simstudy.output.tables import MEASURE_LABELS
from simstudy.study import load_study
from support import STUDIES

STUDY = STUDIES / "cluster_trial.py"
PNG = b"\x89PNG\r\n\x1a\n"
METHODS = ["ols", "ols_cluster", "lmm", "lmm_t"]
FIGURES = {"coverage_treat", "nested_loop_coverage_treat", "zip_treat", "bias_treat", "se_treat", "power_treat",
           "failures"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run (2 x 2 cells x 30 replicates x 4 methods) and its report."""
    study = replace(load_study(STUDY), design=Design(
        {"n_groups": [6, 12], "group_size": [5], "icc": [0.05, 0.2], "treatment_effect": [0.3]}))
    out = tmp_path_factory.mktemp("report") / "run"
    run_study(study, RunConfig(reps=30, jobs=1, quiet=True, out=out, command="simstudy run cluster_trial.py"))
    write_report(out)
    return out


@pytest.fixture(scope="module")
def page(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tables_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run of ``run_dir`` reported without figures: the table tests do not depend on the figure code."""
    study = replace(load_study(STUDY), design=Design(
        {"n_groups": [6, 12], "group_size": [5], "icc": [0.05, 0.2], "treatment_effect": [0.3]}))
    out = tmp_path_factory.mktemp("tables") / "run"
    run_study(study, RunConfig(reps=30, jobs=1, quiet=True, out=out, command="simstudy run cluster_trial.py"))
    write_report(out, figures=False)
    return out


@pytest.fixture(scope="module")
def tables_page(tables_run: Path) -> str:
    return (tables_run / "report.html").read_text(encoding="utf-8")


def failing(summary) -> dict[tuple[int, float, str], tuple[int, int, int]]:
    """(n_groups, icc, estimator) -> (fit failed, not converged, boundary), for those with any."""
    out = {}
    for g in summary.coords["n_groups"].values:
        for icc in summary.coords["icc"].values:
            for m in METHODS:
                one = summary.sel({"n_groups": g, "icc": icc, "estimator": m}).isel(group_size=0, treatment_effect=0)
                counts = tuple(int(one[k]) for k in ("n_fit_failed", "n_nonconverged", "n_boundary"))
                if any(counts):
                    out[(int(g), float(icc), m)] = counts
    return out


def fill_down(rows: list[list[str]], stub: int) -> list[list[str]]:
    """Undo the blank repeated levels of a sparse table's first ``stub`` columns."""
    out, above = [], [""] * stub
    for row in rows:
        row = [v or above[i] if i < stub else v for i, v in enumerate(row)]
        above = row[:stub]
        out.append(row)
    return out


def md_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line[1:-1].split(" | ")] for line in lines]


def html_rows(page: str, table_id: str) -> list[list[str]]:
    """The text of each cell of each row of one table of the page."""
    table = re.search(rf'<table id="{table_id}".*?</table>', page, re.S).group(0)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)]


class Checker(HTMLParser):
    """Records tag nesting errors, images, tables (with their rows) and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.tables: dict[str, int] = {}
        self.table: str | None = None
        self.in_tbody = False
        self.text: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self.table = attrs.get("id") or f"anonymous-{len(self.tables)}"
            self.tables[self.table] = 0
        if tag == "tbody":
            self.in_tbody = True
        if tag == "tr" and self.in_tbody and self.table:
            self.tables[self.table] += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append(f"end tag for void element {tag}")
        elif not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()
        if tag == "tbody":
            self.in_tbody = False

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    return checker


def test_report_is_valid_html(run_dir: Path, page: str):
    checker = parse(page)
    assert checker.doctype
    assert checker.errors == []
    assert checker.stack == []  # every element closed
    assert page.count("<html") == page.count("</html>") == 1


def test_every_image_is_an_embedded_png(run_dir: Path, page: str):
    images = parse(page).images
    files = sorted((run_dir / "figures").glob("*.png"))
    assert {f.stem for f in files} == FIGURES
    assert len(images) == len(files)
    for src in images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == PNG
    # the embedded bytes are the files' bytes: the page needs nothing beside it
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in images}
    assert embedded == {f.read_bytes() for f in files}
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # no external resource


def test_every_table_is_present(tables_run: Path, tables_page: str):
    tables = parse(tables_page).tables
    summary = read_netcdf(tables_run / "summary.nc")
    assert tables["table-measures_treat"] == 2 * 2 * len(METHODS)  # cells x methods
    assert tables["table-measures_treat_more"] == 2 * 2 * len(METHODS)
    assert tables["table-failures"] == len(failing(summary)) > 0  # only the cells and methods with failures
    assert tables["table-design"] == 4  # n_groups, group_size, icc, treatment_effect
    assert tables["table-methods"] == len(METHODS)
    assert tables["table-provenance"] > 5 and tables["table-versions"] > 5
    for stem in ("measures_treat", "measures_treat_more", "failures"):
        assert (tables_run / "tables" / f"{stem}.md").is_file()
        assert (tables_run / "tables" / f"{stem}.tex").is_file()


def test_tables_hold_measures_with_mcse(tables_run: Path, tables_page: str):
    summary = read_netcdf(tables_run / "summary.nc")
    one = summary.sel({"param": "treat", "estimator": "lmm"}).isel(n_groups=1, icc=1, group_size=0, treatment_effect=0)
    d = TABLE_DIGITS
    value, mcse = f"{float(one['coverage']):.{d}f}", f"({float(one['coverage_mcse']):.{d}f})"
    column = 3 + TABLE_MEASURES.index("coverage")
    # the page: value (MCSE)
    header, *rows = html_rows(tables_page, "table-measures_treat")
    assert header == ["n groups", "icc", "Estimator", *(MEASURE_LABELS[m] for m in TABLE_MEASURES), "Valid/reps"]
    assert len(rows) == 16
    row = next(r for r in fill_down(rows, 2) if r[:3] == ["12", "0.2", "lmm"])
    assert row[column] == f"{value} {mcse}"
    # the files: the MCSE in the row under the value
    markdown = (tables_run / "tables" / "measures_treat.md").read_text()
    header, *rows = md_rows(markdown)
    assert header == ["n groups", "icc", "Estimator", *(MEASURE_LABELS[m] for m in TABLE_MEASURES), "Valid/reps"]
    assert "group size" not in header  # one level only: in the caption instead
    assert len(rows) == 2 * 16
    at = [r[:3] for r in fill_down(rows, 2)].index(["12", "0.2", "lmm"])
    assert rows[at][column] == value and rows[at + 1][column] == mcse and rows[at + 1][:3] == ["", "", ""]
    assert "Table: Performance of the estimators for treat" in markdown
    assert "Held fixed: group size = 5, treatment effect = 0.3." in markdown
    more = md_rows((tables_run / "tables" / "measures_treat_more.md").read_text())[0]
    assert more[3:] == [MEASURE_LABELS[m] for m in MORE_MEASURES]


def test_report_tables_fit_without_sideways_scrolling(tables_run: Path, tables_page: str):
    header, *rows = html_rows(tables_page, "table-measures_treat")
    assert len(header) <= 11  # 2 factors, the estimator, 6 measures, valid/reps: not 13 columns
    assert max(sum(len(c) for c in r) for r in rows) < 120  # characters of the widest row
    # the other measures are folded away under the main table
    folded = re.search(r"<details>\s*<summary>More measures: ([^<]*)</summary>\s*<div class=\"scroll\">\s*"
                       r'<table id="table-measures_treat_more"', tables_page)
    assert folded and folded.group(1) == ", ".join(MEASURE_LABELS[m] for m in MORE_MEASURES)


def test_latex_tables_are_escaped_booktabs(tables_run: Path):
    tex = (tables_run / "tables" / "measures_treat.tex").read_text()
    # n_groups, icc, estimator; 6 measures and valid/reps
    assert "\\begin{tabular}{lll" + "r" * 7 + "}" in tex
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "ols\\_cluster" in tex and "lmm\\_t" in tex
    assert tex.count(" \\\\") == 1 + 2 * 16  # header, and a row of values and one of MCSEs per cell and method
    for line in tex.splitlines():
        if line.endswith(" \\\\"):
            assert len(re.split(r"(?<!\\)&", line)) == 10
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1
    assert "\\label{tab:measures_treat}" in tex
    failures = (tables_run / "tables" / "failures.tex").read_text()
    assert "Boundary" in failures and "\\label{tab:failures}" in failures
    assert tex_escape("a_b & 50% {x} $y$ #1 ~ ^ \\") == \
        "a\\_b \\& 50\\% \\{x\\} \\$y\\$ \\#1 \\textasciitilde{} \\textasciicircum{} \\textbackslash{}"


def test_failures_table_lists_exactly_the_cells_with_failures(tables_run: Path, tables_page: str):
    summary = read_netcdf(tables_run / "summary.nc")
    markdown = (tables_run / "tables" / "failures.md").read_text()
    header, *rows = md_rows(markdown)
    assert header == ["n groups", "icc", "Estimator", "Replicates", "Fit failed", "Not converged", "Boundary"]
    listed = {(int(r[0]), float(r[1]), r[2]): tuple(int(v) for v in r[4:]) for r in rows}
    assert listed == failing(summary)
    assert "Only the cells and estimators with at least one such fit are listed" in markdown
    assert "Only the cells and estimators with at least one such fit are listed" in tables_page


def test_no_failures_is_one_sentence_and_no_table(tables_run: Path, tmp_path: Path):
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


def test_ademp_failures_and_provenance(run_dir: Path, page: str):
    text = " ".join(parse(page).text)
    for heading in ("Aims", "Data-generating mechanisms", "Estimands", "Methods", "Performance measures",
                    "Failures", "Provenance"):
        assert heading in text
    study = load_study(STUDY)
    assert study.description["aims"] in text
    assert study.description["estimands"] in text
    summary = read_netcdf(run_dir / "summary.nc")
    boundary = int(summary["n_boundary"].sum())
    assert f"{boundary} boundary" in text
    assert "20261126" in text  # seed
    assert "simstudy run cluster_trial.py" in text  # command
    assert np.__version__ in text  # versions
    assert "started" in text and "finished" in text


def test_without_figures_and_without_estimates(run_dir: Path, tmp_path: Path):
    for name in ("summary.nc", "study.json", "estimates.nc"):
        shutil.copy(run_dir / name, tmp_path / name)
    out = write_report(tmp_path, figures=False)
    checker = parse(out.read_text())
    assert checker.images == [] and checker.errors == []
    assert "table-measures_treat" in checker.tables
    assert not (tmp_path / "figures").exists()

    (tmp_path / "estimates.nc").unlink()
    checker = parse(write_report(tmp_path).read_text())
    assert len(checker.images) == len(FIGURES) - 1  # all but the zip plot
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


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: Appended to a copy of the report: after loading, writes how many images decoded into the DOM.
PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=60)


def test_report_opens_in_headless_chromium(run_dir: Path, page: str, tmp_path: Path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); "
                    "cannot render report.html in a browser")
    from matplotlib.image import imread

    report = run_dir / "report.html"
    shot = tmp_path / "shot.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri(), profile=tmp_path / "p1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file() and shot.read_bytes()[:8] == PNG
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert np.mean(np.any(pixels < 0.9, axis=-1)) > 0.01  # not a blank page

    dom = chromium("--dump-dom", report.as_uri(), profile=tmp_path / "p2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    n_images = len(parse(page).images)
    assert len(re.findall(r"<img\b", dom.stdout)) == n_images == len(FIGURES)
    assert 'id="table-measures_treat"' in dom.stdout and "Provenance" in dom.stdout

    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    loaded = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), profile=tmp_path / "p3")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert f'data-images-loaded="{n_images}/{n_images}"' in loaded.stdout  # every image decoded


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
