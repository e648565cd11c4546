"""The table front end on the published reference tables, checked against independent pandas sums."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simstudy.stats.table import read_table, summarize_table


def independent(g: pd.DataFrame, true: float, crit=None, lo=None, hi=None) -> dict[str, float]:
    """Measures of one group written out from Morris et al. (2019), Table 6, with pandas."""
    g = g.dropna(subset=["est", "se"])
    n = len(g)
    b, s = g["est"], g["se"]
    out = {"n_valid": n, "bias": (b - true).mean(), "bias_mcse": b.std() / np.sqrt(n)}
    out["emp_se"] = b.std()
    out["emp_se_mcse"] = b.std() / np.sqrt(2 * (n - 1))
    out["model_se"] = np.sqrt((s**2).mean())
    out["model_se_mcse"] = np.sqrt((s**2).var() / (4 * n * out["model_se"] ** 2))
    out["mse"] = ((b - true) ** 2).mean()
    out["mse_mcse"] = ((b - true) ** 2).std() / np.sqrt(n)
    ratio = out["model_se"] / out["emp_se"]
    out["rel_error"] = 100 * (ratio - 1)
    out["rel_error_mcse"] = 100 * ratio * np.sqrt((s**2).var() / (4 * n * out["model_se"] ** 4) + 1 / (2 * (n - 1)))
    if lo is None:
        c = crit(g) if callable(crit) else crit
        lo, hi = b - c * s, b + c * s
    else:
        lo, hi = g[lo], g[hi]
    cover = ((lo <= true) & (true <= hi)).mean()
    out["coverage"], out["coverage_mcse"] = cover, np.sqrt(cover * (1 - cover) / n)
    be = ((lo <= b.mean()) & (b.mean() <= hi)).mean()
    out["be_coverage"] = be
    pw = ((lo > 0) | (hi < 0)).mean()
    out["power"], out["power_mcse"] = pw, np.sqrt(pw * (1 - pw) / n)
    return out


def check(summary, sel: dict, expected: dict[str, float]) -> None:
    s = summary.sel(sel)
    for name, value in expected.items():
        assert float(s[name]) == pytest.approx(value, rel=1e-10, abs=1e-12), (sel, name)


def test_relhaz_by_two_factors(reference):
    t = reference("relhaz")
    summary = summarize_table(t, estimate="theta", se="se", true=-0.5, method="model", by=["n", "baseline"])
    assert set(summary["bias"].dims) == {"n", "baseline", "estimator", "param"}
    z = stats.norm.ppf(0.975)
    for (n, base, model), g in t.groupby(["n", "baseline", "model"]):
        g = g.rename(columns={"theta": "est"})
        check(summary, {"n": n, "baseline": base, "estimator": model, "param": "theta"},
              independent(g, -0.5, crit=z))


def test_frailty_two_parameters_and_missing_values(reference):
    t = reference("frailty")
    truth = {"trt": -0.5, "fv": 0.75}
    summary = summarize_table(t, estimate="b", se="se", true=truth, param="par", method="model",
                              by=["fv_dist"], rep="i")
    z = stats.norm.ppf(0.975)
    dropped = 0
    for (dist, par, model), g in t.groupby(["fv_dist", "par", "model"]):
        g = g.rename(columns={"b": "est"})
        exp = independent(g, truth[par], crit=z)
        check(summary, {"fv_dist": dist, "param": par, "estimator": model}, exp)
        s = summary.sel({"fv_dist": dist, "param": par, "estimator": model})
        assert int(s["n_rep"]) == len(g)
        dropped += len(g) - exp["n_valid"]
    assert dropped == int(summary["n_failed"].sum()) > 0


@pytest.mark.parametrize("mode", ["limits", "t"])
def test_tt_coverage_from_limits_and_from_t(reference, mode):
    t = reference("tt")
    kwargs = {"ci": ("conf.low", "conf.high")} if mode == "limits" else {"df": "df"}
    summary = summarize_table(t, estimate="diff", se="se", true=-1, estimator="method", by=["dgm"],
                              rep="repno", **kwargs)
    for (dgm, method), g in t.groupby(["dgm", "method"]):
        g = g.rename(columns={"diff": "est"})
        if mode == "limits":
            exp = independent(g, -1.0, lo="conf.low", hi="conf.high")
        else:
            exp = independent(g, -1.0, crit=lambda h: stats.t.ppf(0.975, h["df"]))
        check(summary, {"dgm": dgm, "estimator": str(method), "param": "diff"}, exp)


def test_level_changes_coverage(reference):
    t = reference("MIsim")
    s90 = summarize_table(t, estimate="b", se="se", true=0.5, estimator="method", level=0.9)
    s95 = summarize_table(t, estimate="b", se="se", true=0.5, estimator="method")
    assert (s90["coverage"] < s95["coverage"]).all()


def test_truth_from_column(reference):
    t = reference("MIsim").assign(truth=0.5)
    a = summarize_table(t, estimate="b", se="se", true="truth", estimator="method")
    b = summarize_table(t, estimate="b", se="se", true=0.5, estimator="method")
    np.testing.assert_array_equal(a["bias"], b["bias"])


def _table() -> pd.DataFrame:
    return pd.DataFrame({"rep": [1, 2, 3, 1, 2, 3], "m": list("AAABBB"),
                         "b": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "se": [0.1] * 6})


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda t: t, {"se": "nope"}, "column 'nope' is not in the table"),
        (lambda t: t.assign(b=["x", "0.2", "0.3", "0.4", "0.5", "0.6"]), {}, "column 'b' must be numeric"),
        (lambda t: t.assign(b=[np.nan] * 3 + [0.4, 0.5, 0.6]), {}, "estimator 'A' has no non-missing"),
        (lambda t: t.iloc[[0, 3]], {}, "single replicate"),
        (lambda t: t.assign(rep=[1, 1, 2, 1, 2, 3]), {}, "replicate id 1 appears more than once"),
        (lambda t: t, {"ref": "Z"}, "reference estimator 'Z'"),
        (lambda t: t, {"true": {"other": 1.0}}, "no true value given for parameter 'b'"),
    ],
)
def test_bad_tables_raise_one_clear_value_error(change, kwargs, message):
    args = {"estimate": "b", "se": "se", "true": 0.5, "estimator": "m", "rep": "rep"} | kwargs
    with pytest.raises(ValueError, match=message):
        summarize_table(change(_table()), **args)


def test_read_table_parquet_and_missing(tmp_path):
    path = tmp_path / "t.parquet"
    _table().to_parquet(path)
    assert read_table(path).equals(_table())
    with pytest.raises(ValueError, match="does not exist"):
        read_table(tmp_path / "nope.csv")


def test_negative_standard_errors_are_refused():
    # defect: summarize accepted negative SEs (model SE 0.17 instead of 0.10, coverage 0.92)
    t = pd.DataFrame({"b": [0.4, 0.6, 0.5], "se": [0.1, -0.1, 0.1], "m": ["A", "A", "A"]})
    with pytest.raises(ValueError, match="column 'se' has negative standard errors \\(row 2: -0.1\\)"):
        summarize_table(t, estimate="b", se="se", true=0.5, estimator="m")


def test_estimator_column_is_also_accepted_as_method():
    t = pd.DataFrame({"b": [0.4, 0.6, 0.5, 0.7], "se": [0.1] * 4, "m": ["A", "A", "B", "B"]})
    a = summarize_table(t, estimate="b", se="se", true=0.5, estimator="m")
    b = summarize_table(t, estimate="b", se="se", true=0.5, method="m")
    assert a.identical(b) and list(a["estimator"].values) == ["A", "B"]
    assert float(a["bias"].sel(estimator="B", param="b")) == pytest.approx(0.1)  # sel by keyword: no collision
