"""The timing protocol of shared/TIMING.md, for one image at a time, run by the judge.

A *pair* is two remote callables timed against each other: the original model (always in
the reference's clean worker) and an optimised callable (the candidate's, or the
reference's own for calibration). Every request carries a fresh image the callable has
not seen; the judge's clock spans the whole round trip (input out, complete output back);
the two sides alternate call by call (A B, then B A) on the same image; every output of the
optimised side is checked against the original's output for that image.

A *run* is one warm machine, ``samples`` images, and each side's p50, p95 and IQR / p50.
A run is *quiet* when both sides' IQR / p50 are at most ``max_iqr``. Verdicts use the
median over runs of the per-run speed-up (original p50 / optimised p50), see ``decide``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.sandbox import SandboxUnavailable

Remote = Callable[[torch.Tensor], tuple[Any, float]]  # image -> (value, seconds on the judge's clock)
Check = Callable[[Any, Any, str], None]  # (optimised value, original value, where) -> raises AssertionError
Images = Callable[[int, int], torch.Tensor]  # (count, seed) -> images [count, 3, 64, 64]


class TimingInconclusive(SandboxUnavailable):
    """The machine was too noisy to decide: the grading is not charged to the candidate (status "error").

    A subclass of SandboxUnavailable because that is what the judge reports as "not gradable,
    ours"; the message says what happened.
    """


@dataclass(frozen=True)
class Protocol:
    runs: int
    warmup_calls: int
    warmup_s: float
    min_samples: int = 300
    max_samples: int = 1000
    run_budget_s: float = 3.0  # samples per run: as many as fit in this, within [min, max]
    max_iqr: float = 0.10
    max_spread: float = 0.05
    extra_runs: int = 5  # near the threshold, at most this many more runs before "inconclusive"
    # Runs that are not quiet decide only far from the threshold. A busy machine slows the
    # long original calls more than short optimised ones (a long call is more likely to be
    # descheduled midway), which inflated speed-ups by up to 1.45x on our 2-core machine:
    # noisy runs prove a failure when their median is this factor below the threshold, and
    # a pass when their median speed-up, deflated by the original's slowdown since
    # calibration, is this factor above it.
    clear_fail_margin: float = 1.25
    clear_pass_margin: float = 1.1
    # Quiet runs count only when their original p50 is within this factor of the calibrated one.
    max_original_slowdown: float = 1.2


# CPU runs may have an IQR / p50 up to 20%, not shared/TIMING.md's 10%: on our 2-core machine
# with its other core busy, the optimised side's round trip (about 2 ms) showed an IQR of
# 15 to 20% in every run while the speed-up moved by 2.5% between runs (tools/README.md).
# That spread is benign (the speed-up stayed put); the guards that protect the verdict
# are the spread across runs, the original's latency against calibration and the margins.
CPU = Protocol(runs=5, warmup_calls=50, warmup_s=3.0, max_iqr=0.20, max_spread=0.05)
GPU = Protocol(runs=3, warmup_calls=200, warmup_s=5.0, max_spread=0.03)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Side:
    seconds: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        return _quantile(self.seconds, 0.95)

    @property
    def iqr_ratio(self) -> float:
        return (_quantile(self.seconds, 0.75) - _quantile(self.seconds, 0.25)) / self.p50


@dataclass
class Run:
    original: Side
    optimised: Side

    @property
    def speedup(self) -> float:
        return self.original.p50 / self.optimised.p50

    def quiet(self, protocol: Protocol) -> bool:
        return max(self.original.iqr_ratio, self.optimised.iqr_ratio) <= protocol.max_iqr


@dataclass
class Pair:
    original: Remote
    optimised: Remote
    check: Check
    images: Images
    seed: int  # secret, per grading: every run draws images no one has seen
    optimised_timeout_s: float = 10.0
    _next_seed: int = 0

    def fresh(self, count: int) -> torch.Tensor:
        self._next_seed += 1
        return self.images(count, self.seed + 7919 * self._next_seed)

    def one(self, image: torch.Tensor, where: str, optimised_first: bool) -> tuple[float, float]:
        """Time both sides on one image (in the given order); check the optimised output; return both times."""
        if optimised_first:
            value, optimised_s = self.optimised(image.clone())
            expected, original_s = self.original(image.clone())
        else:
            expected, original_s = self.original(image.clone())
            value, optimised_s = self.optimised(image.clone())
        self.check(value, expected, where)
        return original_s, optimised_s


def warm_up(pair: Pair, protocol: Protocol, what: str) -> tuple[float, float]:
    """Alternate until both sides made ``warmup_calls`` calls and ``warmup_s`` passed; return their p50s."""
    images = pair.fresh(protocol.warmup_calls * 4)
    run = Run(Side(), Side())
    started = time.monotonic()
    index = 0
    while index < protocol.warmup_calls or time.monotonic() - started < protocol.warmup_s:
        if index == len(images):
            images = torch.cat([images, pair.fresh(protocol.warmup_calls * 4)])
        original_s, optimised_s = pair.one(images[index:index + 1], f"{what}, warm-up call {index + 1}", index % 2 == 1)
        run.original.seconds.append(original_s)
        run.optimised.seconds.append(optimised_s)
        index += 1
    tail = slice(len(run.original.seconds) // 2, None)  # the second half: warm already
    return statistics.median(run.original.seconds[tail]), statistics.median(run.optimised.seconds[tail])


def samples_per_run(protocol: Protocol, original_s: float, optimised_s: float) -> int:
    wanted = int(protocol.run_budget_s / max(original_s + optimised_s, 1e-6))
    return max(protocol.min_samples, min(protocol.max_samples, wanted))


def measure_run(pair: Pair, samples: int, what: str) -> Run:
    images = pair.fresh(samples)
    run = Run(Side(), Side())
    for index in range(samples):
        original_s, optimised_s = pair.one(images[index:index + 1], f"{what}, timed call {index + 1}", index % 2 == 1)
        run.original.seconds.append(original_s)
        run.optimised.seconds.append(optimised_s)
    return run


def spread(runs: list[Run]) -> float:
    """(largest - smallest) / median of the runs' speed-ups."""
    speedups = [run.speedup for run in runs]
    return (max(speedups) - min(speedups)) / statistics.median(speedups)


