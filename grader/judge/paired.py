"""Deciding a timed comparison from paired ratios of short, alternated rounds.

How the well-known harnesses settle a timing, and what they leave open:

- GPU MODE's leaderboards (reference-kernels' ``eval.py``) time the submission alone,
  repeating until the standard error of the mean falls under 0.1 % of it or a time
  budget runs out, and rank by that mean. The reference is not timed beside it; a busy
  or throttled machine moves every figure, and nothing says "too noisy to tell".
- KernelBench times the reference and the candidate one after the other (a fixed
  number of trials each) and divides the means. Whatever changes between the two
  blocks (a neighbour starting, clocks moving) lands in the ratio whole.

Here both sides run in short rounds, alternated (A B, then B A): whatever slows the
machine for longer than a round slows both sides of that round alike and cancels in
its ratio. Each round gives one ratio; the median of the rounds' ratios gets a
distribution-free confidence interval (binomial order statistics: no assumption on
the shape of the noise, and a few disturbed rounds cannot drag it). The interval
decides against the bar:

- ``pass`` when all of it clears the bar, ``fail`` when all of it misses;
- when the interval is already narrower than ``precision`` around the median, the
  median decides (a solution right at the bar, measured precisely, gets a verdict);
- else ``inconclusive``: measure more rounds, and in the end say so rather than guess.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Decision = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class MedianInterval:
    """The median of ``rounds`` ratios and a ``confidence`` interval around it (low may be -inf)."""

    low: float
    median: float
    high: float
    rounds: int
    confidence: float

    @property
    def relative_width(self) -> float:
        """(high - low) / median; inf when the interval is unbounded."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.median <= 0:
            return math.inf
        return (self.high - self.low) / self.median

    def describe(self, unit: str = "") -> str:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{self.median:.3g}{unit} (too few rounds for an interval)"
        return (f"{self.median:.3g}{unit} ({self.confidence:.0%} interval {self.low:.3g} to {self.high:.3g}, "
                f"{self.rounds} rounds)")


def _binomial_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2.0 ** n


def median_interval(ratios: Sequence[float], confidence: float = 0.99) -> MedianInterval:
    """The median of ``ratios`` and the order-statistic interval that covers the true median with ``confidence``.

    With n ratios sorted, [x(k+1), x(n-k)] covers the median with probability
    1 - 2 P(X <= k), X ~ Binomial(n, 1/2); k is the largest that keeps that at least
    ``confidence``. Too few ratios for any k: the interval is unbounded.
    """
    ordered = sorted(float(r) for r in ratios if math.isfinite(float(r)))
    n = len(ordered)
    if n == 0:
        return MedianInterval(-math.inf, math.nan, math.inf, 0, confidence)
    alpha = 1.0 - confidence
    k = -1
    while 2.0 * _binomial_cdf(k + 1, n) <= alpha and k + 1 < n // 2:
        k += 1
    median = statistics.median(ordered)
    if k < 0:
        return MedianInterval(-math.inf, median, math.inf, n, confidence)
    return MedianInterval(ordered[k], median, ordered[n - 1 - k], n, confidence)


def decide(interval: MedianInterval, bar: float, *, precision: float = 0.03) -> Decision:
    """``pass`` when the interval lies at or above ``bar``, ``fail`` when below, else ``inconclusive``.

    ``precision``: when the interval's half-width is at most this fraction of the median,
    the measurement is as good as it gets and the median decides.
    """
    if interval.rounds == 0:
        return "inconclusive"
    if interval.low >= bar:
        return "pass"
    if interval.high < bar:
        return "fail"
    if interval.relative_width <= 2 * precision:
        return "pass" if interval.median >= bar else "fail"
    return "inconclusive"
