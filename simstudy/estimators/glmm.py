"""GLMM: random-intercept logistic and Poisson models by maximum likelihood, as lme4's ``glmer``.

``GLMM("y ~ x + treat", groups="g", family="binomial")`` is lme4's ``glmer(y ~ x + treat + (1 | g),
family = binomial)``; ``nagq`` is its ``nAGQ`` (1: Laplace; 2-25: adaptive Gauss-Hermite quadrature);
``trials="n"`` reads the response as successes out of ``n`` (lme4's ``cbind(y, n - y)``). Numerics:
:mod:`simstudy.estimators.glmm_deviance` (the criterion and its exact derivatives) and
:mod:`simstudy.estimators.glmm_fit` (Newton in ``(theta, beta)``, certificates, separation).

Reported per fit: the fixed effects with SEs from lme4's default ``vcov`` for ``glmer`` (the beta block of
``2 H^-1``, ``H`` the Hessian of the deviance in ``(theta, beta)``), Wald z intervals (``df`` NaN), and
``var(<group>)`` (``theta^2``; no SE or interval). Status: ``boundary`` when the group SD is below 1e-4
(lme4's ``isSingular``); ``nonconverged`` when the optimum's certificate fails (the message says which check
and by how much) or the variance diverges; ``failed`` with all values NaN for separated data (a direction of
the fixed effects along which the likelihood never decreases: their ML estimates are infinite, while lme4
stops somewhere along it and reports large estimates and SEs) and for data the model cannot take (responses
out of range, fewer than 2 groups, a constant response, every cluster a single Bernoulli trial). Clusters
whose responses are all 0 or all 1 are ordinary data (they inform the group variance) and are fitted; how
many there are is said in the message. Linearly dependent columns are not estimable (NaN, named in the
message), as lme4 drops them.

Batching: :meth:`GLMM.fit_batch` fits replicates with the same estimable columns together, all rows in one
array, per-cluster and per-replicate sums over each one's own rows, Newton iterations in lockstep with
converged replicates dropping out; a replicate's ``Fit`` is bit-identical whichever batch it is fitted in.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from simstudy.estimators import glmm_deviance as gd
from simstudy.estimators import glmm_fit as gf
from simstudy.estimators.base import Fit
from simstudy.estimators.formula import Formula, group_codes
from simstudy.estimators.reml import estimable_columns
from simstudy.types import Data

#: Rows per sub-batch (divided by the number of quadrature nodes for nAGQ > 1).
_BATCH_ROWS = 1 << 18


class _Failure(Exception):
    pass


class GLMM:
    """Generalised linear mixed model with a random intercept (lme4's ``glmer(y ~ ... + (1 | g))``).

    Parameters
    ----------
    formula : str
        Fixed effects, e.g. ``"y ~ x + C(arm)"`` (see :class:`simstudy.estimators.formula.Formula`).
    groups : str
        The grouping column (one random intercept per level).
    family : {"binomial", "poisson"}
        Logit link for binomial, log link for Poisson.
    nagq : int
        Quadrature points: 1 = Laplace approximation (lme4's default), 2-25 = adaptive Gauss-Hermite.
    level : float
        Confidence level of the Wald z intervals.
    trials : str, optional
        Binomial only: the column of trials; the response is then the number of successes.

    Examples
    --------
    >>> est = GLMM("y ~ x", groups="g", family="binomial")   # doctest: +SKIP
    >>> est.fit(data).params                                  # doctest: +SKIP
    ('Intercept', 'x', 'var(g)')
    """

    #: What the fixed effects estimate: effects conditional on the cluster's random effect (see the truths
    #: of :class:`simstudy.dgp.BinaryTrial`).
    estimand = "conditional"

    def __init__(self, formula: str, *, groups: str, family: str = "binomial", nagq: int = 1, level: float = 0.95,
                 trials: str | None = None) -> None:
        self.formula = Formula(formula)
        if not isinstance(groups, str):
            raise ValueError(f"groups must be one column name (a random intercept), got {groups!r}")
        if family not in gd.FAMILIES:
            raise ValueError(f"family must be one of {gd.FAMILIES}, got {family!r}")
        if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or not 1 <= nagq <= 25:
            raise ValueError(f"nagq must be an integer from 1 (Laplace) to 25, got {nagq!r}")
        if not 0 < level < 1:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        if trials is not None and (family != "binomial" or not isinstance(trials, str)):
            raise ValueError("trials= names a column of binomial trials (family='binomial' only)")
        self.groups = groups
        self.family = family
        self.nagq = int(nagq)
        self.level = float(level)
        self.trials = trials

    def __repr__(self) -> str:
        tr = f", trials={self.trials!r}" if self.trials else ""
        return (f"GLMM({self.formula.text!r}, groups={self.groups!r}, family={self.family!r}, nagq={self.nagq}"
                f"{tr}, level={self.level})")

    # ------------------------------------------------------------------ public API
    def fit(self, data: Data) -> Fit:
        """Fit one replicate (the batched code with a batch of one)."""
        return self._fit_all([data])[0][0]

    def fit_batch(self, datasets: Sequence[Data]) -> list[Fit]:
        """Fit many replicates together; each Fit is bit-identical to ``fit`` of that replicate alone."""
        return self._fit_all(datasets)[0]

    def fit_with_info(self, data: Data) -> tuple[Fit, dict]:
        """Fit one replicate; also return ``deviance`` (lme4's ``-2 logLik``: its ``aic`` constant for
        Laplace, its deviance-residual constant for nAGQ > 1), ``theta`` (the group SD) and ``iterations``."""
        fits, infos = self._fit_all([data])
        return fits[0], infos[0]

    # ------------------------------------------------------------------ internals
    def _names(self, names: Sequence[str]) -> tuple[str, ...]:
        return tuple(names) + (f"var({self.groups})",)

    def _prepare(self, data: Data):
        y, X, names = self.formula.build(data)
        try:
            n = y.shape[0]
            if n == 0:
                raise _Failure("no observations")
            if not (np.isfinite(y).all() and np.isfinite(X).all()):
                raise _Failure("missing or non-finite values in the response or the fixed-effect columns")
            m = np.ones(n)
            if self.trials is not None:
                if self.trials not in data:
                    raise _Failure(f"trials column {self.trials!r} is not in the data")
                m = np.asarray(data[self.trials], dtype=float)
                if m.shape != y.shape or not np.isfinite(m).all() or (m < 0).any() or (m != np.round(m)).any():
                    raise _Failure(f"trials column {self.trials!r}: must be non-negative integers, one per row")
                if (y < 0).any() or (y > m).any() or (y != np.round(y)).any():
                    raise _Failure(f"binomial response must be integer successes between 0 and {self.trials!r}")
            elif self.family == "binomial" and not np.isin(y, (0.0, 1.0)).all():
                raise _Failure("binomial response must be 0/1 (or successes out of trials=...)")
            if self.family == "poisson" and ((y < 0).any() or (y != np.round(y)).any()):
                raise _Failure("poisson response must be non-negative integer counts")
            codes, G = group_codes(data, self.groups)
            if codes.shape[0] != n:
                raise _Failure(f"grouping column {self.groups!r} has {codes.shape[0]} rows, the response {n}")
            if G < 2:
                raise _Failure(f"only one level of {self.groups!r}: var({self.groups}) is not identifiable "
                               "(need at least 2 groups)")
            used = m > 0
            top = m if self.family == "binomial" else np.full(n, np.inf)
            if not (y[used] > 0).any() or (self.family == "binomial" and (y[used] == m[used]).all()):
                raise _Failure("response is constant (every response 0, or every one equal to its trials): the "
                               "fixed effects' ML estimates are infinite (lme4 refuses a constant response)")
            mj = np.bincount(codes, weights=m, minlength=G)
            if self.family == "binomial" and (mj <= 1).all():
                raise _Failure(f"every {self.groups!r} cluster is a single Bernoulli trial: var({self.groups}) "
                               "is not identifiable")
            if self.family == "binomial":
                succ = np.bincount(codes, weights=y * used, minlength=G)
                fail = np.bincount(codes, weights=(m - y) * used, minlength=G)
                if not ((succ > 0) & (fail > 0)).any():
                    raise _Failure(f"no {self.groups!r} cluster has both successes and failures (every one is all 0 "
                                   f"or all 1): the ML estimate of var({self.groups}) is infinite (lme4 reports a "
                                   "large finite variance where its approximate deviance levels off)")
            keep = estimable_columns(X.T @ X)
            if keep.size == 0:
                raise _Failure("no estimable fixed-effect column")
            zero = np.bincount(codes, weights=(y > 0) & used, minlength=G) == 0
            full = np.bincount(codes, weights=(y < top) & used, minlength=G) == 0
        except _Failure as exc:
            raise _Failure(str(exc), self._names(names)) from None
        note = ""
        if zero.any() or full.any():
            nz, nf = int(zero.sum()), int(full.sum())
            if self.family == "poisson":
                what = "every count 0"
            elif self.trials is None:
                what = f"every response 0 and {nf} every response 1"
            else:
                what = f"no success and {nf} only successes"
            note = f"{nz} of {G} clusters have {what} (fitted: they inform var({self.groups}))"
        return names, keep, (y, m, X[:, keep], codes, G), note

    def _fit_all(self, datasets: Sequence[Data]):
        fits: list[Fit | None] = [None] * len(datasets)
        infos: list[dict] = [{} for _ in datasets]
        groups: dict[tuple, list] = {}
        for i, data in enumerate(datasets):
            try:
                names, keep, part, note = self._prepare(data)
            except ValueError as exc:
                fits[i] = Fit.failed(str(exc))
                continue
            except _Failure as exc:
                fits[i] = Fit.failed(exc.args[0], exc.args[1])
                continue
            groups.setdefault((names, keep.tobytes()), []).append((i, keep, part, note))
        limit = max(1, _BATCH_ROWS // (self.nagq if self.nagq > 1 else 1))
        for (names, _), members in groups.items():
            start = 0
            while start < len(members):
                rows, stop = 0, start
                while stop < len(members) and (stop == start or rows + members[stop][2][0].shape[0] <= limit):
                    rows += members[stop][2][0].shape[0]
                    stop += 1
                self._fit_group(names, members[start:stop], fits, infos)
                start = stop
        return fits, infos

    def _fit_group(self, names, members, fits, infos) -> None:
        keep = members[0][1]
        b = gd.Batch.build(self.family, [m[2] for m in members])
        res = gf.fit_glmm(b, self.nagq)
        params = self._names(names)
        p_all = len(names)
        zq = NormalDist().inv_cdf(0.5 + self.level / 2)
        dropped = [nm for j, nm in enumerate(names) if j not in set(keep.tolist())]
        dmsg = ("not estimable (linearly dependent on other columns): " + ", ".join(dropped)) if dropped else ""
        g = self.groups
        for r, (i, _, part, note) in enumerate(members):
            y, m = part[0], part[1]
            sep = res["separated"][r]
            if sep is not None:
                cols = [names[keep[k]] for k in np.flatnonzero(sep)]
                fits[i] = Fit.failed(
                    "separation: the responses are perfectly predicted along a direction of the fixed effects ("
                    + ", ".join(cols) + "), so their ML estimates are infinite (lme4 stops along it and reports "
                    "large estimates and SEs)", params)
                continue
            est = np.full(p_all + 1, np.nan)
            se = np.full(p_all + 1, np.nan)
            est[keep] = res["beta"][r]
            with np.errstate(invalid="ignore"):
                se[keep] = np.sqrt(np.diagonal(res["cov"][r]))
            theta = res["theta"][r]
            est[p_all] = theta * theta
            lo, hi = est - zq * se, est + zq * se
            msgs = [s for s in (dmsg, res["message"][r]) if s]
            if not res["converged"][r]:
                status = "nonconverged"
            elif res["boundary"][r]:
                status = "boundary"
                msgs.append(f"var({g}) estimated at the boundary (SD below 1e-4)" if theta > 0
                            else f"var({g}) estimated at the boundary (0)")
            else:
                status = "ok"
            if res["converged"][r] and not np.isfinite(se[keep]).all():
                msgs.append("SEs not available: the Hessian of the deviance is not positive definite")
            if note:
                msgs.append(note)
            fits[i] = Fit(params, est, se, lo, hi, np.full(p_all + 1, np.nan), status, 0, "; ".join(msgs))
            const = gd.lme4_constant(self.family, y, m, self.nagq > 1)
            infos[i] = {"deviance": float(res["f"][r] + const), "theta": float(theta),
                        "iterations": int(res["iterations"][r]), "nagq": self.nagq}
