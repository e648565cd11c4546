"""FastMixedLM: exact REML/ML for random-intercept, random-slope and nested random-intercept models.

The numerics live in :mod:`simstudy.estimators.reml` (one grouping factor, vectorised over replicates),
:mod:`simstudy.estimators.reml_slope` (random intercept and slope, ``slope="x"``) and
:mod:`simstudy.estimators.reml_nested` (reps within centres). This module turns a replicate's data into the
sufficient statistics, handles the edge cases, and returns :class:`~simstudy.estimators.base.Fit` objects.

Nested model (``groups=["centre", "rep"]``): only nested factors are fitted. Rep ids must be unique across
centres unless ``nested_ids="within"`` declares them numbered within centres; ids that repeat across
centres are otherwise refused (failed fit, one-line message), because crossed factors (the same item seen
by every subject) look the same. See :class:`FastMixedLM` and :func:`simstudy.estimators.formula.nest_codes`.

Reported per fit: fixed effects with SEs from ``s2 (X' H^-1 X)^-1`` at the optimum (as lme4 and
statsmodels report), Wald intervals (z, or t with ``df_method``), variance components ``var(<group>)`` and
``var(residual)`` (their SE and interval are NaN: no Wald SE for a variance is reported), a status
(``boundary`` when a relative SD ``sqrt(var(group) / var(residual))`` is below 1e-4, lme4's
``isSingular`` rule) and a message. Every optimum is certified (first-order optimality on lme4's scale,
:mod:`simstudy.estimators.optimality`): ``ok`` and ``boundary`` are certified optima; a fit whose
certificate still fails after re-optimisation is ``nonconverged``, its message saying which check failed
and by how much. :meth:`FastMixedLM.fit_with_info` also returns the criterion (-2 log-likelihood, REML or
ML, lme4's constant), the log-likelihood and the variance ratios.

Random intercept and slope (``groups="g", slope="x"``, lme4's ``(1 + x | g)``): parameters
``var(g)`` (intercept variance), ``var(g:x)`` (slope variance), ``cov(g:x)`` (the covariance of the
intercept and the slope, i.e. cov(g, g:x); named without a comma so that it is safe in CSV files) and
``var(residual)``; status ``boundary`` when the relative covariance factor is singular (a diagonal element of
its Cholesky factor, lme4's theta, below 1e-4: lme4's ``isSingular``). ``fit_with_info`` adds ``psi`` (the
relative covariance matrix) and gives lme4's theta as ``theta``. Newton steps with the exact gradient from
several starts, see :mod:`simstudy.estimators.reml_slope`.

Batching: :meth:`FastMixedLM.fit_batch` builds every replicate's design matrix, groups replicates with the
same fixed-effect columns and the same grouping column(s) (same values: their coding and group layout are
computed once), stacks them and computes the group sums, within cross products, rank and residual checks
for the whole stack (:func:`simstudy.estimators.reml.batch_stats`; nested and random slope:
:mod:`simstudy.estimators.fast_batch`), then fits all replicates with the same estimable columns together:
the random intercept by a vectorised bracketing search, the nested and random-slope models by Newton runs
in lockstep over replicates (and starts), replicates leaving the active set as they converge
(:mod:`simstudy.estimators.reml_batch`). ``fit(data)`` is the same code with a batch of one, and every step
treats each replicate independently of the others (sums over classes, groups and units accumulate in order
or within one replicate's row; stacked linear algebra runs matrix by matrix, with shapes fixed by the
replicate, not the batch), so a replicate's ``Fit`` is bit-identical whichever batch it is fitted in.

Degrees of freedom (``df_method``) for t intervals of fixed effects:

- ``None``: z intervals, ``df`` NaN.
- ``"between-within"``: SAS PROC MIXED's DDFM=BETWITHIN split of the residual df. A column constant within
  every group is a between effect (the intercept included): ``df = G - p_between``; every other column:
  ``df = n - p - (G - p_between)``. Nested model: centre-level columns ``C - p_centre``, columns constant
  within reps but not centres ``Rn - C - p_rep``, others ``n - p - (Rn - p_rep - p_centre)``. (SAS's further
  split of the within df for classification effects is not done.)
- ``"satterthwaite"``: random-intercept model only, as lmerTest: ``2 V^2 / (g' C g)`` with ``V`` the
  variance of the estimate as a function of ``(var(group), var(residual))``, ``g`` its gradient and ``C``
  twice the inverse Hessian of -2 log-likelihood (REML or ML as fitted), all derivatives analytic
  (:func:`simstudy.estimators.reml.satterthwaite_ri`). At a boundary fit (status ``boundary``: ``var(group)``
  estimated at 0) the df are those of the model without the group component, whose only variance parameter
  is ``var(residual)``: the residual df of the linear model, ``n - p`` (REML) or ``n`` (ML), for every
  column. lmerTest reports exactly these at a singular fit (see ``tests/data/lmertest/README.md``); the
  df are discontinuous there: a tiny interior ``var(group)`` gives df near ``G - p_between`` for a
  cluster-level column, ``var(group) = 0`` gives ``n - p``. Agreement with lmerTest 3.1.3: relative 1e-6
  at interior fits, 1e-9 at boundary fits, and up to 1e-3 at interior fits very close to the boundary
  (relative SD below 0.05), where lmerTest's numerical Hessian loses accuracy. Where the df cannot be
  computed (the Hessian in the variance parameters is not positive definite or not finite) they are NaN,
  the t intervals NaN, and the message says so. Nested and random-slope models: fall back to
  between-within (said in the message).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from scipy.special import stdtrit  # scipy.stats costs ~0.4 s to import in every worker

from simstudy.estimators import fast_batch
from simstudy.estimators import reml as ri
from simstudy.estimators.base import Fit, FitArrays, FitSlots
from simstudy.estimators.formula import NESTED_IDS, ColumnCache, Formula, fill_rows, group_codes
from simstudy.types import Data

DF_METHODS = (None, "between-within", "satterthwaite")
#: Rows per sub-batch when stacking replicates: the stack, ``(p + 1) x rows`` doubles (1 MiB for 3 columns),
#: stays in a 2 MiB L2 cache, and the statistics and checks are called 4x less often than with 8,192 rows.
#: In the runner's loop (fresh data, paired rounds) 0.95-0.98x the time per replicate at 30 x 20, 0.88x at
#: 100 x 50; 65,536 rows was 1.04-1.06x (cache misses). Results do not depend on it.
_BATCH_ROWS = 1 << 15


class _Failure(Exception):
    pass


class FastMixedLM:
    """Linear mixed model with random intercepts, fitted exactly on per-group sufficient statistics.

    Parameters
    ----------
    formula : str
        Fixed effects, e.g. ``"score ~ hs_gpa + C(method)"`` (see :class:`simstudy.estimators.formula.Formula`).
    groups : str or sequence of two str
        ``"g"``: random intercept per level of ``g``. ``["centre", "rep"]``: nested random intercepts, reps
        within centres (how rep ids are read: ``nested_ids``). Crossed grouping factors (the same item seen
        in every subject) are not supported and are refused (failed fit), see ``nested_ids``.
    reml : bool
        REML (default) or ML.
    level : float
        Confidence level of the intervals.
    df_method : None, "between-within" or "satterthwaite"
        z intervals (None) or t intervals with these degrees of freedom (see the module docstring).
    slope : str, optional
        With one grouping column: also a random slope for this numeric column, correlated with the random
        intercept (lme4's ``(1 + x | g)``).
    nested_ids : {"unique", "within"}
        How the inner column's ids are read with two grouping columns. ``"unique"`` (default): every inner id
        names one unit and belongs to one outer group (e.g. ``rep = centre * 1000 + r``;
        :class:`simstudy.dgp.CallCenter` numbers reps ``0..C*R-1``); an inner id that occurs in more than one
        outer group makes the fit fail with a message, because crossed factors (the same item in every subject) and ids
        numbered within the outer group (rep 1 of centre a, rep 1 of centre b) look the same in the data.
        ``"within"``: ids are numbered within the outer group; a unit is an (outer, inner) pair (lme4's
        ``(1 | centre/rep)``). With either, a fit also fails when every inner unit is a single observation
        (its variance is confounded with the residual one: a crossed design with one observation per cell
        declared ``"within"`` looks like that) or every outer group has a single inner unit. See
        :func:`simstudy.estimators.formula.nest_codes`.

    Examples
    --------
    >>> est = FastMixedLM("y ~ x", groups="g")          # doctest: +SKIP
    >>> fit = est.fit(data)                              # doctest: +SKIP
    >>> fit.params                                       # doctest: +SKIP
    ('Intercept', 'x', 'var(g)', 'var(residual)')
    """

    def __init__(self, formula: str, *, groups: str | Sequence[str], reml: bool = True, level: float = 0.95,
                 df_method: str | None = None, slope: str | None = None, nested_ids: str = "unique") -> None:
        self.formula = Formula(formula)
        self.groups = (groups,) if isinstance(groups, str) else tuple(groups)
        if len(self.groups) not in (1, 2) or not all(isinstance(g, str) for g in self.groups):
            raise ValueError(f"groups must be a column name or [outer, inner] names, got {groups!r}")
        if df_method not in DF_METHODS:
            raise ValueError(f"df_method must be one of {DF_METHODS}, got {df_method!r}")
        if not 0 < level < 1:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        if slope is not None and (len(self.groups) != 1 or not isinstance(slope, str)):
            raise ValueError("slope= needs one grouping column (groups='g') and a column name")
        self.reml = bool(reml)
        self.level = float(level)
        self.df_method = df_method
        self.slope = slope
        if nested_ids not in NESTED_IDS:
            raise ValueError(f"nested_ids must be one of {NESTED_IDS}, got {nested_ids!r}")
        self.nested_ids = nested_ids

    def __repr__(self) -> str:
        groups = self.groups[0] if len(self.groups) == 1 else list(self.groups)
        opts = "".join(f", {k}={v!r}" for k, v in (("slope", self.slope), ("df_method", self.df_method)) if v)
        if self.nested_ids != "unique":
            opts += f", nested_ids={self.nested_ids!r}"
        return f"FastMixedLM({self.formula.text!r}, groups={groups!r}{opts}, reml={self.reml}, level={self.level})"

    # ------------------------------------------------------------------ public API
    def fit(self, data: Data) -> Fit:
        """Fit one replicate (the batched code with a batch of one)."""
        return self._fit_all([data], want_info=False)[0][0]

    def fit_with_info(self, data: Data) -> tuple[Fit, dict]:
        """Fit one replicate; also return ``crit`` (-2 log-lik), ``llf``, ``theta`` (variance ratios)."""
        fits, infos = self._fit_all([data])
        return fits[0], infos[0]

    def fit_batch(self, datasets: Sequence[Data]) -> list[Fit]:
        """Fit many replicates. Replicates with the same fixed-effect columns are fitted together, vectorised
        over replicates, with their sufficient statistics computed per stack of replicates sharing a grouping
        layout: random intercept (group sizes and numbers of groups may differ) and nested model (layouts
        may differ) across all layouts, random slope per number of groups. Each Fit is bit-identical to
        ``fit`` of that replicate alone."""
        return self._fit_all(datasets, want_info=False)[0].fits()

    def fit_batch_arrays(self, datasets: Sequence[Data]) -> FitArrays:
        """:meth:`fit_batch`'s results stacked (:class:`~simstudy.estimators.base.FitArrays`), without a Fit
        per replicate: what the runner takes."""
        return self._fit_all(datasets, want_info=False)[0].arrays()

    # ------------------------------------------------------------------ internals
    def _param_names(self, names: Sequence[str]) -> tuple[str, ...]:
        if self.slope is not None:
            g, x = self.groups[0], self.slope
            return tuple(names) + (f"var({g})", f"var({g}:{x})", f"cov({g}:{x})", "var(residual)")
        return tuple(names) + tuple(f"var({g})" for g in self.groups) + ("var(residual)",)

    def _fit_all(self, datasets: Sequence[Data], want_info: bool = True) -> tuple[FitSlots, list[dict]]:
        fits = FitSlots(len(datasets))
        infos: list[dict] = [{} for _ in datasets]
        if self.slope is not None:
            fast_batch.fit_slope_all(self, datasets, fits, infos, want_info)
        elif len(self.groups) == 1:
            self._fit_ri_all(datasets, fits, infos, want_info)
        else:
            fast_batch.fit_nested_all(self, datasets, fits, infos, want_info)
        return fits, infos

    # -- random intercept: batched preparation
    @staticmethod
    def _precheck(y: np.ndarray, X: np.ndarray) -> None:
        if not (np.isfinite(y).all() and np.isfinite(X).all()):
            raise _Failure("missing or non-finite values in the response or the fixed-effect columns")
        if y.shape[0] == 0:
            raise _Failure("no observations")

    def _layout(self, data: Data, nrows: int, cache: dict) -> ri.Layout:
        """The grouping layout of one replicate, shared with earlier replicates whose grouping column holds
        the same values (looked up by the column's bytes, so coding is done once per distinct column)."""
        g = self.groups[0]
        if g not in data:
            raise ValueError(f"grouping column {g!r} is not in the data")
        values = np.asarray(data[g])
        key = None
        if values.ndim == 1 and values.dtype.kind in "biuUS":
            key = (values.dtype.str, values.tobytes())
            lay = cache.get(key)
            if lay is not None and lay.nrows == nrows:
                return lay
        codes, G = group_codes(data, g)
        if codes.shape[0] != nrows:
            raise _Failure(f"grouping column {g!r} has {codes.shape[0]} rows, the response {nrows}")
        if G < 2:
            raise _Failure(f"only one level of {g!r}: var({g}) is not identifiable next to the intercept "
                           "(need at least 2 groups)")
        if key is None:
            key = ("codes", G, codes.tobytes())
            lay = cache.get(key)
            if lay is not None:
                return lay
        lay = cache[key] = ri.Layout.from_codes(codes, G)
        return lay

    def _fit_ri_all(self, datasets: Sequence[Data], fits: FitSlots, infos: list, want_info: bool) -> None:
        """Random intercept: replicates sharing the fixed-effect columns and the grouping layout are
        stacked and their statistics computed together (:func:`reml.batch_stats`), in sub-batches of about
        ``_BATCH_ROWS`` rows; replicates of more than ``reml._CHUNK`` rows one at a time with row chunks."""
        cache = ColumnCache()
        buckets: dict[tuple, list] = {}
        units: list[tuple] = []
        for i, data in enumerate(datasets):
            try:
                # numeric columns are copied straight into the stack below, without a design matrix
                direct = self.formula.numeric_columns(data)
                y, X, names = self.formula.build(data) if direct is None else direct
            except ValueError as exc:
                fits[i] = Fit.failed(str(exc))
                continue
            try:
                try:
                    lay = self._layout(data, y.shape[0], cache)
                except (_Failure, ValueError):
                    self._precheck(y, self._matrix(data, X))
                    raise
                if y.shape[0] > ri._CHUNK:
                    X = self._matrix(data, X)
                    self._precheck(y, X)
                    S = ri.ri_stats(y, X, lay.codes, lay.G)
                    p = S.p
                    XtX = S.W[:, :p, :p] + np.einsum("rk,rkij->rij", S.size, S.B[:, :, :p, :p])
                    fast_batch.check_units(self, np.array([i]), names, S, XtX, units, fits)
                    continue
            except (_Failure, ValueError) as exc:
                fits[i] = Fit.failed(str(exc), self._param_names(names))
                continue
            buckets.setdefault((names, id(lay)), [lay]).append((i, y, X))
        for (names, _), members in buckets.items():
            lay = members[0]
            members = members[1:]
            n, p = lay.nrows, len(names)
            step = max(1, _BATCH_ROWS // max(n, 1))
            for s in range(0, len(members), step):
                part = members[s : s + step]
                Z = np.empty((len(part), p + 1, n))
                for r, (_, y, X) in enumerate(part):
                    if isinstance(X, list):
                        fill_rows(Z[r, :p], X, self.formula.intercept)
                    else:
                        Z[r, :p] = X.T
                    Z[r, p] = y
                idx = np.array([m[0] for m in part])
                finite = np.isfinite(Z).all(axis=(1, 2))
                if not finite.all():
                    for i in idx[~finite]:
                        fits[i] = Fit.failed("missing or non-finite values in the response or the fixed-effect "
                                             "columns", self._param_names(names))
                    Z, idx = Z[finite], idx[finite]
                    if not idx.size:
                        continue
                S, XtX = ri.batch_stats(Z, lay, p)
                fast_batch.check_units(self, idx, names, S, XtX, units, fits)
        groups: dict[tuple, list] = {}
        for u in units:
            groups.setdefault((u[1], u[2].tobytes()), []).append(u)
        for us in groups.values():
            idx = np.concatenate([u[0] for u in us])
            S = us[0][3] if len(us) == 1 else ri.stack_stats([u[3] for u in us])
            self._fit_ri_group(idx, us[0][1], us[0][2], S, fits, infos, want_info)

    def _matrix(self, data: Data, X: np.ndarray | list) -> np.ndarray:
        """The design matrix, where ``X`` may be its columns (:meth:`Formula.numeric_columns`)."""
        return self.formula.build(data)[1] if isinstance(X, list) else X

    def _dropped_message(self, names, keep) -> str:
        dropped = [nm for j, nm in enumerate(names) if j not in set(keep.tolist())]
        if not dropped:
            return ""
        return "not estimable (linearly dependent on other columns): " + ", ".join(dropped)

    def _store_batch(self, fits: FitSlots, idx, names, keep, beta, cov, vcs, df, statuses, messages) -> None:
        """Store the fits of R replicates ``idx`` with the same columns in ``fits``: ``beta`` (R, k), ``cov``
        (R, k, k) for the estimable columns ``keep``, variance components ``vcs`` (R, m), t ``df`` (R, k) or
        None for z intervals."""
        R = beta.shape[0]
        p_all = len(names)
        k = vcs.shape[1]
        est = np.full((R, p_all + k), np.nan)
        se = np.full((R, p_all + k), np.nan)
        dfs = np.full((R, p_all + k), np.nan)
        est[:, keep] = beta
        se[:, keep] = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        est[:, p_all:] = vcs
        mult = np.full((R, p_all + k), np.nan)
        if df is not None:
            dfs[:, keep] = df
            with np.errstate(invalid="ignore"):
                mult[:, keep] = stdtrit(df, 0.5 + self.level / 2)
        else:
            mult[:, :p_all] = NormalDist().inv_cdf(0.5 + self.level / 2)
        fits.put(idx, self._param_names(names), est, se, est - mult * se, est + mult * se, dfs, statuses, messages)

    def _fit_ri_group(self, idx, names, keep, S, fits, infos, want_info=True) -> None:
        """Fit a stack of replicates with the same estimable columns and store their Fits."""
        res = ri.fit_ri(S, self.reml)
        R = idx.size
        df = None
        if self.df_method == "between-within":
            between = ri.between_columns(S)
            pb = between.sum(axis=1)
            G, nobs = S.ngroups, S.nobs
            df = np.where(between, (G - pb)[:, None], (nobs - len(keep) - (G - pb))[:, None]).astype(float)
        elif self.df_method == "satterthwaite":
            with np.errstate(all="ignore"):
                df = ri.satterthwaite_ri(S, res["theta"], res["sigma2"], self.reml, res["boundary"])
        dfbad = np.zeros(R, dtype=bool)
        if df is not None:
            pos = np.isfinite(df) & (df > 0)
            dfbad = ~pos.all(axis=1)
            if dfbad.any():
                df = np.where(pos, df, np.nan)
        dfmsg = ("Satterthwaite df could not be computed (the Hessian of the criterion in the variance "
                 "parameters is not positive definite or not finite): t intervals NaN"
                 if self.df_method == "satterthwaite" else "some t df are not positive: their intervals are NaN")
        g = self.groups[0]
        dropped = self._dropped_message(names, keep)
        conv, bnd = res["converged"], res["boundary"]
        statuses = np.where(~conv, "nonconverged", np.where(bnd, "boundary", "ok")).tolist()
        messages = [""] * R
        rmsg = res["message"]
        bmsg = f"var({g}) estimated at the boundary (0)"
        for r in np.flatnonzero(dfbad | (conv & bnd) | np.array([bool(m) for m in rmsg]) | bool(dropped)):
            msgs = [m for m in (dropped, rmsg[r]) if m]
            if dfbad[r]:
                msgs.append(dfmsg)
            if conv[r] and bnd[r]:
                msgs.append(bmsg)
            messages[r] = "; ".join(msgs)
        s2 = res["sigma2"]
        vcs = np.stack([res["theta"] * s2, s2], axis=1)
        self._store_batch(fits, idx, names, keep, res["beta"], res["cov"], vcs, df, statuses, messages)
        if want_info:
            for r, i in enumerate(idx.tolist()):
                c = float(res["crit"][r])
                infos[i] = {"crit": c, "llf": -0.5 * c, "theta": np.array([res["theta"][r]]), "reml": self.reml}
