"""The smallest design size whose power reaches a target, decided with a stated confidence.

The search knows nothing of studies: it asks an ``evaluate(level, reps)`` function for the number of
rejections among the first ``reps`` replicates at an integer ``level`` (the engine runs those replicates as
an ordinary cell of the study, so asking again for more replicates extends the same cell).

Decisions. At a level ``N`` the question is whether power ``p(N) >= target``. Replicates are added in
doubling batches (``start``, ``2 start``, ... up to ``max_reps``); after each batch an exact
(Clopper-Pearson) interval at the look's confidence decides ``p >= target`` (its lower limit at or above
the target) or ``p < target`` (its upper limit below). A level where ``max_reps`` replicates do not decide
is *indeterminate*: its power is within the interval around the target. The bisection treats it as
reaching the target; if the answer is indeterminate, a second bisection finds the smallest level above it
that is decided to reach the target (``sure``), so the result is a range, not a guess: ``answer`` is the
smallest level that may reach the target, ``sure`` the smallest that does (the same level when the answer
was decided).

The guarantee. Every look of every decision gets its own error ``delta``: the i-th decision ``(1 - c)
6 / (pi^2 i^2)`` and its k-th look that times ``6 / (pi^2 k^2)`` (both sums converge to their total), so the
probability that any look of any decision is wrong is at most ``1 - c`` (a union bound; no independence is
assumed). If power increases with the level, then with probability at least ``c`` every decision is right,
and the smallest level whose power reaches the target lies in ``[answer, sure]`` (one level when the answer
was decided: ``p(N) >= target > p(N - 1)``, unless ``N`` is the lower end of the range, which the result
says).

The levels are visited by bisection between a level known to fall short (or ``lo - 1``) and one known to
reach the target (``hi``, checked first); decisions that contradict monotone power (a level that reaches
the target below one that falls short) are reported, not hidden.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from simstudy.stats.power import clopper_pearson

Evaluate = Callable[[int, int], tuple[int, int]]


@dataclass
class Decision:
    """What the search learned at one level."""

    level: int
    reps: int
    hits: int
    tested: int
    lower: float
    upper: float
    verdict: str  # "reaches", "short", "indeterminate"
    confidence: float

    @property
    def power(self) -> float:
        """The share of tested replicates that rejected."""
        return self.hits / self.tested if self.tested else float("nan")


@dataclass
class SearchResult:
    """The answer of :func:`smallest_level` and its evidence."""

    answer: int | None
    target: float
    confidence: float
    decisions: list[Decision] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: The smallest level decided to reach the target (``answer`` unless the answer is indeterminate).
    sure: int | None = None

    @property
    def reps(self) -> int:
        """Replicates spent, over all levels."""
        return sum(d.reps for d in self.decisions)

    def at(self, level: int) -> Decision | None:
        """The decision at ``level``, if it was evaluated."""
        return next((d for d in self.decisions if d.level == level), None)


def _delta(total: float, i: int) -> float:
    return total * 6.0 / (math.pi**2 * i**2)


def decide(evaluate: Evaluate, level: int, target: float, delta: float, *, start: int = 100,
           max_reps: int = 12800) -> Decision:
    """Decide whether power at ``level`` reaches ``target``, wrong with probability at most ``delta``."""
    reps, look = start, 0
    while True:
        look += 1
        hits, tested = evaluate(level, reps)
        conf = 1.0 - 2.0 * _delta(delta, look)  # two-sided interval: each tail gets half the error
        lo, hi = (float(v) for v in clopper_pearson(hits, tested, conf))
        if tested and lo >= target:
            return Decision(level, reps, hits, tested, lo, hi, "reaches", conf)
        if tested and hi < target:
            return Decision(level, reps, hits, tested, lo, hi, "short", conf)
        if reps >= max_reps:
            return Decision(level, reps, hits, tested, lo, hi, "indeterminate", conf)
        reps = min(2 * reps, max_reps)


def smallest_level(evaluate: Evaluate, lo: int, hi: int, target: float, *, confidence: float = 0.95,
                   start: int = 100, max_reps: int = 12800) -> SearchResult:
    """The smallest integer level in ``[lo, hi]`` whose power reaches ``target`` (see the module docstring).

    Parameters
    ----------
    evaluate : callable
        ``evaluate(level, reps) -> (rejections, tested)`` over the first ``reps`` replicates of ``level``.
    lo, hi : int
        The range searched.
    target : float
        Target power in (0, 1).
    confidence : float
        Probability that every decision is right (the answer's guarantee).
    start, max_reps : int
        Replicates of a level's first look, and the most a level gets.

    Returns
    -------
    SearchResult
        ``answer`` (None if ``hi`` falls short), ``sure`` (the smallest level decided to reach the target;
        above ``answer`` when the power there cannot be told from the target), every decision made,
        replicates spent, and warnings (an indeterminate answer, or decisions that contradict monotone
        power).
    """
    if not 0 < target < 1 or not 0 < confidence < 1:
        raise ValueError(f"target power and confidence must lie in (0, 1), got {target!r}, {confidence!r}")
    if not (isinstance(lo, int) and isinstance(hi, int) and lo <= hi):
        raise ValueError(f"the range must be whole numbers lo <= hi, got {lo!r}:{hi!r}")
    if start < 1 or max_reps < start:
        raise ValueError(f"need 1 <= start <= max_reps, got {start}, {max_reps}")
    total = 1.0 - confidence
    result = SearchResult(None, target, confidence)

    def ask(level: int) -> Decision:
        known = result.at(level)
        if known is not None:
            return known
        d = decide(evaluate, level, target, _delta(total, len(result.decisions) + 1), start=start,
                   max_reps=max_reps)
        result.decisions.append(d)
        return d

    top = ask(hi)
    if top.verdict == "short":
        result.warnings.append(f"power at the top of the range ({hi}) is below the target: widen the range")
        return result
    good, bad = hi, lo - 1  # good reaches (or is indeterminate); bad falls short (lo - 1: assumed)
    while good - bad > 1:
        mid = (good + bad) // 2
        if ask(mid).verdict == "short":
            bad = mid
        else:
            good = mid
    result.answer = good  # good - 1 was decided "short" by the bisection (unless good is lo)
    sure = min((d.level for d in result.decisions if d.verdict == "reaches" and d.level >= good), default=None)
    maybe = good  # indeterminate levels at and above the answer: where the decided reach starts
    while sure is not None and sure - maybe > 1:
        mid = (sure + maybe) // 2
        if ask(mid).verdict == "reaches":
            sure = mid
        else:
            maybe = mid
    result.sure = sure
    _check(result, lo)
    return result


def _check(result: SearchResult, lo: int) -> None:
    """Warnings: indeterminate levels next to the answer, and decisions against monotone power."""
    by_level = sorted(result.decisions, key=lambda d: d.level)
    if result.answer is not None and result.sure != result.answer:
        close = [d for d in by_level if d.verdict == "indeterminate" and d.level >= result.answer
                 and (result.sure is None or d.level < result.sure)]
        told = ", ".join(f"{d.level} ({d.power:.3f}, interval {d.lower:.3f}-{d.upper:.3f})" for d in close)
        where = f"between {result.answer} and {result.sure}" if result.sure is not None else \
            f"at or above {result.answer} (no level in the range is decided to reach the target)"
        result.warnings.append(f"power could not be told from the target with {close[0].reps} replicates at "
                               f"{told}: the answer lies {where}")
    for a, b in zip(by_level, by_level[1:]):
        if a.verdict == "reaches" and b.verdict == "short":
            result.warnings.append(f"power is not increasing: it reaches the target at {a.level} but falls short at "
                                   f"{b.level}; the answer assumes monotone power")
    if result.answer == lo:
        result.warnings.append(f"the answer is the lower end of the range ({lo}): a smaller level may also do")
