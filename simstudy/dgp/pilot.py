"""Simulate new studies from a mixed model fitted to pilot data (what simr does, as an ordinary DGP).

:class:`PilotModel` takes a :class:`~simstudy.estimators.pilot_fit.PilotFit` (from
:func:`~simstudy.estimators.pilot_fit.fit_pilot` or :func:`~simstudy.estimators.pilot_fit.load_pilot`) and
draws data sets from the fitted model with the design changed through ordinary design factors (the number of
clusters, their sizes, the proportion treated, the effect to detect), so a grid over them is an ordinary
study and ``simstudy power --factor n_clusters`` searches it unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simstudy.dgp.base import check_choice, check_count, check_nonnegative, check_positive, check_real
from simstudy.estimators.pilot_fit import PilotFit, psd_factor

RESAMPLE = ("clusters", "units")
RANDOM_EFFECTS = ("new", "pilot")
#: ``treatment_level`` for an individually randomised treatment (one arm per row).
UNIT = "unit"


@dataclass(slots=True)
class PilotFactors:
    """The factors of :class:`PilotModel` (documented there), with their defaults; values are not converted."""

    n_clusters: int | None = None
    cluster_size: int | None = None
    subcluster_size: int | None = None
    effect: float | None = None
    p_treated: float = 0.5

    def check(self, model: PilotModel) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed for ``model``."""
        if self.n_clusters is not None:
            check_count("n_clusters", self.n_clusters, minimum=2)
        if self.cluster_size is not None:
            check_count("cluster_size", self.cluster_size)
        if self.subcluster_size is not None:
            if not model.pilot.nested:
                raise ValueError(f"factor 'subcluster_size' needs a pilot with two nested grouping columns; this "
                                 f"one groups by {model.pilot.groups[0]!r} only (use cluster_size)")
            check_count("subcluster_size", self.subcluster_size)
        if self.effect is not None:
            if model.effect_term is None:
                raise ValueError(f"factor 'effect' has nothing to act on: give PilotModel a treatment_level or "
                                 f"effect_of, got effect={self.effect!r}")
            check_real("effect", self.effect)
        check_real("p_treated", self.p_treated)
        if model.treatment_level is None and self.p_treated != 0.5:
            raise ValueError(f"factor 'p_treated' needs a treatment (PilotModel(treatment_level=...)), got "
                             f"{self.p_treated!r}")
        if not 0 < self.p_treated < 1:
            raise ValueError(f"factor 'p_treated' must lie in (0, 1), got {self.p_treated!r}")


