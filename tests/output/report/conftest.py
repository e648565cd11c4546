"""A small real run of the cluster-trial study and its report (with figures, and without: the table tests do
not depend on the figure code), made once per session for the report tests; and an HTML checker."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from simstudy.design import Design
from simstudy.engine.runner import RunConfig, run_study
from simstudy.output.report import write_report
from simstudy.study import load_study
from support import STUDIES

STUDY = STUDIES / "cluster_trial.py"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def finished_run(out: Path) -> Path:
    """A finished run (2 x 2 cells x 30 replicates x 4 methods) in ``out``."""
    study = replace(load_study(STUDY), design=Design(
        {"n_groups": [6, 12], "group_size": [5], "icc": [0.05, 0.2], "treatment_effect": [0.3]}))
    run_study(study, RunConfig(reps=30, jobs=1, quiet=True, out=out, command="simstudy run cluster_trial.py"))
    return out


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run and its report."""
    out = finished_run(tmp_path_factory.mktemp("report") / "run")
    write_report(out)
    return out


@pytest.fixture(scope="session")
def page(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tables_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run of ``run_dir`` reported without figures."""
    out = finished_run(tmp_path_factory.mktemp("tables") / "run")
    write_report(out, figures=False)
    return out


@pytest.fixture(scope="session")
def tables_page(tables_run: Path) -> str:
    return (tables_run / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def figures() -> set[str]:
    """The stems of the figures the report of the run draws."""
    return {"coverage_treat", "nested_loop_coverage_treat", "zip_treat", "bias_treat", "se_treat", "power_treat",
            "failures"}


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


@pytest.fixture(scope="session")
def parse():
    """``parse(page)``: a :class:`Checker` fed with the page."""

    def parse(page: str) -> Checker:
        checker = Checker()
        checker.feed(page)
        checker.close()
        return checker

    return parse
