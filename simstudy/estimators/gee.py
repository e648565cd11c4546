r"""Generalized estimating equations with small-sample corrections of the sandwich variance.

``GEE(formula, groups=...)`` fits a marginal (population-averaged) model, logit-binomial or log-Poisson, with
an exchangeable or independence working correlation, through statsmodels' array interface
(``statsmodels.genmod.generalized_estimating_equations.GEE``; its formula interface costs 7-20 ms a call).
statsmodels gives the coefficients :math:`\hat\beta` and the working correlation :math:`\hat\alpha` (its
moment estimator: :math:`\hat\alpha = \sum_i \sum_{j<k} e_{ij} e_{ik} / (\hat\phi\,(N_{\mathrm{pairs}} - p))`,
:math:`\hat\phi = \sum e_{ij}^2 / (N - p)`, :math:`e` the Pearson residuals; ``ddof_scale=0`` drops both
``p`` and gives geepack's estimator and fit; a negative estimate is set to 0 at every update unless
``corr_floor`` says otherwise). simstudy then computes the variance of :math:`\hat\beta` itself, at
statsmodels' :math:`(\hat\beta, \hat\alpha)`, for the K clusters' independent contributions.

Notation, for cluster :math:`i = 1..K`: :math:`D_i = \partial\mu_i / \partial\beta`, :math:`V_i` the working
covariance, :math:`r_i = y_i - \mu_i`, :math:`B_i = D_i' V_i^{-1} D_i` (p x p), :math:`B = \sum_i B_i`,
:math:`U_i = D_i' V_i^{-1} r_i` (the cluster's score) and :math:`H_{ii} = D_i B^{-1} D_i' V_i^{-1}` (the
cluster's leverage, n_i x n_i). Every variance has the form :math:`B^{-1} (\sum_i G_i G_i') B^{-1}`:

- ``correction="model"``: the model-based variance :math:`B^{-1}` (scale 1), which ignores the
  clustering; with ``corr="independence"`` and ``df=None`` this is ordinary logistic (or Poisson)
  regression, the naive analysis.
- ``correction="robust"``: :math:`G_i = U_i`, the uncorrected sandwich of Liang & Zeger (1986); what
  statsmodels reports by default (``cov_robust``) and geepack's ``std.err="san.se"``.
- ``"md"``, Mancl & DeRouen (2001, Biometrics 57:126): :math:`G_i = D_i' V_i^{-1} (I - H_{ii})^{-1} r_i`.
  This is exactly statsmodels' ``cov_type="bias_reduced"`` (``GEE._bc_covmat``: it solves
  :math:`(I - H_{ii}) a = r_i` per cluster with the same :math:`H_{ii}`; its model-based ``cov_naive`` is
  :math:`\hat\phi B^{-1}` and the :math:`\hat\phi` cancel). simstudy computes it without the n_i x n_i
  solves: by the push-through identity :math:`D_i' V_i^{-1} f(I - H_{ii}) = f(I_p - B_i B^{-1}) D_i'
  V_i^{-1}` (any power series :math:`f`), :math:`G_i = (I_p - B_i B^{-1})^{-1} U_i = B (B - B_i)^{-1} U_i`.
- ``"kc"``, Kauermann & Carroll (2001, JASA 96:1387): :math:`G_i = D_i' V_i^{-1} (I - H_{ii})^{-1/2} r_i`,
  the principal square root (:math:`I - H_{ii}` is similar to a symmetric positive definite matrix, so it
  is unique), i.e. :math:`G_i = (I_p - B_i B^{-1})^{-1/2} U_i = L (I - S_i)^{-1/2} L^{-1} U_i` with
  :math:`B = L L'` (Cholesky) and :math:`S_i = L^{-1} B_i L^{-T}` symmetric. statsmodels lacks it.
- ``"fg"``, Fay & Graubard (2001, Biometrics 57:1198), their :math:`V_A`: :math:`G_i = \mathrm{diag}\{(1 -
  \min(b, [B_i B^{-1}]_{jj}))^{-1/2}\}\, U_i` with the bound :math:`b` = ``fg_bound`` (0.75, theirs).
  statsmodels lacks it.

Degrees of freedom of the t intervals (``df``):

- ``"K-p"`` (default): clusters minus the number of estimated coefficients. The sandwich's middle term is a
  sum of K cluster score products of which the estimating equations :math:`\sum_i U_i(\hat\beta) = 0` use
  up p; with only cluster-level terms (``y ~ treat`` in a two-arm trial: K - 2) it is the df of the
  cluster-level t test, and with unit-level covariates it is the conservative choice of Li & Redden (2015)
  and the ``DF_{C-P}`` of Thompson et al. (2021).
- ``"fg"``: Fay & Graubard's (2001, Section 3) estimated df :math:`\hat d` per coefficient, applied to the
  correction in use: with :math:`G_i = H_i U_i`, the variance of the contrast :math:`\ell'\hat\beta` is
  :math:`\sum_i (a_i' (U_i - B_i B^{-1} \sum_k U_k))^2`, :math:`a_i = H_i' B^{-1} \ell`, a quadratic form in
  scores taken as independent with :math:`\mathrm{Var}(U_i) = B_i` (the working model); its Satterthwaite
  df is :math:`\mathrm{tr}(S)^2 / \mathrm{tr}(S^2)` with the K x K matrix :math:`S_{ik} = \delta_{ik}\, a_i'
  B_i a_i - w_i' B^{-1} w_k`, :math:`w_i = B_i a_i`. With ``correction="fg"`` this is their :math:`\hat d`
  (geex's ``correct_by_fay_df(version = 1)``, computed there with pK x pK matrices).
- ``None``: z intervals (``Fit.df`` NaN).

Parameters are named as the formula names them (``Intercept``, ``treat``, ...); the working correlation is
not reported. ``estimand = "marginal"``: the coefficients of :math:`g(E[y \mid x])`, the population-averaged
model (see :class:`simstudy.dgp.BinaryTrial`).

Statuses. ``boundary``: the exchangeable working correlation ends on ``corr_floor`` (a negative moment
estimate set to 0 by default). ``nonconverged``: statsmodels' iterations did not converge (score norm above
``tol``), or the fitted means reached 0 or 1 (binomial, within 1e-8) or 0 (Poisson, below 1e-8), which is
separation (the coefficients diverge: every response of one arm 0, say). ``failed`` (values NaN, reason in
``message``): fewer clusters than ``p + 1`` with ``df="K-p"``, a single cluster, no estimable column, an
exchangeable correlation estimate that is not a correlation matrix for the largest cluster (:math:`1 + (n_i -
1)\hat\alpha \le 0`; possible with ``corr_floor=None``), or a correction undefined because one cluster
determines a coefficient on its own (leverage 1: an arm of one cluster; MD and KC). Collinear columns are
reported as not estimable (NaN), as :class:`~simstudy.estimators.OLS` does. Rows with a non-finite response or
design value are dropped (complete cases).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import stdtrit

from simstudy.estimators.base import Fit
from simstudy.estimators.formula import Formula, _levels_codes, group_codes
from simstudy.types import Data

__all__ = ["GEE", "GEEDetails", "sandwich"]

FAMILIES = ("binomial", "poisson")
CORRELATIONS = ("exchangeable", "independence")
CORRECTIONS = ("robust", "md", "kc", "fg", "model")
DF_METHODS = ("K-p", "fg", None)
#: Largest leverage eigenvalue (of :math:`B^{-1/2} B_i B^{-1/2}`) for which MD and KC are computed.
_MAX_LEVERAGE = 1.0 - 1e-10
#: Fitted means this close to the boundary of the family's range count as separation.
_BOUNDARY = 1e-8


@dataclass(frozen=True)
class GEEDetails:
    """What :meth:`GEE.details` computes for one replicate: ``beta``, ``cov`` (under the chosen correction) and
    ``df`` refer to the estimable columns ``kept`` of the design's ``names``; ``alpha`` is the working
    correlation (0 for independence)."""

    names: tuple[str, ...]
    kept: np.ndarray
    beta: np.ndarray
    alpha: float
    cov: np.ndarray
    df: np.ndarray
    n_clusters: int
    status: str
    message: str
    n_warnings: int


class GEE:
    r"""Marginal model by generalized estimating equations, with small-sample sandwich corrections.

    Parameters
    ----------
    formula : str or Formula
        Model formula, e.g. ``"y ~ treat"``; parsed once here.
    groups : str
        Cluster column.
    family : {"binomial", "poisson"}
        Binomial with the logit link (responses in [0, 1]) or Poisson with the log link.
    corr : {"exchangeable", "independence"}
        Working correlation.
    correction : {"robust", "md", "kc", "fg", "model"}
        Variance estimator: uncorrected sandwich, Mancl-DeRouen, Kauermann-Carroll, Fay-Graubard.
    df : {"K-p", "fg"} or None
        Degrees of freedom of the t intervals (see the module docstring); None for z intervals.
    fg_bound : float
        Fay-Graubard's bound ``b`` on the leverage, in (0, 1).
    level : float
        Confidence level of the intervals.
    tol : float
        statsmodels' ``ctol``: convergence when the score norm falls below it.
    maxiter : int
        Iteration limit.
    ddof_scale : int, optional
        statsmodels' ``ddof_scale``, the ``p`` subtracted in the working correlation's moment estimator
        (module docstring); None is ``p``, statsmodels' default. 0 gives geepack's estimator
        (:math:`\hat\alpha = \sum_i \sum_{j<k} e_{ij} e_{ik} / (\hat\phi N_{\mathrm{pairs}})`,
        :math:`\hat\phi = \sum e^2 / N`), and then the fit equals ``geepack::geeglm``'s.
    corr_floor : float or None
        Lower bound of the exchangeable working correlation: a moment estimate below it (or NaN) is replaced
        by it at every update, and a fit that ends there has status ``boundary``. The default 0 treats the
        within-cluster correlation as non-negative (a negative moment estimate, common with few clusters and
        a small ICC, is set to 0 as negative ANOVA ICC estimates are); without it such estimates often make
        the working correlation of the largest cluster indefinite (:math:`1 + (n_i - 1)\hat\alpha \le 0`)
        and the fit fails. None: statsmodels' estimate unchanged, as geepack.
    """

    #: What the coefficients estimate (a key of a DGP's per-estimand truths).
    estimand = "marginal"

    def __init__(self, formula: str | Formula, *, groups: str, family: str = "binomial",
                 corr: str = "exchangeable", correction: str = "robust", df: str | None = "K-p",
                 fg_bound: float = 0.75, level: float = 0.95, tol: float = 1e-8, maxiter: int = 100,
                 ddof_scale: int | None = None, corr_floor: float | None = 0.0) -> None:
        self.formula = formula if isinstance(formula, Formula) else Formula(formula)
        if not isinstance(groups, str):
            raise TypeError(f"GEE: groups must be a column name, got {groups!r}")
        for name, value, allowed in (("family", family, FAMILIES), ("corr", corr, CORRELATIONS),
                                     ("correction", correction, CORRECTIONS), ("df", df, DF_METHODS)):
            if value not in allowed:
                raise ValueError(f"GEE: {name} must be one of {allowed}, got {value!r}")
        if not 0.0 < float(fg_bound) < 1.0:
            raise ValueError(f"GEE: fg_bound must lie strictly between 0 and 1, got {fg_bound!r}")
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"GEE: level must lie strictly between 0 and 1, got {level!r}")
        if not float(tol) > 0.0 or int(maxiter) < 1:
            raise ValueError(f"GEE: tol must be positive and maxiter at least 1, got {tol!r}, {maxiter!r}")
        self.groups = groups
        self.family = family
        self.corr = corr
        self.correction = correction
        self.df = df
        self.fg_bound = float(fg_bound)
        self.level = float(level)
        self.tol = float(tol)
        self.maxiter = int(maxiter)
        if ddof_scale is not None and not (float(ddof_scale).is_integer() and ddof_scale >= 0):
            raise ValueError(f"GEE: ddof_scale must be None or a whole number >= 0, got {ddof_scale!r}")
        self.ddof_scale = None if ddof_scale is None else int(ddof_scale)
        if corr_floor is not None and not -1.0 < float(corr_floor) < 1.0:
            raise ValueError(f"GEE: corr_floor must be None or lie in (-1, 1), got {corr_floor!r}")
        self.corr_floor = None if corr_floor is None else float(corr_floor)

    def __repr__(self) -> str:
        return (f"GEE({self.formula.text!r}, groups={self.groups!r}, family={self.family!r}, corr={self.corr!r}, "
                f"correction={self.correction!r}, df={self.df!r}, level={self.level}"
                + (f", ddof_scale={self.ddof_scale}" if self.ddof_scale is not None else "")
                + (f", corr_floor={self.corr_floor}" if self.corr_floor != 0.0 else "") + ")")

    # ------------------------------------------------------------------------------------------------
    def fit(self, data: Data) -> Fit:
        """Fit one replicate; see the module docstring for what is reported."""
        d = self.details(data)
        p_all = len(d.names)
        est, se, dfs = (np.full(p_all, np.nan) for _ in range(3))
        if d.status == "failed":
            return Fit.failed(d.message, d.names, d.n_warnings)
        est[d.kept] = d.beta
        se[d.kept] = np.sqrt(np.maximum(np.diagonal(d.cov), 0.0))
        dfs[d.kept] = d.df
        q = np.where(np.isnan(dfs), stdtrit(np.inf, 0.5 + self.level / 2), stdtrit(dfs, 0.5 + self.level / 2))
        return Fit(d.names, est, se, est - q * se, est + q * se, dfs, d.status, d.n_warnings, d.message)

    def details(self, data: Data) -> GEEDetails:
        """Fit one replicate and return the coefficients, working correlation, variance and df."""
        y, X, names = self.formula.build(data)
        codes, _ = group_codes(data, self.groups)
        if not np.isfinite(y.sum() + X.sum()):
            ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
            y, X, codes = y[ok], np.asfortranarray(X[ok]), _levels_codes(codes[ok])[1]
        K = int(codes.max()) + 1 if codes.size else 0
        names = tuple(names)
        if self.family == "binomial" and not np.all((y >= 0) & (y <= 1)):
            raise ValueError(f"GEE: family 'binomial' needs responses in [0, 1]; {self.formula.response!r} has "
                             f"values from {y.min():g} to {y.max():g}")
        if self.family == "poisson" and not np.all(y >= 0):
            raise ValueError(f"GEE: family 'poisson' needs non-negative responses; min is {y.min():g}")

        kept, notes = _estimable(X, names)
        p = len(kept)
        nan, n_warn = np.full(p, np.nan), 0

        def failed(message: str, beta: np.ndarray = nan, alpha: float = np.nan) -> GEEDetails:
            return GEEDetails(names, kept, beta, alpha, np.full((p, p), np.nan), nan, K, "failed", message, n_warn)

        if p == 0:
            return failed("no estimable coefficient" + "".join(f"; {t}" for t in notes))
        if K < 2 or (self.df == "K-p" and K - p < 1):
            return failed(f"{K} clusters for {p} coefficients: df='K-p' needs more clusters than coefficients"
                          if K >= 2 else "GEE needs at least 2 clusters")
        Xk = np.ascontiguousarray(X[:, kept])
        beta, alpha, converged, caught, floored = self._statsmodels_fit(y, Xk, codes)
        n_warn = len(caught)
        if beta is None:
            return failed(caught[0] if caught else "statsmodels GEE returned no fit")
        n_i = np.bincount(codes, minlength=K)
        if self.corr == "exchangeable" and not (alpha < 1.0 and np.all(1.0 + (n_i - 1) * alpha > 0)):
            return failed(f"working correlation {alpha:.4g} is not positive definite for clusters of up to "
                          f"{n_i.max()} units", beta, alpha)
        status = "nonconverged" if not converged else "boundary" if floored else "ok"
        problems = [] if converged else [f"GEE did not converge in {self.maxiter} iterations"]
        if floored:
            problems.append(f"working correlation estimate below {self.corr_floor:g}, set to it")
        mu = _inverse_link(Xk @ beta, self.family)
        lo = np.minimum(mu, 1.0 - mu) if self.family == "binomial" else mu
        if np.min(lo) < _BOUNDARY:
            status = "nonconverged"
            problems.append("fitted means at the boundary (separation): the coefficients diverge")
            mu = np.clip(mu, 1e-300, 1.0 - 1e-16 if self.family == "binomial" else np.inf)
        message = "; ".join(problems + (["not estimable: " + "; ".join(notes)] if notes else []) + caught[:1])
        try:
            cov, H, B, Bi = sandwich(Xk, y, mu, codes, K, self.family, alpha, self.correction, self.fg_bound)
        except np.linalg.LinAlgError as exc:
            return failed(f"{self.correction} correction undefined: {exc}", beta, alpha)
        df = {"K-p": lambda: np.full(p, float(K - p)), "fg": lambda: fay_graubard_df(B, Bi, H),
              None: lambda: nan}[self.df]()
        return GEEDetails(names, kept, beta, float(alpha), cov, df, K, status, message, n_warn)

    def _statsmodels_fit(self, y: np.ndarray, X: np.ndarray,
                         codes: np.ndarray) -> tuple[np.ndarray | None, float, bool, list[str], bool]:
        """statsmodels' coefficients, working correlation, convergence, the warnings it gave and whether the
        working correlation sits on ``corr_floor``."""
        from statsmodels.genmod import cov_struct, families
        from statsmodels.genmod.generalized_estimating_equations import GEE as SMGEE

        family = families.Binomial() if self.family == "binomial" else families.Poisson()
        if self.corr == "independence":
            structure = cov_struct.Independence()
        elif self.corr_floor is None:
            structure = cov_struct.Exchangeable()
        else:
            structure = _floored_exchangeable()(self.corr_floor)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = SMGEE(y, X, groups=codes, family=family, cov_struct=structure)
            res = model.fit(maxiter=self.maxiter, ctol=self.tol, ddof_scale=self.ddof_scale)
        texts = [f"{w.category.__name__}: {w.message}" for w in caught]
        if res is None:
            return None, np.nan, False, texts, False
        alpha = float(res.cov_struct.dep_params) if self.corr == "exchangeable" else 0.0
        floored = bool(getattr(res.cov_struct, "floored", False))
        return np.asarray(res.params, dtype=float), alpha, bool(res.converged), texts, floored


# ----------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _floored_exchangeable() -> type:
    """statsmodels' exchangeable structure with its moment estimate kept at or above a floor."""
    from statsmodels.genmod.cov_struct import Exchangeable

    class FlooredExchangeable(Exchangeable):
        def __init__(self, floor: float) -> None:
            super().__init__()
            self.floor, self.floored = floor, False

        def update(self, params: np.ndarray) -> None:
            super().update(params)
            self.floored = not self.dep_params >= self.floor  # NaN too
            if self.floored:
                self.dep_params = self.floor

    return FlooredExchangeable


