"""The report's HTML page: valid, self-contained, with every section and table, figures at their size; and it
opens in a browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from simstudy.engine.store import read_netcdf
from simstudy.output.plots import figure_bytes
from simstudy.output.report.figures import FigureSpec
from simstudy.output.report.page import figures_section
from simstudy.study import load_study
from support import STUDIES


def test_report_is_valid_html(page: str, parse):
    checker = parse(page)
    assert checker.doctype
    assert checker.errors == []
    assert checker.stack == []  # every element closed
    assert page.count("<html") == page.count("</html>") == 1


def test_every_table_is_present(tables_run: Path, tables_page: str, parse):
    tables = parse(tables_page).tables
    methods = read_netcdf(tables_run / "summary.nc").sizes["estimator"]
    assert tables["table-measures_treat"] == 2 * 2 * methods  # cells x methods
    assert tables["table-measures_treat_more"] == 2 * 2 * methods
    assert tables["table-failures"] > 0  # the cells and methods with failures (see test_measures)
    assert tables["table-design"] == 4  # n_groups, group_size, icc, treatment_effect
    assert tables["table-methods"] == methods
    assert tables["table-provenance"] > 5 and tables["table-versions"] > 5


def test_ademp_failures_and_provenance(run_dir: Path, page: str, parse):
    text = " ".join(parse(page).text)
    for heading in ("Aims", "Data-generating mechanisms", "Estimands", "Methods", "Performance measures",
                    "Failures", "Provenance"):
        assert heading in text
    study = load_study(STUDIES / "cluster_trial.py")
    assert study.description["aims"] in text
    assert study.description["estimands"] in text
    summary = read_netcdf(run_dir / "summary.nc")
    boundary = int(summary["n_boundary"].sum())
    assert f"{boundary} boundary" in text
    assert "20261126" in text  # seed
    assert "simstudy run cluster_trial.py" in text  # command
    assert np.__version__ in text  # versions
    assert "started" in text and "finished" in text


def test_figures_are_embedded_at_their_size_in_inches():
    spec = FigureSpec("coverage_treat", "Coverage of treat.", lambda: Figure(figsize=(3.0, 2.0)))
    png = figure_bytes(spec.draw(), "png", dpi=300)
    width_px = int.from_bytes(png[16:20], "big")
    assert width_px == 900
    html = "\n".join(figures_section([(spec, base64.b64encode(png).decode("ascii"), "")], True))
    assert f'width="{round(width_px * 96 / 300)}"' in html  # shown at its size in inches, not 3x
    assert "coverage_treat.pdf" in html and "coverage_treat.svg" in html and "coverage_treat.png" in html
    assert 'alt="Coverage of treat."' in html


def test_a_figure_left_out_is_named_with_the_reason():
    spec = FigureSpec("power_var", "Power.", lambda: None)
    html = "\n".join(figures_section([(spec, None, "nothing to draw")], False))
    assert "power_var left out: nothing to draw" in html
    assert "estimates.nc is missing, so the zip plots are left out." in html


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


def test_report_opens_in_headless_chromium(run_dir: Path, page: str, tmp_path: Path, figures, parse):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); "
                    "cannot render report.html in a browser")
    from matplotlib.image import imread

    report = run_dir / "report.html"
    shot = tmp_path / "shot.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri(), profile=tmp_path / "p1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert np.mean(np.any(pixels < 0.9, axis=-1)) > 0.01  # not a blank page

    dom = chromium("--dump-dom", report.as_uri(), profile=tmp_path / "p2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    n_images = len(parse(page).images)
    assert len(re.findall(r"<img\b", dom.stdout)) == n_images == len(figures)
    assert 'id="table-measures_treat"' in dom.stdout and "Provenance" in dom.stdout

    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    loaded = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), profile=tmp_path / "p3")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert f'data-images-loaded="{n_images}/{n_images}"' in loaded.stdout  # every image decoded
