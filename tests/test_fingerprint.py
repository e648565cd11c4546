"""Descriptions are deterministic; fingerprints change with what changes results."""

from __future__ import annotations

from simstudy.estimators import OLS
from simstudy.fingerprint import _code_digest, cell_fingerprint, describe, label


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
