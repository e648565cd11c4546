r"""Cluster-level analysis of a two-arm cluster-randomised trial: a t test on the cluster summaries.

``ClusterLevel("y ~ treat", groups="cluster")`` summarises each cluster :math:`j` by the mean of its responses,
:math:`s_j = \bar y_j` (the cluster proportion for a binary outcome, the mean count -- the cluster's rate per
unit -- for counts, the cluster mean otherwise), and compares the arms' means of those summaries, with
:math:`K - 2` degrees of freedom (K clusters, two arm means estimated).

What it estimates. With a random cluster effect :math:`u_j` and cluster sizes that do not depend on it,
:math:`E[s_j] = E_u[E(y \mid \mathrm{treat}_j, u_j)] = \pi_t` for every cluster of arm :math:`t`, whatever its
size: the arm's **marginal** (population-averaged) mean, e.g. :math:`\pi_t = E_u[\mathrm{expit}(\beta_0 +
\beta_1 t + u)]` for a random-intercept logistic model. So the mean of the cluster summaries of an arm
estimates :math:`\pi_t` (unbiasedly when unweighted), and the contrasts are marginal contrasts:

- ``scale="difference"``: ``treat`` = :math:`\pi_1 - \pi_0` (risk difference, rate difference),
  ``Intercept`` = :math:`\pi_0`; ``estimand = "difference"``;
- ``scale="log-ratio"``: ``treat`` = :math:`\log(\pi_1 / \pi_0)`, ``Intercept`` = :math:`\log \pi_0`;
  ``estimand = "log-ratio"``;
- ``scale="log-odds"`` (summaries in [0, 1]): ``treat`` = :math:`\mathrm{logit}\,\pi_1 -
  \mathrm{logit}\,\pi_0`, ``Intercept`` = :math:`\mathrm{logit}\,\pi_0`: the marginal log odds ratio that
  GEE estimates; ``estimand = "marginal"``.

These are the labels of :class:`simstudy.dgp.BinaryTrial` and :class:`simstudy.dgp.CountTrial` (the ratio of
arm means, not the mean of log cluster rates, which needs a continuity correction and targets something else).

Weights. ``weights="equal"`` (default): the unweighted arm means :math:`m_t` and the pooled two-sample t test,
:math:`\mathrm{Var}(m_t) = s^2 / k_t` with :math:`s^2 = \sum_j (s_j - m_{t(j)})^2 / (K - 2)`.
``weights="inverse-variance"``: weights :math:`w_j = 1 / (\hat\sigma_b^2 + \hat\sigma_w^2 / n_j)` from a
one-way variance-components model of the summaries, :math:`\mathrm{Var}(s_j) = \sigma_b^2 + \sigma_w^2 / n_j`,
with :math:`\hat\sigma_w^2 = \sum_j \sum_i (y_{ij} - \bar y_j)^2 / (N - K)` (pooled within-cluster variance;
for 0/1 data :math:`\sum_j n_j s_j (1 - s_j) / (N - K)`) and :math:`\hat\sigma_b^2 = \max(0, s^2 -
\hat\sigma_w^2\, \overline{1/n})`; then weighted least squares of the summaries on the arm, :math:`m_t =
\sum_{j \in t} w_j s_j / W_t`, with the weighted residual variance :math:`s_w^2 = \sum_j w_j (s_j -
m_{t(j)})^2 / (K - 2)` and :math:`\mathrm{Var}(m_t) = s_w^2 / W_t`, t with :math:`K - 2` df. With equal
cluster sizes every weight is the same and it is the unweighted test. The weights are estimated from the
same data, so the weighted means are consistent for :math:`\pi_t` but not exactly unbiased.

On the log scales the SEs are by the delta method, :math:`\mathrm{Var}(g(m_t)) = g'(m_t)^2 \mathrm{Var}(m_t)`
(the arms are independent), with the same :math:`K - 2` df.

Failures (``Fit.failed``, values NaN, reason in ``message``): an arm without clusters, fewer than 3 clusters,
summaries constant within each arm (every response 0, say, or 0 in one arm and 1 in the other: the variance
estimate is 0, so an SE of 0 would make a zero-width interval and a certain test), or, on a log scale, an arm
mean of 0 (or 1 for log odds), where the contrast is not finite. A treatment column that is not 0/1 or varies
within a cluster raises ``ValueError``. Rows with a non-finite response or treatment
are dropped.
"""

from __future__ import annotations

import numpy as np
from scipy.special import stdtrit

from simstudy.estimators.base import Fit
from simstudy.estimators.formula import Formula, _levels_codes, group_codes
from simstudy.types import Data

__all__ = ["ClusterLevel"]

SCALES = {"difference": "difference", "log-ratio": "log-ratio", "log-odds": "marginal"}
#: Largest residual of the summaries about their arm means, relative to the largest summary, below which
#: they count as constant within the arms.
_CONSTANT = 1e-13
WEIGHTS = ("equal", "inverse-variance")


