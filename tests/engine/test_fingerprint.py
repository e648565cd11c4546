"""Descriptions are deterministic; fingerprints change with what changes results."""

from __future__ import annotations

from simstudy.engine.fingerprint import _code_digest, cell_fingerprint, describe, label
from simstudy.estimators import OLS


def test_describe_has_no_addresses_and_is_stable():
    a, b = describe(OLS("y ~ x", groups="g")), describe(OLS("y ~ x", groups="g"))
    assert a == b and " at 0x" not in a and "'g'" in a
    assert describe(OLS("y ~ x")) != a


def test_code_digest_follows_the_code():
    class A:
        def f(self):
            return 1

    class B:
        def f(self):
            return 2

    assert _code_digest(A) != _code_digest(B)


def test_cell_fingerprint_inputs():
    base = cell_fingerprint({"dgp": "D"}, {"n": 10}, {"x": 1.0}, 1)
    assert cell_fingerprint({"dgp": "D"}, {"n": 10.0}, {"x": 1.0}, 1) == base
    for other in (cell_fingerprint({"dgp": "E"}, {"n": 10}, {"x": 1.0}, 1),
                  cell_fingerprint({"dgp": "D"}, {"n": 11}, {"x": 1.0}, 1),
                  cell_fingerprint({"dgp": "D"}, {"n": 10}, {"x": 2.0}, 1),
                  cell_fingerprint({"dgp": "D"}, {"n": 10}, {"x": 1.0}, 2)):
        assert other != base


def test_label_is_short_and_describe_is_complete():
    est = OLS("y ~ x", groups="g", tol=1e-6)
    assert label(est) == repr(est) and "tol" not in label(est)
    assert "tol=1e-06" in describe(est)


STUDY = '''
import numpy as np
from simstudy.design import Design
from simstudy.estimators.base import Fit
from simstudy.study import Study
import helpers

SLOPE = 0.5


def noise(rng, n):
    return rng.normal(0.0, 1.0, n)


class D:
    def generate(self, rng, n=20, mu=0.0):
        """Draw."""
        return {"y": helpers.shift(noise(rng, n)) * SLOPE + mu}  # a comment

    def truth(self, n=20, mu=0.0):
        return {"m": mu}


class Mean:
    def fit(self, data):
        y = data["y"]
        return Fit(("m",), np.array([y.mean()]), np.array([1.0]), np.array([0.0]), np.array([1.0]),
                   np.array([np.nan]))


study = Study(name="fp", design=Design({"n": [10]}), dgp=D(), estimators={"m": Mean()}, reps=10, seed=1)
'''


def _parts(folder, study_text, helper_text="def shift(x):\n    return x + 1.0\n"):
    import sys

    from simstudy.engine.fingerprint import study_parts
    from simstudy.study import load_study

    (folder / "study.py").write_text(study_text)
    (folder / "helpers.py").write_text(helper_text)
    sys.modules.pop("helpers", None)
    return study_parts(load_study(folder / "study.py"))


def test_study_file_code_and_defaults_are_in_the_fingerprint(tmp_path):
    # defects: a changed module constant, helper function or generate() default reused stale checkpoints
    base = _parts(tmp_path, STUDY)
    changed = {
        "constant": _parts(tmp_path, STUDY.replace("SLOPE = 0.5", "SLOPE = 2.0")),
        "helper in the study file": _parts(tmp_path, STUDY.replace("0.0, 1.0, n)", "0.0, 2.0, n)")),
        "generate default": _parts(tmp_path, STUDY.replace("def generate(self, rng, n=20, mu=0.0)",
                                                           "def generate(self, rng, n=20, mu=0.1)")),
        "module beside the study": _parts(tmp_path, STUDY, "def shift(x):\n    return x + 2.0\n"),
        "estimator": _parts(tmp_path, STUDY.replace("y.mean()", "y.mean() + 0")),
    }
    for what, parts in changed.items():
        assert parts != base, what
    same = {
        "comment": _parts(tmp_path, STUDY.replace("# a comment", "# another comment")),
        "docstring": _parts(tmp_path, STUDY.replace('"""Draw."""', '"""Draw one replicate."""')),
        "replicates": _parts(tmp_path, STUDY.replace("reps=10", "reps=40")),
        "formatting": _parts(tmp_path, STUDY.replace("SLOPE = 0.5", "SLOPE=0.5")),
    }
    for what, parts in same.items():
        assert parts == base, what


def test_defaults_of_factors_outside_the_design_are_in_the_parts():
    from simstudy.engine.fingerprint import study_parts
    from simstudy.study import load_study
    from support import TOY

    parts = study_parts(load_study(TOY))
    assert parts["factor_defaults"] == {"sd": "1.0"}


def test_source_digest_ignores_comments_and_docstrings():
    from simstudy.engine.fingerprint import source_digest

    a = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    assert source_digest(a) == source_digest('def f(x):\n    return x+1\n')
    assert source_digest(a) != source_digest('def f(x):\n    return x + 2\n')
