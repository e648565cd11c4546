"""FastMixedLM: exact REML/ML for random-intercept and nested random-intercept models, without statsmodels.

The numerics live in :mod:`simstudy.estimators.reml` (one grouping factor, vectorised over replicates) and
:mod:`simstudy.estimators.reml_nested` (reps within centres). This module turns a replicate's data into the
sufficient statistics, handles the edge cases, and returns :class:`~simstudy.estimators.base.Fit` objects.

Reported per fit: fixed effects with SEs from ``s2 (X' H^-1 X)^-1`` at the optimum (as lme4 and
statsmodels report), Wald intervals (z, or t with ``df_method``), variance components ``var(<group>)`` and
``var(residual)`` (their SE and interval are NaN: no Wald SE for a variance is reported), a status
(``boundary`` when a relative SD ``sqrt(var(group) / var(residual))`` is below 1e-4, lme4's
``isSingular`` rule) and a message. :meth:`FastMixedLM.fit_with_info` also returns the criterion
(-2 log-likelihood, REML or ML, lme4's constant), the log-likelihood and the variance ratios.

Degrees of freedom (``df_method``) for t intervals of fixed effects:

- ``None``: z intervals, ``df`` NaN.
- ``"between-within"``: SAS PROC MIXED's DDFM=BETWITHIN split of the residual df. A column constant within
  every group is a between effect (the intercept included): ``df = G - p_between``; every other column:
  ``df = n - p - (G - p_between)``. Nested model: centre-level columns ``C - p_centre``, columns constant
  within reps but not centres ``Rn - C - p_rep``, others ``n - p - (Rn - p_rep - p_centre)``. (SAS's further
  split of the within df for classification effects is not done.)
- ``"satterthwaite"``: random-intercept model only, as lmerTest: ``2 V^2 / (g' C g)`` with ``V`` the
  variance of the estimate as a function of ``(var(group), var(residual))``, ``g`` its gradient and ``C``
  twice the inverse Hessian of -2 log-likelihood (REML or ML as fitted). Nested model: falls back to
  between-within (said in the message).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from scipy import stats

from simstudy.estimators import reml as ri
from simstudy.estimators import reml_nested as nested
from simstudy.estimators.base import Fit
from simstudy.formula import Formula, group_codes
from simstudy.types import Data

DF_METHODS = (None, "between-within", "satterthwaite")


class _Failure(Exception):
    pass


class FastMixedLM:
    """Linear mixed model with random intercepts, fitted exactly on per-group sufficient statistics.

    Parameters
    ----------
    formula : str
        Fixed effects, e.g. ``"score ~ hs_gpa + C(method)"`` (see :class:`simstudy.formula.Formula`).
    groups : str or sequence of two str
        ``"g"``: random intercept per level of ``g``. ``["centre", "rep"]``: nested random intercepts, reps
        within centres (rep ids may repeat across centres: pairs are combined).
    reml : bool
        REML (default) or ML.
    level : float
        Confidence level of the intervals.
    df_method : None, "between-within" or "satterthwaite"
        z intervals (None) or t intervals with these degrees of freedom (see the module docstring).

    Examples
    --------
    >>> est = FastMixedLM("y ~ x", groups="g")          # doctest: +SKIP
    >>> fit = est.fit(data)                              # doctest: +SKIP
    >>> fit.params                                       # doctest: +SKIP
    ('Intercept', 'x', 'var(g)', 'var(residual)')
    """

    def __init__(self, formula: str, *, groups: str | Sequence[str], reml: bool = True, level: float = 0.95,
                 df_method: str | None = None) -> None:
        self.formula = Formula(formula)
        self.groups = (groups,) if isinstance(groups, str) else tuple(groups)
        if len(self.groups) not in (1, 2) or not all(isinstance(g, str) for g in self.groups):
            raise ValueError(f"groups must be a column name or [outer, inner] names, got {groups!r}")
        if df_method not in DF_METHODS:
            raise ValueError(f"df_method must be one of {DF_METHODS}, got {df_method!r}")
        if not 0 < level < 1:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        self.reml = bool(reml)
        self.level = float(level)
        self.df_method = df_method

    # ------------------------------------------------------------------ public API
    def fit(self, data: Data) -> Fit:
        """Fit one replicate."""
        return self.fit_batch([data])[0]

    def fit_with_info(self, data: Data) -> tuple[Fit, dict]:
        """Fit one replicate; also return ``crit`` (-2 log-lik), ``llf``, ``theta`` (variance ratios)."""
        fits, infos = self._fit_all([data])
        return fits[0], infos[0]

    def fit_batch(self, datasets: Sequence[Data]) -> list[Fit]:
        """Fit many replicates. Random-intercept replicates with the same fixed-effect columns are fitted
        together, vectorised over replicates (group sizes and numbers of groups may differ); the nested
        model is fitted one replicate at a time."""
        return self._fit_all(datasets)[0]

    # ------------------------------------------------------------------ internals
    def _param_names(self, names: Sequence[str]) -> tuple[str, ...]:
        return tuple(names) + tuple(f"var({g})" for g in self.groups) + ("var(residual)",)

    def _fit_all(self, datasets: Sequence[Data]):
        fits: list[Fit | None] = [None] * len(datasets)
        infos: list[dict] = [{} for _ in datasets]
        prepared = {}
        for i, data in enumerate(datasets):
            try:
                prepared[i] = self._prepare(data)
            except (_Failure, ValueError) as exc:
                names = ()
                try:
                    names = self.formula.build(data)[2]
                except Exception:  # noqa: BLE001 - the build error is already the message
                    pass
                fits[i] = Fit.failed(str(exc), self._param_names(names) if names else ())
        if len(self.groups) == 1:
            keys: dict[tuple, list[int]] = {}
            for i, prep in prepared.items():
                keys.setdefault((prep["names"], tuple(prep["keep"])), []).append(i)
            for idx in keys.values():
                self._fit_ri_group(idx, prepared, fits, infos)
        else:
            for i, prep in prepared.items():
                fits[i], infos[i] = self._fit_nested(prep)
        return fits, infos

    def _prepare(self, data: Data) -> dict:
        y, X, names = self.formula.build(data)
        if not (np.isfinite(y).all() and np.isfinite(X).all()):
            raise _Failure("missing or non-finite values in the response or the fixed-effect columns")
        if y.shape[0] == 0:
            raise _Failure("no observations")
        out = {"names": names, "n": y.shape[0]}
        if len(self.groups) == 1:
            codes, G = group_codes(data, self.groups[0])
            if G < 2:
                raise _Failure(f"only one level of {self.groups[0]!r}: var({self.groups[0]}) is not "
                               "identifiable next to the intercept (need at least 2 groups)")
            S = ri.ri_stats(y, X, codes, G)
            W, p = S.W[0], S.p
            XtX = W[:p, :p] + np.einsum("k,kij->ij", S.size[0], S.B[0][:, :p, :p])
            out.update(stats=S, G=G)
        else:
            outer, inner = self.groups
            cc, C = group_codes(data, outer)
            rc0 = np.asarray(data[inner]) if inner in data else None
            if rc0 is None:
                raise _Failure(f"grouping column {inner!r} is not in the data")
            _, rc0 = np.unique(rc0, return_inverse=True)
            key = cc.astype(np.int64) * (int(rc0.max()) + 1) + rc0
            del rc0
            _, rc = np.unique(key, return_inverse=True)
            del key
            Rn = int(rc.max()) + 1
            if C < 2:
                raise _Failure(f"only one level of {outer!r}: var({outer}) is not identifiable next to the "
                               "intercept (need at least 2 groups)")
            if Rn <= C:
                raise _Failure(f"every {outer!r} has a single {inner!r}: var({inner}) and var({outer}) "
                               "are not separately identifiable")
            S = nested.nested_stats(y, X, cc, rc.astype(np.intp), C, Rn)
            W, p = S.W, S.p
            XtX = W[:p, :p] + (S.n[:, None] * S.zbar[:, :p]).T @ S.zbar[:, :p]
            out.update(stats=S, G=C, Rn=Rn)
        keep = ri.estimable_columns(XtX)
        # residual variation left within groups after the fixed effects (within part of the regression)
        kp = np.append(keep, p)
        Wk = W[np.ix_(kp, kp)]
        wx = np.diag(Wk)[:-1]
        varying = wx > 1e-12 * np.maximum(np.diag(XtX)[keep], np.finfo(float).tiny)
        Wv = Wk[np.ix_(np.append(varying, True), np.append(varying, True))]
        try:
            coef = np.linalg.solve(Wv[:-1, :-1], Wv[:-1, -1]) if varying.any() else np.zeros(0)
        except np.linalg.LinAlgError:
            coef = np.linalg.lstsq(Wv[:-1, :-1], Wv[:-1, -1], rcond=1e-12)[0]
        resid = Wv[-1, -1] - Wv[:-1, -1] @ coef
        if resid <= 1e-12 * Wv[-1, -1] or y.shape[0] - keep.size <= 0:
            raise _Failure("no variation of the response left within groups after the fixed effects: "
                           "var(residual) would be 0 and the model is degenerate")
        out["keep"] = keep
        return out

    def _dropped_message(self, names, keep) -> str:
        dropped = [nm for j, nm in enumerate(names) if j not in set(keep.tolist())]
        if not dropped:
            return ""
        return "not estimable (linearly dependent on other columns): " + ", ".join(dropped)

    def _assemble(self, names, keep, beta, cov, vcs, df, status, message) -> Fit:
        p_all = len(names)
        k = len(vcs)
        est = np.full(p_all + k, np.nan)
        se = np.full(p_all + k, np.nan)
        dfs = np.full(p_all + k, np.nan)
        est[keep] = beta
        se[keep] = np.sqrt(np.diag(cov))
        est[p_all:] = vcs
        mult = np.full(p_all + k, np.nan)
        if df is not None:
            dfs[keep] = df
            with np.errstate(invalid="ignore"):
                mult[keep] = stats.t.ppf(0.5 + self.level / 2, df)
        else:
            mult[:p_all] = NormalDist().inv_cdf(0.5 + self.level / 2)
        return Fit(self._param_names(names), est, se, est - mult * se, est + mult * se, dfs, status, 0,
                   message)

    def _bw_df(self, prep, between: np.ndarray) -> np.ndarray:
        p, n, G = len(prep["keep"]), prep["n"], prep["G"]
        pb = int(between.sum())
        return np.where(between, G - pb, n - p - (G - pb)).astype(float)

    def _fit_ri_group(self, idx, prepared, fits, infos) -> None:
        keep = prepared[idx[0]]["keep"]
        S = ri.stack_stats([prepared[i]["stats"] for i in idx]).take(np.arange(len(idx)), keep)
        res = ri.fit_ri(S, self.reml)
        between = ri.between_columns(S)
        satt = None
        if self.df_method == "satterthwaite":
            satt = ri.satterthwaite_ri(S, res["theta"], res["sigma2"], self.reml)
        g = self.groups[0]
        for r, i in enumerate(idx):
            prep = prepared[i]
            msgs = [m for m in (self._dropped_message(prep["names"], keep), res["message"][r]) if m]
            if self.df_method == "between-within":
                df = self._bw_df(prep, between[r])
            elif satt is not None:
                df = satt[r]
            else:
                df = None
            if df is not None and np.any(~(df > 0)):
                msgs.append("some t df are not positive: their intervals are NaN")
                df = np.where(df > 0, df, np.nan)
            status = "ok"
            if not res["converged"][r]:
                status = "nonconverged"
            elif res["boundary"][r]:
                status = "boundary"
                msgs.append(f"var({g}) estimated at the boundary (0)")
            s2 = res["sigma2"][r]
            fits[i] = self._assemble(prep["names"], keep, res["beta"][r], res["cov"][r],
                                     [res["theta"][r] * s2, s2], df, status, "; ".join(msgs))
            infos[i] = {"crit": float(res["crit"][r]), "llf": -0.5 * float(res["crit"][r]),
                        "theta": np.array([res["theta"][r]]), "reml": self.reml}

    def _fit_nested(self, prep) -> tuple[Fit, dict]:
        keep, S = prep["keep"], prep["stats"]
        if len(keep) < S.p:
            S = S.take(keep)
        res = nested.fit_nested(S, self.reml)
        outer, inner = self.groups
        msgs = [m for m in (self._dropped_message(prep["names"], keep), res["message"]) if m]
        df = None
        if self.df_method is not None:
            if self.df_method == "satterthwaite":
                msgs.append("satterthwaite df not implemented for the nested model: between-within used")
            df = self._nested_bw_df(S, prep)
        status = "ok"
        if not res["converged"]:
            status = "nonconverged"
        elif res["boundary"].any():
            status = "boundary"
            which = [f"var({nm})" for nm, b in zip((inner, outer), res["boundary"]) if b]
            msgs.append(" and ".join(which) + " estimated at the boundary (0)")
        s2 = res["sigma2"]
        tr, tc = res["theta"]
        fit = self._assemble(prep["names"], keep, res["beta"], res["cov"], [tc * s2, tr * s2, s2], df, status,
                             "; ".join(msgs))
        return fit, {"crit": res["crit"], "llf": -0.5 * res["crit"], "theta": np.array([tc, tr]),
                     "reml": self.reml}

    def _nested_bw_df(self, S, prep) -> np.ndarray:
        p = S.p
        n, C, Rn = prep["n"], prep["G"], prep["Rn"]
        within_rep = np.diag(S.W)[:p]
        nc = np.bincount(S.centre, weights=S.n, minlength=C)
        zc = np.zeros((C, p))
        np.add.at(zc, S.centre, S.n[:, None] * S.zbar[:, :p])
        zc /= nc[:, None]
        within_centre = within_rep + (S.n[:, None] * (S.zbar[:, :p] - zc[S.centre]) ** 2).sum(0)
        scale = within_centre + (nc[:, None] * zc**2).sum(0)
        centre_level = within_centre <= 1e-12 * scale
        rep_level = (within_rep <= 1e-12 * scale) & ~centre_level
        pc, pr = int(centre_level.sum()), int(rep_level.sum())
        df = np.full(p, float(n - p - (Rn - pr - pc)))
        df[rep_level] = Rn - C - pr
        df[centre_level] = C - pc
        return df