def _inverse_link(eta: np.ndarray, family: str) -> np.ndarray:
    if family == "poisson":
        return np.exp(eta)
    e = np.exp(-np.abs(eta))
    return np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _estimable(X: np.ndarray, names: tuple[str, ...], tol: float = 1e-7) -> tuple[np.ndarray, list[str]]:
    """Columns kept left to right (R's ``lm`` rule, as :class:`~simstudy.estimators.OLS`) and a note per
    dropped column: a column is dropped when its part orthogonal to the kept columns before it has a norm
    at most ``tol`` times its own."""
    kept: list[int] = []
    notes: list[str] = []
    for j in range(X.shape[1]):
        norm = np.linalg.norm(X[:, j])
        if not norm > 0:
            notes.append(f"{names[j]} is all zero")
            continue
        if kept:
            Q = np.linalg.qr(X[:, kept])[0]
            resid = X[:, j] - Q @ (Q.T @ X[:, j])
            if np.linalg.norm(resid) <= tol * norm:
                notes.append(f"{names[j]} is collinear with the columns before it")
                continue
        kept.append(j)
    return np.asarray(kept, dtype=np.intp), notes


def cluster_pieces(X: np.ndarray, y: np.ndarray, mu: np.ndarray, codes: np.ndarray, K: int, family: str,
                   alpha: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Per cluster :math:`B_i = D_i' V_i^{-1} D_i` (K, p, p) and :math:`U_i = D_i' V_i^{-1} r_i` (K, p).

    For a canonical link :math:`D_i = A_i X_i` with :math:`A_i` the variances, and the exchangeable
    :math:`V_i = A_i^{1/2} R_i A_i^{1/2}` has :math:`R_i^{-1} = (I - c_i J) / (1 - \alpha)`, :math:`c_i =
    \alpha / (1 + (n_i - 1)\alpha)`; so with :math:`Z = A^{1/2} X` and :math:`e = A^{-1/2} r` (Pearson
    residuals) :math:`B_i = (Z_i'Z_i - c_i Z_i'1\,1'Z_i) / (1 - \alpha)` and :math:`U_i = (Z_i'e_i - c_i
    Z_i'1\,1'e_i) / (1 - \alpha)`: sums over units, no n_i x n_i matrix. The dispersion is taken as 1; it
    cancels from every variance here.
    """
    v = mu * (1.0 - mu) if family == "binomial" else mu
    s = np.sqrt(v)
    Z = X * s[:, None]
    e = (y - mu) / s
    p = X.shape[1]
    n_i = np.bincount(codes, minlength=K).astype(float)
    Sz = np.stack([np.bincount(codes, weights=Z[:, a], minlength=K) for a in range(p)], axis=1)
    Sze = np.stack([np.bincount(codes, weights=Z[:, a] * e, minlength=K) for a in range(p)], axis=1)
    Se = np.bincount(codes, weights=e, minlength=K)
    Szz = np.empty((K, p, p))
    for a in range(p):
        for b in range(a, p):
            Szz[:, a, b] = Szz[:, b, a] = np.bincount(codes, weights=Z[:, a] * Z[:, b], minlength=K)
    c = alpha / (1.0 + (n_i - 1.0) * alpha)
    Bi = (Szz - c[:, None, None] * Sz[:, :, None] * Sz[:, None, :]) / (1.0 - alpha)
    Ui = (Sze - c[:, None] * Sz * Se[:, None]) / (1.0 - alpha)
    return Bi, Ui


def sandwich(X: np.ndarray, y: np.ndarray, mu: np.ndarray, codes: np.ndarray, K: int, family: str, alpha: float,
             correction: str, bound: float = 0.75) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The variance of the GEE coefficients under ``correction`` (see the module docstring).

    Returns
    -------
    cov : (p, p) ndarray
    H : (K, p, p) ndarray
        The matrices with :math:`G_i = H_i U_i`.
    B : (p, p) ndarray
    Bi : (K, p, p) ndarray

    Raises
    ------
    numpy.linalg.LinAlgError
        When ``B`` is singular, or, for ``md`` and ``kc``, a cluster has leverage 1.
    """
    Bi, Ui = cluster_pieces(X, y, mu, codes, K, family, alpha)
    B = Bi.sum(axis=0)
    try:
        L = np.linalg.cholesky(B)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError("the information matrix B is not positive definite") from None
    Linv = np.linalg.solve(L, np.eye(B.shape[0]))
    Binv = Linv.T @ Linv
    p = B.shape[0]
    if correction == "model":  # the model-based (naive) variance: clustering ignored in the variance
        return Binv, np.broadcast_to(np.eye(p), (K, p, p)), B, Bi
    if correction == "robust":
        H = np.broadcast_to(np.eye(p), (K, p, p))
    elif correction == "fg":
        q = np.einsum("kab,ba->ka", Bi, Binv)  # diag(B_i B^-1)
        H = np.eye(p) * ((1.0 - np.minimum(bound, q)) ** -0.5)[:, None, :]
    else:
        S = Linv @ Bi @ Linv.T  # L^-1 B_i L^-T, eigenvalues in [0, 1]
        lam, Q = np.linalg.eigh(S)
        if lam.max() > _MAX_LEVERAGE:
            k = int(np.argmax(lam.max(axis=1)))
            raise np.linalg.LinAlgError(f"cluster {k} has leverage {lam.max():.12g} (it alone determines a "
                                        "coefficient)")
        power = -1.0 if correction == "md" else -0.5
        F = (Q * ((1.0 - lam) ** power)[:, None, :]) @ np.swapaxes(Q, 1, 2)  # (I - S_i)^power
        H = L @ F @ Linv
    G = np.einsum("kab,kb->ka", H, Ui)
    cov = Binv @ (G.T @ G) @ Binv
    return cov, H, B, Bi


def fay_graubard_df(B: np.ndarray, Bi: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Fay & Graubard's estimated df of every coefficient for the variance with ``G_i = H_i U_i`` (see the
    module docstring)."""
    Binv = np.linalg.inv(B)
    out = np.empty(B.shape[0])
    for k in range(B.shape[0]):
        a = np.einsum("kba,b->ka", H, Binv[:, k])  # a_i = H_i' B^-1 e_k
        w = np.einsum("kab,kb->ka", Bi, a)
        S = -(w @ Binv @ w.T)
        S[np.diag_indices_from(S)] += np.einsum("ka,ka->k", a, w)
        out[k] = np.trace(S) ** 2 / np.sum(S * S)
    return out
