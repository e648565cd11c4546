"""``MixedLM``: one name for the linear mixed model, two engines.

- ``engine="fast"``: :class:`simstudy.estimators.fast_mixedlm.FastMixedLM`, exact profiled REML/ML on
  per-group sufficient statistics (random intercept, two nested random intercepts, or a random intercept
  and slope), batched over the replicates of a chunk; matches lme4.
- ``engine="statsmodels"``: :class:`simstudy.estimators.mixedlm.StatsmodelsMixedLM`, statsmodels'
  ``MixedLM`` with guards against its pitfalls; any depth of nesting.
- ``engine="auto"`` (default): ``fast`` wherever it supports the model, else ``statsmodels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simstudy.estimators.fast_mixedlm import FastMixedLM

if TYPE_CHECKING:  # statsmodels is imported only when its engine is chosen
    from simstudy.estimators.mixedlm import StatsmodelsMixedLM

ENGINES = ("auto", "fast", "statsmodels")
_FAST_ONLY = {"df_method", "slope"}
_STATSMODELS_ONLY = {"method", "boundary_tol", "start", "tol"}
_BOTH = {"nested_ids"}


def MixedLM(  # noqa: N802 - reads as the class it returns
    formula: str,
    *,
    groups: str | Sequence[str],
    engine: str = "auto",
    reml: bool = True,
    level: float = 0.95,
    **options: Any,
) -> FastMixedLM | StatsmodelsMixedLM:
    """A linear mixed model estimator, fitted by the chosen engine.

    Parameters
    ----------
    formula : str
        Fixed effects, e.g. ``"y ~ x + treat"``.
    groups : str or sequence of str
        Grouping column, or nested columns from the top down (``["centre", "rep"]``).
    engine : {"auto", "fast", "statsmodels"}
        See the module docstring.
    reml, level : bool, float
        REML (default) or ML; confidence level of the intervals.
    **options
        Engine options: ``nested_ids`` (both: ``"unique"``, the default, or ``"within"`` for inner ids
        numbered within each outer group); ``df_method`` and ``slope`` (fast); ``method``, ``boundary_tol``,
        ``start``, ``tol`` (statsmodels).

    Examples
    --------
    >>> type(MixedLM("y ~ x", groups="g")).__name__
    'FastMixedLM'
    >>> type(MixedLM("y ~ x", groups="g", engine="statsmodels")).__name__
    'StatsmodelsMixedLM'
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    depth = 1 if isinstance(groups, str) else len(groups)
    unknown = set(options) - _FAST_ONLY - _STATSMODELS_ONLY - _BOTH
    if unknown:
        raise ValueError(f"MixedLM: unknown option {sorted(unknown)[0]!r}")
    fast_ok = depth <= 2 and not (set(options) & _STATSMODELS_ONLY) and not (depth == 2 and "slope" in options)
    if engine == "auto":
        engine = "fast" if fast_ok else "statsmodels"
    if engine == "fast":
        if not fast_ok:
            raise ValueError("the fast engine fits one or two nested grouping levels (a slope with one) and "
                             f"takes none of {sorted(_STATSMODELS_ONLY)}; use engine='statsmodels'")
        return FastMixedLM(formula, groups=groups, reml=reml, level=level, **options)
    if set(options) & _FAST_ONLY:
        raise ValueError(f"{sorted(set(options) & _FAST_ONLY)[0]!r} needs engine='fast'")
    from simstudy.estimators.mixedlm import StatsmodelsMixedLM

    return StatsmodelsMixedLM(formula, groups=groups, reml=reml, level=level, **options)
