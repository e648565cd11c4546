"""Performance measures for a table of estimates made elsewhere (what rsimsum is mostly used for).

:func:`summarize_table` turns a long table (one row per replicate, estimator and parameter) into the
replicate-level Dataset that :func:`simstudy.stats.measures.summarize` reduces, after checking it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from simstudy.stats.measures import summarize

TrueSpec = float | str | Mapping[Hashable, float]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file of estimates; ``ValueError`` with one clear line if it cannot."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"table {str(p)!r} does not exist")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
        return pd.read_csv(p)
    except Exception as exc:  # pandas raises many kinds; the user needs one line
        raise ValueError(f"cannot read table {str(p)!r}: {exc}".splitlines()[0]) from None


def _numeric(table: pd.DataFrame, column: str) -> np.ndarray:
    col = table[column]
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna() & col.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"column {column!r} must be numeric; row {row + 1} has {col.iloc[row]!r}")
    return values.to_numpy(dtype=float)


def to_estimates(
    table: pd.DataFrame,
    /,
    *,
    estimate: str,
    se: str,
    true: TrueSpec,
    estimator: str | None = None,
    param: str | None = None,
    by: Sequence[str] = (),
    rep: str | None = None,
    df: str | None = None,
    ci: tuple[str, str] | None = None,
    method: str | None = None,
) -> xr.Dataset:
    """Check a long table of estimates and reshape it to a replicate-level Dataset.

    Dimensions: the ``by`` columns, ``estimator``, ``param`` and ``rep``. ``estimator`` names the column of
    methods (``method`` is accepted for it, as rsimsum's ``methodvar``). Raises ``ValueError`` with one
    clear line for a missing or non-numeric column, a negative standard error, an estimator or parameter
    with no estimate at all, duplicate replicate ids, or a table with a single replicate per estimator.
    """
    estimator = _estimator_column(estimator, method)
    if not isinstance(table, pd.DataFrame):
        raise ValueError("the table must be a pandas DataFrame")
    by = [by] if isinstance(by, str) else list(by)
    needed = [estimate, se, *by]
    for opt in (estimator, param, rep, df):
        if opt is not None:
            needed.append(opt)
    if ci is not None:
        needed.extend(ci)
    if isinstance(true, str):
        needed.append(true)
    for column in needed:
        if column not in table.columns:
            raise ValueError(f"column {column!r} is not in the table (columns: {', '.join(map(str, table.columns))})")
    if len(table) == 0:
        raise ValueError("the table has no rows")

    frame = pd.DataFrame({c: table[c] for c in by})
    frame["estimator"] = table[estimator].astype(str) if estimator else estimate
    frame["param"] = table[param].astype(str) if param else estimate
    keys = [*by, "estimator", "param"]
    frame["estimate"] = _numeric(table, estimate)
    frame["se"] = _numeric(table, se)
    negative = np.flatnonzero(frame["se"].to_numpy() < 0)
    if negative.size:
        raise ValueError(f"column {se!r} has negative standard errors (row {negative[0] + 1}: "
                         f"{float(frame['se'].iloc[negative[0]]):g}); a standard error is never negative")
    frame["true"] = _truth(table, frame, true)
    if df is not None:
        frame["df"] = _numeric(table, df)
    if ci is not None:
        frame["ci_lower"] = _numeric(table, ci[0])
        frame["ci_upper"] = _numeric(table, ci[1])
    frame["present"] = True

    if rep is None:
        frame["rep"] = frame.groupby(keys, sort=False).cumcount() + 1
    else:
        frame["rep"] = table[rep].to_numpy()
        dup = frame.duplicated([*keys, "rep"])
        if dup.any():
            row = frame[dup].iloc[0]
            where = ", ".join(f"{k}={row[k]}" for k in keys)
            raise ValueError(f"replicate id {row['rep']} appears more than once for {where}")

    for (m, p), g in frame.groupby(["estimator", "param"], sort=False):
        if g["estimate"].isna().all():
            raise ValueError(f"estimator {m!r} has no non-missing estimate for parameter {p!r}")
    if frame.groupby(keys, sort=False).size().max() < 2:
        raise ValueError("the table has a single replicate per estimator: measures need at least 2")

    ds = frame.set_index([*keys, "rep"]).to_xarray()
    ds["present"] = ds["present"].fillna(False).astype(bool)
    ds["true"] = ds["true"].mean("rep")  # constant within a group (checked in _truth)
    return ds


def _estimator_column(estimator: str | None, method: str | None) -> str | None:
    if estimator is not None and method is not None and estimator != method:
        raise ValueError("give the column of estimators once: estimator= (or its alias method=)")
    return estimator if estimator is not None else method


def _truth(table: pd.DataFrame, frame: pd.DataFrame, true: TrueSpec) -> np.ndarray:
    """True values per row from a number, a column name, or a mapping of parameter to value."""
    if isinstance(true, Mapping):
        params = frame["param"]
        missing = sorted(set(params) - {str(k) for k in true})
        if missing:
            raise ValueError(f"no true value given for parameter {missing[0]!r}")
        lookup = {str(k): float(v) for k, v in true.items()}
        values = params.map(lookup).to_numpy(dtype=float)
    elif isinstance(true, str):
        values = _numeric(table, true)
        if np.isnan(values).any():
            raise ValueError(f"true-value column {true!r} has missing values")
    else:
        try:
            values = np.full(len(table), float(true))
        except (TypeError, ValueError):
            raise ValueError(f"true must be a number, a column name or a mapping; got {true!r}") from None
    keys = [c for c in frame.columns if c not in ("estimate", "se")]
    spread = pd.Series(values).groupby([frame[k] for k in keys], sort=False).nunique()
    if (spread > 1).any():
        raise ValueError("the true value varies within an estimator and parameter; give it per parameter")
    return values


def summarize_table(
    table: pd.DataFrame,
    /,
    *,
    estimate: str,
    se: str,
    true: TrueSpec,
    estimator: str | None = None,
    param: str | None = None,
    by: Sequence[str] = (),
    ref: str | None = None,
    rep: str | None = None,
    df: str | None = None,
    ci: tuple[str, str] | None = None,
    level: float = 0.95,
    null: float = 0.0,
    method: str | None = None,
) -> xr.Dataset:
    """Performance measures with MCSE for a long table of estimates, as rsimsum's ``simsum``.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per replicate, estimator (and parameter, and design cell).
    estimate, se : str
        Columns of the point estimates and their standard errors (negative SEs are refused).
    true : float, str or mapping
        The true value: a number, a column name, or a mapping of parameter to value.
    estimator, param : str, optional
        Columns naming the estimator (the method compared; ``method=`` is an alias, as rsimsum's
        ``methodvar``) and the parameter.
    by : sequence of str
        Columns of the design factors; measures are computed within each combination.
    ref : str, optional
        Reference estimator for relative precision.
    rep : str, optional
        Column of replicate ids; estimators are paired by it for relative precision. Without it,
        replicates are numbered in table order within each group.
    df : str, optional
        Column of per-replicate degrees of freedom: t intervals instead of z. ``inf`` means a z interval;
        a missing df means the replicate has no interval (it is left out of coverage and power, and the
        summary's ``note`` says how many), never a z interval.
    ci : (str, str), optional
        Columns of the interval limits: coverage and power from them instead of ``estimate +- crit se``.
    level : float
        Confidence level (default 0.95).
    null : float
        Null value for power.

    Returns
    -------
    xarray.Dataset
        As :func:`simstudy.stats.measures.summarize`: dims ``by...``, ``estimator``, ``param``.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"b": [0.4, 0.6, 0.5, 0.7], "se": [0.1] * 4, "m": ["A", "A", "B", "B"]})
    >>> s = summarize_table(t, estimate="b", se="se", true=0.5, estimator="m")
    >>> s["bias"].sel(estimator="B", param="b").values.round(3).tolist()
    0.1
    """
    estimates = to_estimates(
        table, estimate=estimate, se=se, true=true, estimator=_estimator_column(estimator, method), param=param,
        by=by, rep=rep, df=df, ci=ci,
    )
    if ref is not None and ref not in estimates.coords["estimator"].values:
        raise ValueError(f"reference estimator {ref!r} is not among the estimators "
                         f"({', '.join(map(str, estimates.coords['estimator'].values))})")
    return summarize(estimates, level=level, ref=ref, null=null, use_limits=ci is not None)
