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
from simstudy.display import cell as value_mcse
from simstudy.report import tex_escape, write_report
from simstudy.runner import RunConfig, run_study
from simstudy.store import read_netcdf
from simstudy.study import load_study

STUDY = Path(__file__).resolve().parents[1] / "studies" / "cluster_trial.py"
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


def test_every_table_is_present(run_dir: Path, page: str):
    tables = parse(page).tables
    assert tables["table-measures_treat"] == 2 * 2 * len(METHODS)  # cells x methods
    assert tables["table-failures"] == 2 * 2 * len(METHODS)
    assert tables["table-design"] == 4  # n_groups, group_size, icc, treatment_effect
    assert tables["table-methods"] == len(METHODS)
    assert tables["table-provenance"] > 5 and tables["table-versions"] > 5
    for stem in ("measures_treat", "failures"):
        assert (run_dir / "tables" / f"{stem}.md").is_file()
        assert (run_dir / "tables" / f"{stem}.tex").is_file()


def test_tables_hold_measures_with_mcse(run_dir: Path, page: str):
    summary = read_netcdf(run_dir / "summary.nc")
    one = summary.sel({"param": "treat", "method": "lmm"}).isel(n_groups=1, icc=1, group_size=0, treatment_effect=0)
    text = value_mcse(float(one["coverage"]), float(one["coverage_mcse"]), 4)
    markdown = (run_dir / "tables" / "measures_treat.md").read_text()
    header = markdown.splitlines()[0]
    for column in ("n_groups", "icc", "method", "bias", "emp_se", "model_se", "coverage", "power"):
        assert f" {column} " in header
    assert "group_size" not in header  # one level only: in the caption instead
    row = next(line for line in markdown.splitlines() if line.startswith("| 12 | 0.2 | lmm |"))
    assert text in row
    assert text in page
    assert len([line for line in markdown.splitlines() if line.startswith("| ")]) == 1 + 16
    assert "Table: Performance measures for treat" in markdown


def test_latex_tables_are_escaped_booktabs(run_dir: Path):
    tex = (run_dir / "tables" / "measures_treat.tex").read_text()
    # n_groups, icc, method; 10 measures (rel_precision against the first estimator) and valid/reps
    assert "\\begin{tabular}{lll" + "r" * 11 + "}" in tex
    assert "n\\_groups" in tex and "\\toprule" in tex and "\\bottomrule" in tex
    assert tex.count(" \\\\") == 1 + 16  # header and one row per cell and method
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1
    assert "\\label{tab:measures_treat}" in tex
    failures = (run_dir / "tables" / "failures.tex").read_text()
    assert "boundary" in failures
    assert tex_escape("a_b & 50% {x} $y$ #1 ~ ^ \\") == \
        "a\\_b \\& 50\\% \\{x\\} \\$y\\$ \\#1 \\textasciitilde{} \\textasciicircum{} \\textbackslash{}"


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
    teaching = Path(__file__).resolve().parents[1] / "studies" / "teaching_methods.py"
    study = replace(load_study(teaching), design=Design(
        {"instructors_per_method": [3], "students_per_instructor": [5], "instructor_sd": [3.0]}))
    out = tmp_path / "run"
    run_study(study, RunConfig(reps=4, jobs=1, quiet=True, out=out))
    write_report(out, figures=False)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "not estimable: C(method)[T.1] is collinear with the fixed effects of instructor" in page
    summary = read_netcdf(out / "summary.nc")
    note = summary["note"].sel({"method": "ols_dummies", "param": "C(method)[T.2]"}).values.ravel()[0]
    assert note == "not estimable: C(method)[T.2] is collinear with the fixed effects of instructor"
