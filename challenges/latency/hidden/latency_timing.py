"""The timing protocol of shared/TIMING.md for one image at a time, run by the judge, in paired rounds.

Three remote callables are timed on the same fresh images, each on the judge's clock
around the whole round trip (input out, complete output back):

- the *original* model and the *control* (the reference solution's optimised callable),
  both in the reference's clean worker;
- the *optimised* callable under test (the candidate's; for the reference's own
  grading, a copy of the reference in the candidate's worker).

A *round* is ``images`` fresh images. Its reference phase times the original and the
control on each image (their order alternating image by image) while the candidate's
worker is frozen, so nothing the candidate left running competes with them; its
candidate phase times the optimised callable on the same images while the reference's
worker sits idle. Rounds alternate which phase comes first. Every optimised output is
checked against the original's for the same image.

Each round gives paired ratios of p50s, in which whatever slowed the machine for longer
than a round cancels:

- ``fraction``: control p50 / optimised p50, the candidate's speed-up as a fraction of
  the reference's (the original drops out: (orig/opt) / (orig/ctrl) = ctrl/opt). The
  verdict is this against the bar, by the median over rounds and its confidence interval
  (``grader.judge.paired``): pass when the interval clears the bar, fail when it misses
  it, else more rounds, and in the end "inconclusive" (the judge then tries the whole
  check again; see grader/judge/timing.py).
- ``speedup`` (original / optimised) and ``reference_speedup`` (original / control):
  reported, and the latter is this machine's calibrated figure when the reference itself
  is graded.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch

from grader.judge.paired import Decision, MedianInterval, decide, median_interval
from grader.judge.timing import TimingInconclusive

Remote = Callable[[torch.Tensor], tuple[Any, float]]  # image -> (value, seconds on the judge's clock)
Check = Callable[[Any, Any, str], None]  # (optimised value, original value, where) -> raises AssertionError
Images = Callable[[int, int], torch.Tensor]  # (count, seed) -> images [count, 3, 64, 64]
Freeze = Callable[[], AbstractContextManager[str]]  # freezes the candidate's worker; yields what it did

__all__ = ["TimingInconclusive"]


@dataclass(frozen=True)
class Protocol:
    warmup_calls: int  # per callable, before anything counts
    warmup_s: float
    round_s: float = 0.6  # how long one round should take (sets the images per round)
    min_images: int = 4
    max_images: int = 64
    min_rounds: int = 12  # before the first decision
    max_rounds: int = 60
    budget_s: float = 150.0  # measuring stops here, decided or not
    confidence: float = 0.99
    precision: float = 0.03  # an interval this narrow (half-width / median) lets the median decide


CPU = Protocol(warmup_calls=50, warmup_s=3.0)
GPU = Protocol(warmup_calls=200, warmup_s=5.0)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Round:
    original: list[float] = field(default_factory=list)
    control: list[float] = field(default_factory=list)
    optimised: list[float] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return statistics.median(self.control) / statistics.median(self.optimised)

    @property
    def speedup(self) -> float:
        return statistics.median(self.original) / statistics.median(self.optimised)

    @property
    def reference_speedup(self) -> float:
        return statistics.median(self.original) / statistics.median(self.control)


@dataclass
class Pair:
    original: Remote
    optimised: Remote
    control: Remote
    check: Check
    images: Images
    seed: int  # secret, per grading: every round draws images no one has seen
    freeze: Freeze  # freezes the optimised side's worker while the reference's side is timed
    frozen_how: str = ""  # what freezing did, for the result
    _next_seed: int = 0

    def fresh(self, count: int) -> torch.Tensor:
        self._next_seed += 1
        return self.images(count, self.seed + 7919 * self._next_seed)

    def round(self, count: int, what: str, candidate_first: bool) -> Round:
        """Time one round on ``count`` fresh images; check every optimised output against the original's."""
        images = self.fresh(count)
        timed = Round()
        outputs: list[Any] = []
        expected: list[Any] = []

        def candidate_phase() -> None:
            for index in range(count):
                value, seconds = self.optimised(images[index:index + 1].clone())
                outputs.append(value)
                timed.optimised.append(seconds)

        def reference_phase() -> None:
            with self.freeze() as how:
                self.frozen_how = how
                for index in range(count):
                    image = images[index:index + 1]
                    if index % 2:
                        timed.control.append(self.control(image.clone())[1])
                    value, seconds = self.original(image.clone())
                    if not index % 2:
                        timed.control.append(self.control(image.clone())[1])
                    expected.append(value)
                    timed.original.append(seconds)

        for phase in (candidate_phase, reference_phase) if candidate_first else (reference_phase, candidate_phase):
            phase()
        for index, (value, want) in enumerate(zip(outputs, expected, strict=True)):
            self.check(value, want, f"{what}, image {index + 1}")
        return timed


