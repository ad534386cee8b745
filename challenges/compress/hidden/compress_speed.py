"""The speed check of `compress`: the rebuilt model against the original, one image at a time, on the CPU.

Both models run in the evaluator (the reference's worker: no candidate code, and the
candidate's worker was stopped when its artifact arrived), built by the challenge's own
code, so nothing in the timed loop is the candidate's: what is measured is the cost of the
architecture and kernels the artifact chose. shared/TIMING.md's rules, in the paired
rounds of ``grader.judge.paired``: each round times both models on the same fresh images,
one call each per image in alternating order, on the judge's clock around the whole round
trip; its ratio is original p50 / compressed p50, in which whatever slowed the machine for
longer than a round cancels. The median of the rounds' ratios and its 99% interval decide
against the bar; a machine too noisy to decide gives "inconclusive" (the judge tries again,
then status error), never a verdict.
"""

from __future__ import annotations

import secrets
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import compress_judge as judge
import torch

from grader.judgekit import MedianInterval, TimingInconclusive, decide, median_interval

# "At least as fast": the compressed model's median latency may be at most this factor above
# the original's (the bar on original / compressed is 1 / MAX_SLOWDOWN). The 10% is room for the
# measurement, not for the candidate: NOTES.md has the figures.
MAX_SLOWDOWN = 1.10
CALL_TIMEOUT_S = 10.0
WARMUP_CALLS, WARMUP_S = 50, 3.0  # per model, CPU (shared/TIMING.md)
ROUND_S = 0.6  # one round's length: sets the images per round
MIN_IMAGES, MAX_IMAGES = 25, 64  # 12 rounds of at least 25: 300 samples at least (shared/TIMING.md)
MIN_ROUNDS, MAX_ROUNDS = 12, 60
BUDGET_S = 120.0  # measuring stops here, decided or not
CONFIDENCE, PRECISION = 0.99, 0.03


@dataclass
class Round:
    original: list[float] = field(default_factory=list)
    compressed: list[float] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return statistics.median(self.original) / statistics.median(self.compressed)


def _timed_round(evaluator: Any, images: torch.Tensor, compressed_first: bool, what: str) -> Round:
    timed = Round()
    for index in range(len(images)):
        image = images[index:index + 1]
        order = ("compressed", "original") if (index % 2 == 0) == compressed_first else ("original", "compressed")
        for which in order:
            value, seconds = evaluator.timed("adapter.run", which, image, timeout_s=CALL_TIMEOUT_S)
            judge.check_logits(value, 1, f"the {which} model ({what}, image {index + 1})")
            getattr(timed, which).append(seconds)
    return timed


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def check(evaluator: Any, record: Any) -> None:
    """Time the compressed model against the original; fail when it is more than MAX_SLOWDOWN slower."""
    make_images = judge.synthetic().make_images
    seed = secrets.randbits(31)  # per grading: every round draws images nobody has seen
    counter = iter(range(1, 10**6))

    def fresh(count: int) -> torch.Tensor:
        return make_images(count, seed + 7919 * next(counter))[0]

    started = time.monotonic()
    warm = Round()
    while len(warm.original) < WARMUP_CALLS or time.monotonic() - started < WARMUP_S:
        last = _timed_round(evaluator, fresh(8), len(warm.original) % 16 == 0, "warm-up")
        warm.original += last.original
        warm.compressed += last.compressed
    per_image_s = statistics.median(warm.original[-16:]) + statistics.median(warm.compressed[-16:])
    count = max(MIN_IMAGES, min(MAX_IMAGES, int(ROUND_S / max(per_image_s, 1e-6))))

    bar = 1.0 / MAX_SLOWDOWN
    rounds: list[Round] = []
    interval = median_interval([], CONFIDENCE)
    decision = "inconclusive"
    measuring = time.monotonic()
    for number in range(1, MAX_ROUNDS + 1):
        rounds.append(_timed_round(evaluator, fresh(count), number % 2 == 0, f"round {number}"))
        interval = median_interval([r.speedup for r in rounds], CONFIDENCE)
        if number >= MIN_ROUNDS:
            decision = decide(interval, bar, precision=PRECISION)
            if decision != "inconclusive" or time.monotonic() - measuring > BUDGET_S:
                break
    _record(record, rounds, interval, count, bar, time.monotonic() - measuring, decision)
    original_ms = statistics.median(t for r in rounds for t in r.original) * 1e3
    compressed_ms = statistics.median(t for r in rounds for t in r.compressed) * 1e3
    described = (f"at batch size 1 the rebuilt model's median latency was {compressed_ms:.2f} ms against the "
                 f"original's {original_ms:.2f} ms: {interval.describe('x as fast')}; it may be at most "
                 f"{MAX_SLOWDOWN:.2f} times the original's (at least {bar:.3f}x as fast)")
    if decision == "inconclusive":
        raise TimingInconclusive(f"timing inconclusive: {described}; the machine was too busy to tell. Nothing "
                                 "was scored: grade again when the machine is quieter")
    assert decision == "pass", described


def _record(record: Any, rounds: list[Round], interval: MedianInterval, count: int, bar: float, seconds: float,
            decision: str) -> None:
    original = [t * 1e3 for r in rounds for t in r.original]
    compressed = [t * 1e3 for r in rounds for t in r.compressed]
    for key, value in {
        "speedup": interval.median, "speedup_interval_low": interval.low, "speedup_interval_high": interval.high,
        "required_speedup": bar, "original_p50_ms": statistics.median(original),
        "original_p95_ms": _quantile(original, 0.95), "compressed_p50_ms": statistics.median(compressed),
        "compressed_p95_ms": _quantile(compressed, 0.95),
    }.items():
        record.metric(key, round(value, 4))
    record.metric("rounds", len(rounds))
    record.metric("images_per_round", count)
    record.metric("measuring_s", round(seconds, 1))
    record.metric("decision", decision)
    record.distribution("latency of one image", compressed, unit="ms", baseline=original, label="compressed",
                        baseline_label="original model")
    record.gauge("speed-up over the original model", interval.median, threshold=bar, unit="x")
