"""Every Python code block of the README and docs/guide.md runs as it stands, in order, in a fresh directory."""

from __future__ import annotations

import os
import re
import shutil
import sys
import types
from pathlib import Path

import matplotlib
import pytest

from support import ROOT

BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("doc", ["docs/guide.md", "README.md", "docs/pilot.md"])
def test_code_blocks_run(doc, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    code = blocks(ROOT / doc)
    assert code, f"{doc} has no Python code blocks"
    shutil.copytree(ROOT / "studies", tmp_path / "studies")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIMSTUDY_DOCS_TEST", "1")
    module = types.ModuleType("simstudy_docs_example")  # a module of its own, as a notebook's __main__
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for k, source in enumerate(code, 1):
        try:
            exec(compile(source, f"{doc}[block {k}]", "exec"), module.__dict__)  # noqa: S102 - the docs' code
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{doc}, code block {k} failed: {type(exc).__name__}: {exc}")
    assert os.getcwd() == str(tmp_path)
