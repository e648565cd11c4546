"""numpy.testing and numpy.f2py load on first use, not with scipy; reading modules' namespaces loads nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCIPY_IMPORT = """
import sys
from simstudy import lazy_modules
deferred = lazy_modules.defer() if sys.argv[1] == "defer" else []
import scipy.linalg, scipy.special
loaded = [m for m in ("numpy.testing", "numpy.f2py", "unittest") if m in sys.modules
          and type(sys.modules[m]).__name__ != "_LazyModule"]
print(deferred, loaded)
if deferred:
    import numpy as np
    np.testing.assert_allclose(np.ones(2), [1.0, 1.0])  # the first use loads numpy.testing in place
    from numpy.testing import assert_equal
    assert_equal(1, 1)
    import numpy.f2py
    assert callable(numpy.f2py.run_main) and "unittest" in sys.modules
    print("used")
"""


def run(arg: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", SCIPY_IMPORT, arg], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    return out.stdout.strip().splitlines()


def test_scipy_loads_numpy_testing_unless_deferred_and_deferred_modules_work_when_used():
    assert run("plain") == ["[] ['numpy.testing', 'numpy.f2py', 'unittest']"]  # what the deferral is for
    assert run("defer") == ["['numpy.testing', 'numpy.f2py'] []", "used"]


def test_namespace_reads_a_deferred_module_without_loading_it():
    code = """
import sys, types
from simstudy.lazy_modules import defer, namespace
defer()
mod = sys.modules["numpy.testing"]
print(namespace(mod)["__file__"].endswith("__init__.py"), type(mod).__name__, namespace(42))
assert defer() == []  # already there: left alone
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "_LazyModule", "{}"]


def test_a_run_from_the_command_line_never_loads_numpy_testing(tmp_path):
    code = f"""
import sys
sys.argv = ["simstudy", "run", {str(ROOT / "tests" / "toy_study.py")!r}, "--reps", "4", "--out",
            {str(tmp_path / "out")!r}, "--quiet", "--jobs", "1"]
from simstudy.cli import main, lazy_modules
lazy_modules.defer_before_scipy()
assert "numpy" not in sys.modules
assert main() == 0
print(type(sys.modules["numpy.testing"]).__name__, "unittest" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["_LazyModule", "False"]


def test_the_console_script_defers_only_when_scipy_loads_and_help_imports_no_numpy():
    code = """
import sys
sys.argv = ["simstudy", "--help"]
from simstudy.cli import console
try:
    console()
except SystemExit:
    pass
print("numpy" in sys.modules, any(type(f).__name__ == "_BeforeScipy" for f in sys.meta_path))
import scipy.special
print(type(sys.modules["numpy.testing"]).__name__, any(type(f).__name__ == "_BeforeScipy" for f in sys.meta_path))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split()[-4:] == ["False", "True", "_LazyModule", "False"]