class ClusterLevel:
    """Two-arm comparison of cluster summaries (means of the responses), t with ``K - 2`` df.

    Parameters
    ----------
    formula : str or Formula
        ``"response ~ treat"``: one numeric 0/1 column, constant within clusters, and the intercept. The
        parameters are named ``Intercept`` and the column's name.
    groups : str
        Cluster column.
    scale : {"difference", "log-ratio", "log-odds"}
        Contrast of the arms' mean summaries (module docstring); sets :attr:`estimand`.
    weights : {"equal", "inverse-variance"}
        Unweighted t test, or weighted least squares with estimated inverse-variance weights.
    level : float
        Confidence level of the intervals.
    """

    def __init__(self, formula: str | Formula = "y ~ treat", *, groups: str, scale: str = "difference",
                 weights: str = "equal", level: float = 0.95) -> None:
        self.formula = formula if isinstance(formula, Formula) else Formula(formula)
        terms = self.formula.terms
        if not self.formula.intercept or len(terms) != 1 or len(terms[0]) != 1 or terms[0][0].categorical:
            raise ValueError(f"ClusterLevel: the formula must be 'response ~ treat' with one numeric 0/1 column "
                             f"and the intercept, got {self.formula.text!r}")
        if not isinstance(groups, str):
            raise TypeError(f"ClusterLevel: groups must be a column name, got {groups!r}")
        if scale not in SCALES:
            raise ValueError(f"ClusterLevel: scale must be one of {tuple(SCALES)}, got {scale!r}")
        if weights not in WEIGHTS:
            raise ValueError(f"ClusterLevel: weights must be one of {WEIGHTS}, got {weights!r}")
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"ClusterLevel: level must lie strictly between 0 and 1, got {level!r}")
        self.groups = groups
        self.scale = scale
        self.weights = weights
        self.level = float(level)
        #: What the parameters estimate (a key of a DGP's per-estimand truths; see the module docstring).
        self.estimand = SCALES[scale]

    def __repr__(self) -> str:
        return (f"ClusterLevel({self.formula.text!r}, groups={self.groups!r}, scale={self.scale!r}, "
                f"weights={self.weights!r}, level={self.level})")

    def fit(self, data: Data) -> Fit:
        """Fit one replicate; see the module docstring for what is reported."""
        arm_col = self.formula.terms[0][0].column
        names = ("Intercept", arm_col)
        self.formula.check_columns(data)
        y = np.asarray(data[self.formula.response], dtype=float)
        arm = np.asarray(data[arm_col], dtype=float)
        codes, _ = group_codes(data, self.groups)
        ok = np.isfinite(y) & np.isfinite(arm)
        if not ok.all():
            y, arm, codes = y[ok], arm[ok], _levels_codes(codes[ok])[1]
        if not np.all((arm == 0) | (arm == 1)):
            raise ValueError(f"ClusterLevel: {arm_col!r} must be 0/1, got values {np.unique(arm)[:5].tolist()}")
        K = int(codes.max()) + 1 if codes.size else 0
        n = np.bincount(codes, minlength=K).astype(float)
        treated = np.bincount(codes, weights=arm, minlength=K) / n
        if not np.all((treated == 0) | (treated == 1)):
            raise ValueError(f"ClusterLevel: {arm_col!r} varies within clusters of {self.groups!r}")
        t = treated == 1
        k1, k0 = int(t.sum()), int((~t).sum())
        if k0 == 0 or k1 == 0 or K < 3:
            return Fit.failed(f"needs both arms and at least 3 clusters (K - 2 df); got {k0} control and {k1} "
                              "treated clusters", names)
        s = np.bincount(codes, weights=y, minlength=K) / n
        df = float(K - 2)

        w = np.ones(K)
        if self.weights == "inverse-variance":
            w = _inverse_variance_weights(y, codes, s, n, t, df)
        W1, W0 = w[t].sum(), w[~t].sum()
        m1, m0 = np.dot(w[t], s[t]) / W1, np.dot(w[~t], s[~t]) / W0
        resid = s - np.where(t, m1, m0)
        s2 = np.dot(w, resid * resid) / df
        v1, v0 = s2 / W1, s2 / W0

        if self.scale == "difference":
            g0, g1, d0, d1 = m0, m1, 1.0, 1.0
        else:
            upper = 1.0 if self.scale == "log-odds" else np.inf
            bad = [f"{label} arm mean {m:.6g}" for label, m in (("control", m0), ("treated", m1))
                   if not 0.0 < m < upper]
            if bad:
                return Fit.failed(f"{self.scale} contrast not finite: " + ", ".join(bad), names)
            if self.scale == "log-ratio":
                g0, g1, d0, d1 = np.log(m0), np.log(m1), 1.0 / m0, 1.0 / m1
            else:
                g0, g1 = np.log(m0 / (1.0 - m0)), np.log(m1 / (1.0 - m1))
                d0, d1 = 1.0 / (m0 * (1.0 - m0)), 1.0 / (m1 * (1.0 - m1))
        if np.max(np.abs(resid)) <= _CONSTANT * np.max(np.abs(s)):  # 0, or rounding noise about a constant
            return Fit.failed("every cluster summary equals its arm's mean (every response 0, say): the t test's "
                              "variance estimate is 0, so there is no SE, interval or test (R's t.test stops here: "
                              "data are essentially constant)", names)
        est = np.array([g0, g1 - g0])
        se = np.sqrt(np.array([d0 * d0 * v0, d0 * d0 * v0 + d1 * d1 * v1]))
        q = stdtrit(df, 0.5 + self.level / 2)
        return Fit(names, est, se, est - q * se, est + q * se, np.full(2, df))


def _inverse_variance_weights(y: np.ndarray, codes: np.ndarray, s: np.ndarray, n: np.ndarray, t: np.ndarray,
                              df: float) -> np.ndarray:
    """Weights ``1 / (sigma_b^2 + sigma_w^2 / n_j)`` from the one-way variance components of the module
    docstring (equal weights when both components are estimated as 0)."""
    K = s.shape[0]
    N = y.shape[0]
    within = y - s[codes]
    sw2 = float(np.dot(within, within)) / (N - K) if N > K else 0.0
    centred = s - np.where(t, s[t].mean(), s[~t].mean())
    sb2 = max(0.0, float(np.dot(centred, centred)) / df - sw2 * float(np.mean(1.0 / n)))
    v = sb2 + sw2 / n
    return np.ones(K) if not np.all(v > 0) else 1.0 / v