def undisturbed(run: Run, baseline_s: float | None, protocol: Protocol) -> bool:
    """Whether the original model ran about as fast as when the machine was calibrated."""
    return baseline_s is None or run.original.p50 <= protocol.max_original_slowdown * baseline_s


def deflated_speedup(run: Run, baseline_s: float | None) -> float:
    """The run's speed-up, less whatever the original's slowdown since calibration could have added.

    A busy machine, or anything competing with the original (another grading, the
    candidate's spare threads), slows the original and inflates the speed-up by at most
    that slowdown: dividing by it gives a figure load cannot have inflated.
    """
    if baseline_s is None:
        return run.speedup
    return run.speedup * min(1.0, baseline_s / run.original.p50)


def decide(runs: list[Run], threshold: float, protocol: Protocol, baseline_s: float | None) -> bool | None:
    """True (fast enough), False (too slow), or None (cannot say yet).

    - Quiet, undisturbed runs (the last ``protocol.runs`` of them, agreeing within
      ``max_spread``) decide by their median speed-up.
    - Otherwise a clear failure: the median speed-up is below the threshold by the clear
      fail margin (load inflates speed-ups, it does not hide them).
    - Or a clear pass: the median *deflated* speed-up (``deflated_speedup``) clears the
      threshold by the clear pass margin.
    - Else None: measure more, or call it inconclusive.
    """
    clean = [run for run in runs if run.quiet(protocol) and undisturbed(run, baseline_s, protocol)]
    clean = clean[-protocol.runs:]
    if len(clean) == protocol.runs and spread(clean) <= protocol.max_spread:
        return statistics.median(run.speedup for run in clean) >= threshold
    if statistics.median(run.speedup for run in runs) * protocol.clear_fail_margin < threshold:
        return False
    if statistics.median(deflated_speedup(run, baseline_s) for run in runs) >= threshold * protocol.clear_pass_margin:
        return True
    return None


def summary(runs: list[Run], protocol: Protocol, baseline_s: float | None = None) -> dict[str, float]:
    """Figures for the result: medians over runs of each side's p50 and p95 (ms), speed-up, spreads."""
    return {
        "speedup": round(statistics.median(run.speedup for run in runs), 3),
        "speedup_spread": round(spread(runs), 4),
        "deflated_speedup": round(statistics.median(deflated_speedup(run, baseline_s) for run in runs), 3),
        "original_p50_ms": round(statistics.median(run.original.p50 for run in runs) * 1e3, 4),
        "original_p95_ms": round(statistics.median(run.original.p95 for run in runs) * 1e3, 4),
        "optimised_p50_ms": round(statistics.median(run.optimised.p50 for run in runs) * 1e3, 4),
        "optimised_p95_ms": round(statistics.median(run.optimised.p95 for run in runs) * 1e3, 4),
        "p50_spread": round(_p50_spread(runs), 4),
        "worst_iqr_ratio": round(max(max(run.original.iqr_ratio, run.optimised.iqr_ratio) for run in runs), 4),
        "runs": len(runs),
        "quiet_runs": sum(run.quiet(protocol) for run in runs),
        "samples_per_run": len(runs[0].original.seconds),
    }


def _p50_spread(runs: list[Run]) -> float:
    """The larger of the two sides' (largest - smallest) / median of their per-run p50s."""
    spreads = []
    for side in ("original", "optimised"):
        p50s = [getattr(run, side).p50 for run in runs]
        spreads.append((max(p50s) - min(p50s)) / statistics.median(p50s))
    return max(spreads)


def calibrate(
    pair: Pair, protocol: Protocol, report: Callable[[list[Run]], None], attempts: int = 3
) -> tuple[float, float]:
    """The reference's own speed-up and the original's p50 (s): medians of ``protocol.runs`` quiet runs.

    The quiet runs must agree within ``max_spread``. The figures are cached for this
    machine and become every later candidate's bar, so a noisy measurement is repeated
    (up to ``attempts`` times as many runs), and never stored: if no quiet stretch comes,
    this raises ``TimingInconclusive``. ``report`` gets the runs either way.
    """
    original_s, optimised_s = warm_up(pair, protocol, "the reference (calibration)")
    samples = samples_per_run(protocol, original_s, optimised_s)
    runs: list[Run] = []
    for _ in range(attempts * protocol.runs):
        runs.append(measure_run(pair, samples, "the reference (calibration)"))
        quiet = [run for run in runs if run.quiet(protocol)][-protocol.runs:]
        if len(quiet) == protocol.runs and spread(quiet) <= protocol.max_spread:
            report(quiet)
            return statistics.median(run.speedup for run in quiet), statistics.median(run.original.p50 for run in quiet)
    report(runs)
    raise TimingInconclusive(
        f"timing inconclusive: the machine was too noisy to measure the reference solution's speed-up "
        f"({len(runs)} runs, {sum(run.quiet(protocol) for run in runs)} quiet, spread {spread(runs):.0%}); "
        "nothing was scored: grade again when the machine is quieter"
    )