def images_per_round(protocol: Protocol, warm: Round) -> int:
    """As many images as fit in ``protocol.round_s`` at the warm p50s, within [min_images, max_images]."""
    per_image_s = statistics.median(warm.original) + statistics.median(warm.control) + statistics.median(warm.optimised)
    wanted = int(protocol.round_s / max(per_image_s, 1e-6))
    return max(protocol.min_images, min(protocol.max_images, wanted))


def warm_up(pair: Pair, protocol: Protocol, what: str = "warm-up") -> Round:
    """Rounds of eight images until each callable made ``warmup_calls`` calls and ``warmup_s`` passed.

    Every output is checked already: a callable that returns wrong logits fails here.
    Returns the last warm round (its p50s size the measured rounds).
    """
    started = time.monotonic()
    calls = 0
    number = 0
    last = Round()
    while calls < protocol.warmup_calls or time.monotonic() - started < protocol.warmup_s:
        number += 1
        last = pair.round(8, f"{what}, round {number}", candidate_first=number % 2 == 0)
        calls += 8
    return last


@dataclass
class Measurement:
    rounds: list[Round]
    fraction: MedianInterval
    decision: Decision
    images_per_round: int
    seconds: float

    @property
    def speedup(self) -> MedianInterval:
        return median_interval([r.speedup for r in self.rounds], self.fraction.confidence)

    @property
    def reference_speedup(self) -> MedianInterval:
        return median_interval([r.reference_speedup for r in self.rounds], self.fraction.confidence)

    def p50_ms(self, side: str) -> float:
        return statistics.median(t for r in self.rounds for t in getattr(r, side)) * 1e3

    def p95_ms(self, side: str) -> float:
        return _quantile([t for r in self.rounds for t in getattr(r, side)], 0.95) * 1e3


def measure(
    pair: Pair, protocol: Protocol, bar: float, progress: Callable[[str], None] = lambda text: None,
) -> Measurement:
    """Rounds until the median fraction's interval decides against ``bar``, or the rounds or the budget run out."""
    warm = warm_up(pair, protocol)
    count = images_per_round(protocol, warm)
    started = time.monotonic()
    rounds: list[Round] = []
    decision: Decision = "inconclusive"
    interval = median_interval([], protocol.confidence)
    for number in range(1, protocol.max_rounds + 1):
        rounds.append(pair.round(count, f"round {number}", candidate_first=number % 2 == 0))
        interval = median_interval([r.fraction for r in rounds], protocol.confidence)
        elapsed = time.monotonic() - started
        if number >= protocol.min_rounds:
            decision = decide(interval, bar, precision=protocol.precision)
            if decision != "inconclusive" or elapsed > protocol.budget_s:
                break
        left_s = max(protocol.min_rounds - number, 0) * elapsed / number
        progress(f"round {number} of {protocol.min_rounds} to {protocol.max_rounds}: "
                 f"{interval.describe('x of the reference')}"
                 + (f", at least {left_s:.0f} s left" if left_s else ""))
    return Measurement(rounds, interval, decision, count, time.monotonic() - started)


def summary(measured: Measurement) -> dict[str, float | str]:
    """Figures for the result (ms, ratios, and the intervals the verdict used)."""
    fraction, speedup, reference = measured.fraction, measured.speedup, measured.reference_speedup
    return {
        "fraction_of_reference": round(fraction.median, 3),
        "fraction_interval_low": round(fraction.low, 3),
        "fraction_interval_high": round(fraction.high, 3),
        "speedup": round(speedup.median, 3),
        "speedup_interval_low": round(speedup.low, 3),
        "speedup_interval_high": round(speedup.high, 3),
        "reference_speedup_alongside": round(reference.median, 3),
        "original_p50_ms": round(measured.p50_ms("original"), 4),
        "original_p95_ms": round(measured.p95_ms("original"), 4),
        "optimised_p50_ms": round(measured.p50_ms("optimised"), 4),
        "optimised_p95_ms": round(measured.p95_ms("optimised"), 4),
        "control_p50_ms": round(measured.p50_ms("control"), 4),
        "rounds": len(measured.rounds),
        "images_per_round": measured.images_per_round,
        "measuring_s": round(measured.seconds, 1),
        "confidence": fraction.confidence,
        "decision": measured.decision,
    }