class PilotModel:
    r"""New data sets from a mixed model fitted to pilot data, with the design changed by design factors.

    The model is the pilot's, :math:`y = X\beta + Zb + e`, with the fitted (or overridden) fixed effects
    :math:`\beta`, random effects :math:`b` with the fitted (or overridden) covariance, and residuals
    :math:`e \sim N(0, \sigma^2)`; a treatment column can be added (``treatment_level``). Every data set is
    built cluster by cluster (a cluster is a level of the top grouping column):

    1. **Clusters.** ``n_clusters`` pilot clusters are drawn with replacement. With ``keep_pilot`` the pilot's
       own clusters come first instead: all of them and, beyond the pilot's number, clusters drawn with
       replacement; fewer than the pilot's: a random subset without replacement.
    2. **Sizes.** A drawn cluster keeps its own members (rows; inner groups in a nested model) unless
       ``cluster_size`` asks for another number: fewer are a random subset without replacement, more are all
       of the cluster's members plus the rest drawn with replacement from them. ``subcluster_size`` does the
       same for the rows of every inner group (nested models). So the sizes follow the pilot's distribution
       when not set, and the within-cluster structure (which covariate values occur together) is kept.
    3. **Covariates.** ``resample="clusters"``: a row's covariates are the pilot row it came from (whole
       clusters resampled: within-cluster correlations of the covariates kept). ``resample="units"``: the
       covariates of every row of a new cluster are replaced by a pilot row drawn with replacement from all
       rows (sizes and structure as before; covariates independent across rows). Kept pilot clusters
       (``keep_pilot``) always keep their own rows.
    4. **Random effects.** ``random_effects="new"``: drawn afresh for every cluster and inner group.
       ``"pilot"`` (simr's ``use.u``; needs ``keep_pilot``, which it implies): the pilot's clusters and inner
       groups keep their predicted random effects (BLUPs, :meth:`PilotFit.random_effects`); clusters and inner
       groups beyond the pilot's (and copies of an inner group made to reach ``cluster_size``) get new ones.
    5. **Treatment** (``treatment_level`` not None): a 0/1 column ``treatment``, constant within the level it
       is randomised at: the top grouping column (cluster-randomised), the inner one, or ``"unit"`` (each row).
       Exactly ``floor(p_treated * K)`` of the ``K`` units at that level are treated (at least 1, at most
       ``K - 1``), chosen at random (complete randomisation, not stratified). Its effect ``effect`` is added
       to the treated rows' mean, or with ``treatment_by="x"`` multiplies ``x`` (an effect on the slope of
       ``x``, e.g. the growth rate; then the main effect of ``treatment`` is 0).

    Parameters
    ----------
    pilot : PilotFit
    resample : {"clusters", "units"}
        How the covariates of new clusters are drawn (step 3).
    random_effects : {"new", "pilot"}
        New random effects, or the pilot's BLUPs for its own clusters (step 4).
    keep_pilot : bool, optional
        The pilot's clusters first in every data set (step 1). Default: True with ``random_effects="pilot"``,
        else False.
    treatment_level : str, optional
        A grouping column of the pilot or ``"unit"``: adds a treatment randomised at that level (step 5).
    treatment : str
        Name of the treatment column and its fixed effect (default ``"treat"``).
    treatment_by : str, optional
        A numeric covariate whose slope the treatment changes; the estimand is ``"<treatment>:<x>"``.
    effect_of : str, optional
        Without a treatment: a fixed effect of the pilot that the factor ``effect`` sets (simr's
        ``fixef(model)["x"] <- value``).
    fixed, variances : mapping of str to float, optional
        Values replacing the pilot's, by the names the estimators use (``{"Time": 6.5}``,
        ``{"var(Pig)": 30.0}``).

    Factors (fields of :attr:`factors`)
    -----------------------------------
    n_clusters : int or None, default None
        Top-level clusters per data set (at least 2); None: the pilot's number.
    cluster_size : int or None, default None
        Members per cluster: rows (one grouping column) or inner groups (two); None: each drawn cluster's own.
    subcluster_size : int or None, default None
        Rows per inner group (nested pilots only); None: each inner group's own.
    effect : float or None, default None
        The treatment's effect (None: 0), or with ``effect_of`` that fixed effect's value (None: the pilot's).
    p_treated : float, default 0.5
        Proportion of units treated at ``treatment_level``, in (0, 1).

    Columns: the response (named as in the pilot), every covariate column the pilot model reads, the grouping
    columns as integer codes (clusters ``0..n-1``; inner groups numbered ``0..`` across clusters, so unique:
    fit with the default ``nested_ids="unique"``), and the treatment column (int 0/1) if any.

    Estimands (:meth:`truth`): every fixed effect of the pilot formula by its column name (the pilot's value
    or the override), the treatment's (``treat``, and ``treat:x`` with ``treatment_by``), and the variance
    components ``var(<group>)``, ``var(residual)`` (``var(g:x)``, ``cov(g:x)`` with a slope): the parameter
    names of ``MixedLM(self.formula, groups=..., slope=...)``.
    """

    factors = PilotFactors

    def __init__(self, pilot: PilotFit, *, resample: str = "clusters", random_effects: str = "new",
                 keep_pilot: bool | None = None, treatment_level: str | None = None, treatment: str = "treat",
                 treatment_by: str | None = None, effect_of: str | None = None,
                 fixed: Mapping[str, float] | None = None, variances: Mapping[str, float] | None = None) -> None:
        if not isinstance(pilot, PilotFit):
            raise ValueError(f"PilotModel needs a PilotFit (from fit_pilot or load_pilot), got {type(pilot).__name__}")
        check_choice("resample", resample, RESAMPLE)
        check_choice("random_effects", random_effects, RANDOM_EFFECTS)
        keep = random_effects == "pilot" if keep_pilot is None else bool(keep_pilot)
        if random_effects == "pilot" and not keep:
            raise ValueError("random_effects='pilot' keeps the pilot's clusters: it cannot go with keep_pilot=False")
        levels = (*pilot.groups, UNIT)
        if treatment_level is not None and treatment_level not in levels:
            raise ValueError(f"treatment_level must be one of {', '.join(levels)}, got {treatment_level!r}")
        if treatment_level is not None:
            taken = {*pilot.rows, *pilot.groups}
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", treatment) or treatment in taken:
                raise ValueError(f"treatment {treatment!r} must be a new column name (the pilot has "
                                 f"{', '.join(sorted(taken))})")
        if treatment_by is not None:
            if treatment_level is None:
                raise ValueError("treatment_by needs a treatment_level")
            if treatment_by not in pilot.covariates or np.asarray(pilot.rows[treatment_by]).dtype.kind not in "iuf":
                raise ValueError(f"treatment_by must be a numeric covariate of the pilot model "
                                 f"({', '.join(pilot.covariates)}), got {treatment_by!r}")
        if effect_of is not None and (treatment_level is not None or effect_of not in pilot.fixed):
            raise ValueError(f"effect_of must be a fixed effect of the pilot ({', '.join(pilot.fixed)}) and goes "
                             f"without a treatment, got {effect_of!r}")
        self.pilot = pilot
        self.resample, self.random_effects, self.keep_pilot = resample, random_effects, keep
        self.treatment_level, self.treatment, self.treatment_by = treatment_level, treatment, treatment_by
        self.effect_of = effect_of
        self.fixed = _override("fixed", pilot.fixed, fixed)
        self.variances = _override("variances", pilot.variances, variances)
        self._setup()

    def _setup(self) -> None:
        P, v = self.pilot, self.variances
        for name, value in v.items():
            if not name.startswith("cov("):
                (check_positive if name == "var(residual)" else check_nonnegative)(name, value)
        X, names = P.design_matrix()
        self._X, self._names = X, names
        self._eta = X @ np.array([self.fixed[n] for n in names])
        self._top_start = np.r_[0, np.cumsum(P.cluster_sizes())].astype(np.int64)
        if P.nested:
            first = np.flatnonzero(np.r_[True, P.inner[1:] != P.inner[:-1]])
            self._inner_start = np.r_[first, P.n_rows].astype(np.int64)
            self._cluster_inner_start = np.r_[0, np.cumsum(P.inner_per_cluster())].astype(np.int64)
        g = P.groups[0]
        if P.slope is not None:
            a, b, c = v[f"var({g})"], v[f"var({g}:{P.slope})"], v[f"cov({g}:{P.slope})"]
            S = np.array([[a, c], [c, b]])
            if np.linalg.eigvalsh(S)[0] < -1e-12 * max(a, b, 1e-300):
                raise ValueError(f"variances: var({g}), var({g}:{P.slope}), cov({g}:{P.slope}) do not form a "
                                 "covariance matrix (need cov^2 <= var * var)")
            self._L = psd_factor(S)
            self._xs = np.asarray(P.rows[P.slope], float)
        #: the pilot's predicted random effects (``random_effects="pilot"``), public so that fingerprints cover them
        self.pilot_effects = P.random_effects() if self.random_effects == "pilot" else None

    @property
    def effect_term(self) -> str | None:
        """The estimand the factor ``effect`` sets: the treatment's, ``effect_of``, or None."""
        if self.treatment_level is not None:
            return f"{self.treatment}:{self.treatment_by}" if self.treatment_by else self.treatment
        return self.effect_of

    @property
    def formula(self) -> str:
        """The analysis formula: the pilot's fixed effects plus the treatment terms."""
        extra = ""
        if self.treatment_level is not None:
            extra = f" + {self.treatment}" + (f" + {self.treatment}:{self.treatment_by}" if self.treatment_by else "")
        return self.pilot.formula + extra

    def __repr__(self) -> str:
        opts = [f"resample={self.resample!r}", f"random_effects={self.random_effects!r}"]
        if self.keep_pilot:
            opts.append("keep_pilot=True")
        if self.treatment_level is not None:
            opts.append(f"treatment_level={self.treatment_level!r}")
        if self.effect_of:
            opts.append(f"effect_of={self.effect_of!r}")
        return f"PilotModel({self.pilot!r}, {', '.join(opts)})"

    # ------------------------------------------------------------------ the contract
    def generate(self, rng: np.random.Generator, **factors: Any) -> dict[str, np.ndarray]:
        """Draw one data set (see the class docstring for the steps; call :meth:`validate` first)."""
        f = self.factors(**factors)
        P = self.pilot
        n = P.n_clusters if f.n_clusters is None else int(f.n_clusters)
        src, kept = self._clusters(rng, n)
        m = None if f.cluster_size is None else int(f.cluster_size)
        if P.nested:
            inner_sel, inner_cluster, inner_extra = _select(rng, self._cluster_inner_start, src, m)
            sub = None if f.subcluster_size is None else int(f.subcluster_size)
            rows, inner_of_row, _ = _select(rng, self._inner_start, inner_sel, sub)
            cluster_of_row = inner_cluster[inner_of_row]
        else:
            rows, cluster_of_row, _ = _select(rng, self._top_start, src, m)
        if self.resample == "units":
            new = ~kept[cluster_of_row]
            rows[new] = rng.integers(0, P.n_rows, int(new.sum()))
        N = rows.size
        g = P.groups[0]
        v = self.variances
        y = self._eta[rows]
        if self.effect_of is not None and f.effect is not None:
            y = y + (float(f.effect) - self.fixed[self.effect_of]) * self._X[rows, self._names.index(self.effect_of)]
        blups = self.pilot_effects
        if P.slope is not None:
            b = rng.standard_normal((n, 2)) @ self._L.T
            if blups is not None:
                b[kept] = blups[g][src[kept]]
            y = y + b[cluster_of_row, 0] + b[cluster_of_row, 1] * self._xs[rows]
        else:
            u = rng.normal(0.0, math.sqrt(v[f"var({g})"]), n)
            if blups is not None:
                u[kept] = blups[g][src[kept]]
            y = y + u[cluster_of_row]
        out: dict[str, np.ndarray] = {}
        if P.nested:
            h = P.groups[1]
            w = rng.normal(0.0, math.sqrt(v[f"var({h})"]), inner_sel.size)
            if blups is not None:
                own = kept[inner_cluster] & ~inner_extra
                w[own] = blups[h][inner_sel[own]]
            y += w[inner_of_row]
            out[h] = inner_of_row
        if self.treatment_level is not None:
            if self.treatment_level == g:
                arm_of_row, K = cluster_of_row, n
            elif self.treatment_level == UNIT:
                arm_of_row, K = np.arange(N), N
            else:
                arm_of_row, K = inner_of_row, inner_sel.size
            arm = np.zeros(K, np.int64)
            arm[rng.permutation(K)[:n_treated(float(f.p_treated), K)]] = 1
            treat = arm[arm_of_row]
            effect = 0.0 if f.effect is None else float(f.effect)
            by = 1.0 if self.treatment_by is None else np.asarray(P.rows[self.treatment_by], float)[rows]
            y += effect * treat * by
            out[self.treatment] = treat
        y += rng.normal(0.0, math.sqrt(v["var(residual)"]), N)
        data = {P.response: y}
        data.update({c: P.rows[c][rows] for c in P.covariates})
        data[g] = cluster_of_row
        data.update(out)
        return data

    def truth(self, **factors: Any) -> dict[str, float]:
        """True values of every estimand (see the class docstring), by parameter name."""
        f = self.factors(**factors)
        out = dict(self.fixed)
        if self.effect_of is not None and f.effect is not None:
            out[self.effect_of] = float(f.effect)
        if self.treatment_level is not None:
            effect = 0.0 if f.effect is None else float(f.effect)
            out[self.treatment] = 0.0 if self.treatment_by else effect
            if self.treatment_by:
                out[f"{self.treatment}:{self.treatment_by}"] = effect
        out.update(self.variances)
        return out

    def validate(self, **factors: Any) -> None:
        """Raise ``ValueError`` naming the first factor whose value is not allowed."""
        self.factors(**factors).check(self)

    # ------------------------------------------------------------------ steps
    def _clusters(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The pilot cluster each new cluster copies, and whether it is the pilot's own (``keep_pilot``)."""
        C = self.pilot.n_clusters
        if not self.keep_pilot:
            return rng.integers(0, C, n), np.zeros(n, bool)
        if n <= C:
            src = np.arange(C) if n == C else np.sort(rng.choice(C, n, replace=False))
            return src, np.ones(n, bool)
        return np.r_[np.arange(C), rng.integers(0, C, n - C)], np.r_[np.ones(C, bool), np.zeros(n - C, bool)]


def n_treated(p: float, K: int) -> int:
    """Units treated of ``K``: ``floor(p K)``, at least 1 and at most ``K - 1`` when ``K >= 2``."""
    k = math.floor(p * K + 1e-9)
    return min(max(k, 1), K - 1) if K >= 2 else k


def _override(what: str, base: Mapping[str, float], new: Mapping[str, float] | None) -> dict[str, float]:
    out = dict(base)
    for name, value in (new or {}).items():
        if name not in base:
            raise ValueError(f"{what}: {name!r} is not a parameter of the pilot model ({', '.join(base)})")
        out[name] = check_real(f"{what}[{name!r}]", value)
    return out


def _select(rng: np.random.Generator, starts: np.ndarray, parents: np.ndarray,
            m: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The members of each parent (members of parent ``p``: ``starts[p]:starts[p + 1]``), ``m`` of each.

    ``m`` None: all of them. Otherwise a parent with at least ``m`` members gives a random ``m`` of them
    (without replacement, in their order); one with fewer gives all of them followed by the rest drawn with
    replacement from them. Returns the members, the position in ``parents`` each belongs to, and whether it
    is such an extra copy.
    """
    lo = starts[parents]
    size = starts[parents + 1] - lo
    owner = np.repeat(np.arange(parents.size), size)
    offset = np.repeat(np.cumsum(size) - size, size)
    child = np.arange(owner.size) - offset + lo[owner]
    if m is None or bool(np.all(size == m)):
        return child, owner, np.zeros(child.size, bool)
    keep_n = np.minimum(size, m)
    order = np.lexsort((rng.random(child.size), owner))
    picked = np.sort(order[np.arange(child.size) - offset < keep_n[owner]])
    extra_owner = np.repeat(np.arange(parents.size), m - keep_n)
    extra_child = lo[extra_owner] + rng.integers(0, size[extra_owner]) if extra_owner.size else extra_owner
    all_owner = np.r_[owner[picked], extra_owner]
    o = np.argsort(all_owner, kind="stable")
    flags = np.r_[np.zeros(picked.size, bool), np.ones(extra_owner.size, bool)]
    return np.r_[child[picked], extra_child][o], all_owner[o], flags[o]
