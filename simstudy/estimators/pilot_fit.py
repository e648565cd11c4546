"""Pilot data: read a CSV or Parquet file, fit a linear mixed model to it, keep what a simulation needs.

:func:`fit_pilot` fits the model with the fast engine (:class:`~simstudy.estimators.fast_mixedlm.FastMixedLM`:
a random intercept, two nested random intercepts, or a random intercept and slope) and returns a
:class:`PilotFit`: the fitted fixed effects and variance components (named as the estimators name them), the
grouping structure (clusters, their sizes, the nesting) and the rows of covariates, which
:class:`simstudy.dgp.PilotModel` resamples. :func:`load_pilot` reads the same file and attaches parameter
values given as numbers (a study file written by ``simstudy pilot`` does this) without refitting.

Results do not depend on the file's row order: rows with a missing value in a column the model reads are
dropped (as lme4's ``na.omit``), then the rows are sorted by the grouping columns and every other column the
model reads before anything is computed, so a shuffled file gives bit-identical fits, structure and
simulations. Every problem with a file or a formula is one ``ValueError`` line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simstudy.estimators.fast_mixedlm import FastMixedLM
from simstudy.estimators.formula import NESTED_IDS, Formula, nest_codes


def read_pilot(path: str | Path) -> pd.DataFrame:
    """Read a pilot data set from a CSV (``.csv``, ``.txt``, ``.tsv``) or Parquet (``.parquet``, ``.pq``) file.

    Raises
    ------
    ValueError
        One line, if the file does not exist or cannot be read.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"pilot file {str(p)!r} does not exist")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
        return pd.read_csv(p, sep="\t" if p.suffix.lower() == ".tsv" else ",")
    except Exception as exc:  # pandas and pyarrow raise many kinds; the user needs one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot read pilot file {str(p)!r}: {text}") from None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class PilotFit:
    """A linear mixed model fitted to pilot data, with the data's structure and covariates.

    Built by :func:`fit_pilot` (fitted) or :func:`load_pilot` (values given); every attribute is a plain
    value or array, so the object pickles and its description (:func:`simstudy.engine.fingerprint.describe`)
    covers every number.

    Attributes
    ----------
    formula : str
        The fixed effects, e.g. ``"Weight ~ Time"``.
    groups : tuple of str
        The grouping columns from the top down (one, or two nested).
    slope : str or None
        The random-slope column (one grouping column only).
    nested_ids : str
        How the file's inner ids were read (``"unique"`` or ``"within"``; the codes here are always unique).
    reml : bool
        REML (True) or ML.
    fixed : dict of str to float
        Fixed effects by the formula's column names (``Intercept``, ``x``, ``C(g)[T.b]``).
    fixed_se : dict of str to float
        Their standard errors (NaN when the values were given, not fitted).
    variances : dict of str to float
        ``var(<group>)`` per grouping column and ``var(residual)``; with a slope ``var(g)``, ``var(g:x)``,
        ``cov(g:x)``, ``var(residual)``.
    rows : dict of str to numpy.ndarray
        The response and every covariate column the model reads, sorted (see the module docstring).
    top : numpy.ndarray of int
        Code 0..C-1 of each row's top-level cluster (sorted labels; rows sorted by it).
    inner : numpy.ndarray of int or None
        Code 0..R-1 of each row's inner group (nested models), numbered in order within clusters.
    labels : dict of str to numpy.ndarray
        The original labels of the clusters (and inner groups), by grouping column, in code order.
    status, message : str
        The fit's status (``ok``, ``boundary``; ``given`` for values from :func:`load_pilot`) and message.
    source : dict
        Provenance: ``file`` (name), ``file_sha256``, ``data_sha256`` (of the sorted rows the model uses:
        the same for any row order), ``rows`` (in the file), ``rows_used``, ``criterion`` (-2 log-likelihood).
    """

    def __init__(self, *, formula: str, groups: tuple[str, ...], slope: str | None, nested_ids: str, reml: bool,
                 fixed: dict[str, float], fixed_se: dict[str, float], variances: dict[str, float],
                 rows: dict[str, np.ndarray], top: np.ndarray, inner: np.ndarray | None,
                 labels: dict[str, np.ndarray], status: str, message: str, source: dict[str, Any]) -> None:
        self.formula, self.groups, self.slope, self.reml = formula, groups, slope, reml
        self.nested_ids = nested_ids
        self.fixed, self.fixed_se, self.variances = fixed, fixed_se, variances
        self.rows, self.top, self.inner, self.labels = rows, top, inner, labels
        self.status, self.message, self.source = status, message, source

    def __repr__(self) -> str:
        return (f"PilotFit({self.formula!r}, groups={list(self.groups)!r}"
                + (f", slope={self.slope!r}" if self.slope else "")
                + f": {self.n_clusters} clusters, {self.n_rows} rows, {self.status})")

    @property
    def response(self) -> str:
        """The response column."""
        return Formula(self.formula).response

    @property
    def n_rows(self) -> int:
        """Rows the model uses."""
        return int(self.top.shape[0])

    @property
    def n_clusters(self) -> int:
        """Number of top-level clusters."""
        return int(self.top[-1]) + 1

    @property
    def nested(self) -> bool:
        """Two nested grouping levels."""
        return self.inner is not None

    @property
    def covariates(self) -> tuple[str, ...]:
        """The columns of :attr:`rows` other than the response."""
        return tuple(c for c in self.rows if c != self.response)

    def cluster_sizes(self) -> np.ndarray:
        """Rows per top-level cluster."""
        return np.bincount(self.top)

    def inner_sizes(self) -> np.ndarray:
        """Rows per inner group (nested models)."""
        if self.inner is None:
            raise ValueError("the pilot model has one grouping level")
        return np.bincount(self.inner)

    def inner_per_cluster(self) -> np.ndarray:
        """Inner groups per top-level cluster (nested models)."""
        inner = self.inner if self.inner is not None else self.top
        first = np.flatnonzero(np.r_[True, inner[1:] != inner[:-1]])
        return np.bincount(self.top[first], minlength=self.n_clusters)

    def design_matrix(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """The fixed-effect design matrix of the pilot's rows and its column names."""
        _, X, names = Formula(self.formula).build(self.rows)
        return X, names

    def random_effects(self) -> dict[str, np.ndarray]:
        """The predicted random effects (BLUPs, lme4's ``ranef``) given the fixed effects and variances.

        Returns ``{top: (C,) array}``, with ``{inner: (R,) array}`` added for nested models; with a random
        slope ``{top: (C, 2) array}`` (intercept, slope), all in code order. For each cluster ``c``,
        ``b_c = L (L' Z'Z L + s2 I)^-1 L' Z' r`` with ``r`` the residuals from the fixed effects, ``Z`` the
        cluster's random-effect columns and ``L L'`` their covariance (singular covariances included).
        """
        X, names = self.design_matrix()
        r = self.rows[self.response] - X @ np.array([self.fixed[n] for n in names])
        s2 = self.variances["var(residual)"]
        g = self.groups[0]
        C = self.n_clusters
        starts = np.r_[0, np.cumsum(self.cluster_sizes())]
        if self.slope is not None:
            v = self.variances
            L = psd_factor(np.array([[v[f"var({g})"], v[f"cov({g}:{self.slope})"]],
                                     [v[f"cov({g}:{self.slope})"], v[f"var({g}:{self.slope})"]]]))
            out = np.zeros((C, 2))
            xs = np.asarray(self.rows[self.slope], float)
            for c in range(C):
                sl = slice(starts[c], starts[c + 1])
                Z = np.column_stack([np.ones(sl.stop - sl.start), xs[sl]])
                out[c] = _conditional_mode(Z, L, r[sl], s2)
            return {g: out}
        if self.inner is None:
            n = self.cluster_sizes().astype(float)
            var = self.variances[f"var({g})"]
            means = np.bincount(self.top, weights=r) / n
            return {g: var / (var + s2 / n) * means if var > 0 else np.zeros(C)}
        inner_name = self.groups[1]
        sd = np.sqrt([self.variances[f"var({g})"], self.variances[f"var({inner_name})"]])
        top_out, inner_out = np.zeros(C), np.zeros(int(self.inner[-1]) + 1)
        for c in range(C):
            sl = slice(starts[c], starts[c + 1])
            codes = self.inner[sl]
            first = codes[0]
            Z = np.zeros((codes.size, 1 + int(codes[-1]) - first + 1))
            Z[:, 0] = 1.0
            Z[np.arange(codes.size), 1 + codes - first] = 1.0
            L = np.diag(np.r_[sd[0], np.full(Z.shape[1] - 1, sd[1])])
            b = _conditional_mode(Z, L, r[sl], s2)
            top_out[c], inner_out[first:codes[-1] + 1] = b[0], b[1:]
        return {g: top_out, inner_name: inner_out}

    def summary(self) -> str:
        """A few lines for people: the data, the model, the structure, the fitted values."""
        g = self.groups
        src = self.source
        lines = [f"pilot: {src.get('file') or 'data'} ({src['rows']} rows, {src['rows_used']} used"
                 + (f"; sha256 {src['file_sha256'][:12]}" if src.get("file_sha256") else "") + ")"]
        re = (f"random intercept and slope of {self.slope} by {g[0]}" if self.slope else
              f"random intercepts for {g[0]}" + (f" and {g[1]} within {g[0]}" if self.nested else ""))
        lines.append(f"model: {self.formula}, {re} ({'REML' if self.reml else 'ML'}): {self.status}"
                     + (f" ({self.message})" if self.message else ""))
        sizes = self.inner_per_cluster() if self.nested else self.cluster_sizes()
        per = g[1] if self.nested else "rows"
        lines.append(f"structure: {self.n_clusters} {g[0]}, {per} per {g[0]} {_range(sizes)}")
        if self.nested:
            lines.append(f"           {sizes.sum()} {g[1]}, rows per {g[1]} {_range(self.inner_sizes())}")
        fx = ", ".join(f"{k} {v:.4g}" + (f" (SE {self.fixed_se[k]:.2g})" if np.isfinite(self.fixed_se[k]) else "")
                       for k, v in self.fixed.items())
        lines.append(f"fixed effects: {fx}")
        lines.append("variance components: " + ", ".join(f"{k} {v:.4g}" for k, v in self.variances.items()))
        return "\n".join(lines)


def psd_factor(S: np.ndarray) -> np.ndarray:
    """A matrix ``L`` with ``L @ L.T == S`` for a symmetric positive semi-definite ``S`` (Cholesky where it
    exists, else from the eigen decomposition, negative rounding errors set to 0)."""
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(S)
        return V * np.sqrt(np.clip(w, 0.0, None))


def _conditional_mode(Z: np.ndarray, L: np.ndarray, r: np.ndarray, s2: float) -> np.ndarray:
    ZL = Z @ L
    return L @ np.linalg.solve(ZL.T @ ZL + s2 * np.eye(L.shape[1]), ZL.T @ r)


def _range(sizes: np.ndarray) -> str:
    lo, hi = int(sizes.min()), int(sizes.max())
    return f"{lo}" if lo == hi else f"{lo}-{hi} (mean {sizes.mean():.4g})"


def _prepare(data: pd.DataFrame | Mapping[str, Any], formula: str, groups: Sequence[str], slope: str | None,
             nested_ids: str) -> tuple[Formula, dict[str, np.ndarray], np.ndarray, np.ndarray | None,
                                       dict[str, np.ndarray], dict[str, Any]]:
    """Check and sort the pilot's rows; return the parsed formula, the rows, the codes and provenance."""
    f = Formula(formula)
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame({k: np.asarray(v) for k, v in data.items()})
    groups = tuple(groups)
    if not 1 <= len(groups) <= 2 or not all(isinstance(g, str) and g for g in groups) or len(set(groups)) < len(groups):
        raise ValueError(f"groups must be one grouping column or two nested ones (outer, inner), got {list(groups)!r}")
    if slope is not None and len(groups) != 1:
        raise ValueError("a random slope needs one grouping column (lme4's (1 + x | g))")
    if nested_ids not in NESTED_IDS:
        raise ValueError(f"nested_ids must be one of {', '.join(NESTED_IDS)}, got {nested_ids!r}")
    model_cols = list(dict.fromkeys([*f.columns, *([slope] if slope else [])]))
    for col in [*model_cols, *groups]:
        if col not in frame.columns:
            shown = ", ".join(map(str, list(frame.columns)[:12])) + (", ..." if frame.shape[1] > 12 else "")
            raise ValueError(f"the pilot data have no column {col!r} (columns: {shown})")
    clash = [g for g in groups if g in model_cols]
    if clash:
        raise ValueError(f"grouping column {clash[0]!r} is also in the formula or the slope: a column is either "
                         "a grouping level or a covariate")
    categorical = {fac.column for term in f.terms for fac in term if fac.categorical}
    frame = frame[[*groups, *model_cols]]
    n_file = int(frame.shape[0])
    frame = frame.dropna()
    if frame.shape[0] == 0:
        raise ValueError(f"the pilot data have no complete rows in the columns the model reads "
                         f"({', '.join(model_cols)})")
    for col in model_cols:
        if col in categorical and col != f.response:
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            what = "response" if col == f.response else "column"
            example = frame[col].iloc[int(np.argmax(bad))] if bad.any() else frame[col].iloc[0]
            hint = "" if col == f.response else " (write C(" + col + ") for a categorical column)"
            raise ValueError(f"{what} {col!r} must be numeric, got {example!r}{hint}")
        frame = frame.assign(**{col: values.astype(float)})
    for col in [*groups, *categorical]:  # labels: numbers stay numbers, anything else becomes text
        if frame[col].dtype.kind not in "iub":
            frame = frame.assign(**{col: frame[col].astype(str)})
    arrays = {c: frame[c].to_numpy() for c in frame.columns}
    arrays = {c: a.astype(str) if a.dtype == object else a for c, a in arrays.items()}
    top_labels, top = np.unique(arrays[groups[0]], return_inverse=True)
    top = top.astype(np.int64).reshape(-1)
    if top_labels.size < 2:
        raise ValueError(f"the pilot has {top_labels.size} {groups[0]!r} group: at least 2 are needed to estimate "
                         f"var({groups[0]}) (more for a useful estimate)")
    inner = None
    if len(groups) == 2:
        codes, _, problem = nest_codes(top, arrays[groups[1]], groups, nested_ids)
        if problem:
            raise ValueError(f"the pilot's grouping: {problem}")
        inner = codes.astype(np.int64).reshape(-1)
    # the order: clusters, inner groups, then every column the model reads (rows equal in all of them are
    # interchangeable), so any order of the file's rows gives the same arrays
    keys = [arrays[c] for c in reversed(model_cols)] + ([inner] if inner is not None else []) + [top]
    order = np.lexsort(keys)
    arrays = {c: a[order] for c, a in arrays.items()}
    top = top[order]
    labels = {groups[0]: top_labels}
    if inner is not None:
        inner = inner[order]
        first = np.flatnonzero(np.r_[True, inner[1:] != inner[:-1]])
        labels[groups[1]] = arrays[groups[1]][first]
    rows = {c: arrays[c] for c in model_cols}
    h = hashlib.sha256()
    for c in [*groups, *model_cols]:
        h.update(c.encode() + b"\0" + np.ascontiguousarray(arrays[c]).tobytes())
    source = {"rows": n_file, "rows_used": int(top.size), "data_sha256": h.hexdigest()}
    return f, rows, top, inner, labels, source


def fit_pilot(data: str | Path | pd.DataFrame | Mapping[str, Any], formula: str, groups: str | Sequence[str], *,
              slope: str | None = None, nested_ids: str = "unique", reml: bool = True) -> PilotFit:
    """Fit a linear mixed model to pilot data with the fast engine and keep what a simulation needs.

    Parameters
    ----------
    data : path, DataFrame or mapping of column to array
        A CSV or Parquet file (see :func:`read_pilot`) or the data themselves.
    formula : str
        Fixed effects (:class:`~simstudy.estimators.formula.Formula`), e.g. ``"Weight ~ Time"``.
    groups : str or sequence of two str
        Grouping column, or nested columns from the top down (``["Litter", "Pig"]``).
    slope : str, optional
        A random slope for this numeric column, correlated with the intercept (one grouping column).
    nested_ids : {"unique", "within"}
        How inner ids are read (see :class:`~simstudy.estimators.fast_mixedlm.FastMixedLM`).
    reml : bool
        REML (default) or ML.

    Returns
    -------
    PilotFit

    Raises
    ------
    ValueError
        One line: an unreadable file, a missing column, a non-numeric response or covariate, fewer than two
        clusters, a grouping that cannot be fitted, a fit that failed or did not converge, a fixed effect
        that is not estimable.
    """
    source: dict[str, Any] = {}
    if isinstance(data, (str, Path)):
        source = {"file": Path(data).name, "file_sha256": None}
        frame = read_pilot(data)
        source["file_sha256"] = file_sha256(data)
    else:
        frame = data
    groups = (groups,) if isinstance(groups, str) else tuple(groups)
    f, rows, top, inner, labels, prov = _prepare(frame, formula, groups, slope, nested_ids)
    source.update(prov)
    fit_data = dict(rows)
    fit_data[groups[0]] = top
    if inner is not None:
        fit_data[groups[1]] = inner
    est = FastMixedLM(formula, groups=list(groups), reml=reml, slope=slope)
    try:
        fit, info = est.fit_with_info(fit_data)
    except Exception as exc:  # noqa: BLE001 - the engine's failures become one line
        raise ValueError(f"cannot fit the pilot: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if fit.status == "failed":
        raise ValueError(f"cannot fit the pilot: {fit.message}".splitlines()[0])
    if fit.status == "nonconverged":
        raise ValueError(f"the pilot fit did not converge: {fit.message}".splitlines()[0])
    _, _, names = f.build(rows)
    values = dict(zip(fit.params, (float(v) for v in fit.estimate)))
    ses = dict(zip(fit.params, (float(v) for v in fit.se)))
    missing = [n for n in names if not np.isfinite(values[n])]
    if missing:
        raise ValueError(f"the pilot cannot estimate {', '.join(missing)} (linearly dependent on other columns, "
                         "or a level without data): drop it from the formula")
    source["criterion"] = float(info["crit"])
    return PilotFit(formula=formula, groups=groups, slope=slope, nested_ids=nested_ids, reml=bool(reml),
                    fixed={n: values[n] for n in names}, fixed_se={n: ses[n] for n in names},
                    variances={p: values[p] for p in fit.params[len(names):]}, rows=rows, top=top, inner=inner,
                    labels=labels, status=fit.status, message=fit.message, source=source)


def variance_names(groups: Sequence[str], slope: str | None = None) -> tuple[str, ...]:
    """The variance-component names of a model, as the estimators report them."""
    if slope is not None:
        g = groups[0]
        return (f"var({g})", f"var({g}:{slope})", f"cov({g}:{slope})", "var(residual)")
    return tuple(f"var({g})" for g in groups) + ("var(residual)",)


def load_pilot(path: str | Path, formula: str, groups: str | Sequence[str], *, fixed: Mapping[str, float],
               variances: Mapping[str, float], slope: str | None = None, nested_ids: str = "unique",
               data_sha256: str | None = None, reml: bool = True) -> PilotFit:
    """Read a pilot file and attach parameter values given as numbers, without fitting.

    What a study file written by ``simstudy pilot`` calls: the covariates and the structure come from the
    file, the parameter values from the study file (where they can be edited). ``data_sha256`` (the
    ``source["data_sha256"]`` of the fit that wrote them) guards against a changed file.

    Raises
    ------
    ValueError
        One line: as :func:`fit_pilot` reading the file, a changed file, or values that do not name the
        model's parameters.
    """
    groups = (groups,) if isinstance(groups, str) else tuple(groups)
    frame = read_pilot(path)
    f, rows, top, inner, labels, prov = _prepare(frame, formula, groups, slope, nested_ids)
    if data_sha256 is not None and prov["data_sha256"] != data_sha256:
        raise ValueError(f"pilot file {str(path)!r} is not the data the values were fitted to (data sha256 "
                         f"{prov['data_sha256'][:12]}, expected {data_sha256[:12]}); rerun simstudy pilot")
    _, _, names = f.build(rows)
    for what, given, expected in (("fixed", fixed, names), ("variances", variances, variance_names(groups, slope))):
        if set(given) != set(expected):
            raise ValueError(f"{what} must give exactly {', '.join(expected)}; got {', '.join(given)}")
    source = {"file": Path(path).name, "file_sha256": file_sha256(path), **prov}
    return PilotFit(formula=formula, groups=groups, slope=slope, nested_ids=nested_ids, reml=bool(reml),
                    fixed={n: float(fixed[n]) for n in names}, fixed_se={n: float("nan") for n in names},
                    variances={n: float(variances[n]) for n in variance_names(groups, slope)}, rows=rows, top=top,
                    inner=inner, labels=labels, status="given", message="", source=source)
