"""The timing protocol of shared/TIMING.md, for one image at a time, run by the judge.

A *pair* is two remote callables timed against each other: the original model (always in
the reference's clean worker) and an optimised callable (the candidate's, or the
reference's own for calibration). Every request carries a fresh image the callable has
not seen; the judge's clock spans the whole round trip (input out, complete output back);
the sides alternate call by call (A B, then B A) on the same image; every output of the
optimised side is checked against the original's output for that image. A pair may also
time a *control*: the reference's own optimised callable, in the reference's worker, on
the same images, to see what the machine's current state does to speed-ups.

A *run* is one warm machine, ``samples`` images, and each side's p50, p95 and IQR / p50.
A run is *quiet* when the original's and the optimised side's IQR / p50 are at most
``max_iqr``. Verdicts use the median over runs of the per-run speed-up (original p50 /
optimised p50); see ``decide`` for what happens when the machine is not quiet.
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
    # Quiet runs count only when their original p50 is within this factor of the calibrated one.
    max_original_slowdown: float = 1.2
    # Runs that are not quiet decide by the *controlled* speed-up (see ``controlled_speedup``),
    # and only when it is this factor below (fail) or above (pass) the threshold. On a busy
    # machine a long call is more likely to be descheduled midway than a short one: the
    # reference's speed-up read 2.8x to 3.95x under load against 3.19x calibrated on our
    # 2-core machine; comparing with a control measured alongside leaves far less to cover.
    # 1.15, not 1.25: in CI (2026-11-21) "inference mode only" (0.42 of the reference when quiet)
    # read 1.60x controlled against a bar of 1.95x on a noisy run, inconclusive under 1.25; a
    # solution truly at the bar would have to read 13% low, after the control's correction, to fail.
    noisy_fail_margin: float = 1.15
    noisy_pass_margin: float = 1.1


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
    original: Side = field(default_factory=Side)
    optimised: Side = field(default_factory=Side)
    control: Side = field(default_factory=Side)  # empty when the pair has no control

    @property
    def speedup(self) -> float:
        return self.original.p50 / self.optimised.p50

    def quiet(self, protocol: Protocol) -> bool:
        return max(self.original.iqr_ratio, self.optimised.iqr_ratio) <= protocol.max_iqr

    def add(self, times: tuple[float, float, float | None]) -> None:
        self.original.seconds.append(times[0])
        self.optimised.seconds.append(times[1])
        if times[2] is not None:
            self.control.seconds.append(times[2])


@dataclass
class Pair:
    original: Remote
    optimised: Remote
    check: Check
    images: Images
    seed: int  # secret, per grading: every run draws images no one has seen
    control: Remote | None = None
    _next_seed: int = 0

    def fresh(self, count: int) -> torch.Tensor:
        self._next_seed += 1
        return self.images(count, self.seed + 7919 * self._next_seed)

    def one(self, image: torch.Tensor, where: str, optimised_first: bool) -> tuple[float, float, float | None]:
        """Time the sides on one image (original and optimised in the given order, the control between).

        Checks the optimised output against the original's; returns the three times.
        """
        control_s = None
        if optimised_first:
            value, optimised_s = self.optimised(image.clone())
            if self.control is not None:
                control_s = self.control(image.clone())[1]
            expected, original_s = self.original(image.clone())
        else:
            expected, original_s = self.original(image.clone())
            if self.control is not None:
                control_s = self.control(image.clone())[1]
            value, optimised_s = self.optimised(image.clone())
        self.check(value, expected, where)
        return original_s, optimised_s, control_s


def warm_up(pair: Pair, protocol: Protocol, what: str) -> tuple[float, float]:
    """Alternate until every side made ``warmup_calls`` calls and ``warmup_s`` passed; return two p50s."""
    images = pair.fresh(protocol.warmup_calls * 4)
    run = Run()
    started = time.monotonic()
    index = 0
    while index < protocol.warmup_calls or time.monotonic() - started < protocol.warmup_s:
        if index == len(images):
            images = torch.cat([images, pair.fresh(protocol.warmup_calls * 4)])
        run.add(pair.one(images[index:index + 1], f"{what}, warm-up call {index + 1}", index % 2 == 1))
        index += 1
    tail = slice(len(run.original.seconds) // 2, None)  # the second half: warm already
    return statistics.median(run.original.seconds[tail]), statistics.median(run.optimised.seconds[tail])


def samples_per_run(protocol: Protocol, original_s: float, optimised_s: float) -> int:
    wanted = int(protocol.run_budget_s / max(original_s + optimised_s, 1e-6))
    return max(protocol.min_samples, min(protocol.max_samples, wanted))


def measure_run(pair: Pair, samples: int, what: str) -> Run:
    images = pair.fresh(samples)
    run = Run()
    for index in range(samples):
        run.add(pair.one(images[index:index + 1], f"{what}, timed call {index + 1}", index % 2 == 1))
    return run


def spread(runs: list[Run]) -> float:
    """(largest - smallest) / median of the runs' speed-ups."""
    speedups = [run.speedup for run in runs]
    return (max(speedups) - min(speedups)) / statistics.median(speedups)


def middle_spread(runs: list[Run]) -> float:
    """(third quartile - first quartile) / median of the runs' speed-ups: ``spread`` without the outer runs."""
    speedups = [run.speedup for run in runs]
    return (_quantile(speedups, 0.75) - _quantile(speedups, 0.25)) / statistics.median(speedups)


def undisturbed(run: Run, baseline_s: float | None, protocol: Protocol) -> bool:
    """Whether the original model ran about as fast as when the machine was calibrated."""
    return baseline_s is None or run.original.p50 <= protocol.max_original_slowdown * baseline_s


def controlled_speedup(run: Run, reference_speedup: float) -> float:
    """The run's speed-up corrected for the machine's state: ``reference_speedup * control p50 / optimised p50``.

    The control (the reference's callable) ran alongside on the same images. If the
    machine's state moved speed-ups (the original slowed by load, or by anything
    competing with it), the control's speed-up moved the same way: dividing by how far
    it moved from its calibrated value cancels that, and the original drops out.
    Without a control, the plain speed-up.
    """
    if not run.control.seconds:
        return run.speedup
    return reference_speedup * run.control.p50 / run.optimised.p50


def decide(runs: list[Run], threshold: float, protocol: Protocol, baseline_s: float | None,
           reference_speedup: float) -> bool | None:
    """True (fast enough), False (too slow), or None (cannot say yet).

    - Quiet, undisturbed runs (the last ``protocol.runs`` of them, agreeing within
      ``max_spread``) decide by their median speed-up, as shared/TIMING.md says.
    - Otherwise the median controlled speed-up (``controlled_speedup``) decides when it is
      clear of the threshold by the noisy margins: a busy machine then gives a verdict
      only when no plausible bias could have flipped it.
    - Else None: measure more, then call it inconclusive.
    """
    clean = [run for run in runs if run.quiet(protocol) and undisturbed(run, baseline_s, protocol)]
    clean = clean[-protocol.runs:]
    if len(clean) == protocol.runs and spread(clean) <= protocol.max_spread:
        return statistics.median(run.speedup for run in clean) >= threshold
    controlled = statistics.median(controlled_speedup(run, reference_speedup) for run in runs)
    if controlled * protocol.noisy_fail_margin < threshold:
        return False
    if controlled >= threshold * protocol.noisy_pass_margin:
        return True
    return None


def summary(runs: list[Run], protocol: Protocol, reference_speedup: float | None = None) -> dict[str, float]:
    """Figures for the result: medians over runs of each side's p50 and p95 (ms), speed-up, spreads."""
    figures = {
        "speedup": round(statistics.median(run.speedup for run in runs), 3),
        "speedup_spread": round(spread(runs), 4),
        "speedup_middle_spread": round(middle_spread(runs), 4),
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
    if reference_speedup is not None and runs[0].control.seconds:
        figures["control_p50_ms"] = round(statistics.median(run.control.p50 for run in runs) * 1e3, 4)
        figures["controlled_speedup"] = round(
            statistics.median(controlled_speedup(run, reference_speedup) for run in runs), 3)
    return figures


def _p50_spread(runs: list[Run]) -> float:
    """The larger of the two sides' (largest - smallest) / median of their per-run p50s."""
    spreads = []
    for side in ("original", "optimised"):
        p50s = [getattr(run, side).p50 for run in runs]
        spreads.append((max(p50s) - min(p50s)) / statistics.median(p50s))
    return max(spreads)


def _medians(runs: list[Run]) -> tuple[float, float]:
    """The calibrated figures from ``runs``: the median speed-up and the original's median p50 (s)."""
    return statistics.median(run.speedup for run in runs), statistics.median(run.original.p50 for run in runs)


def calibrate(
    pair: Pair, protocol: Protocol, report: Callable[[list[Run]], None], attempts: int = 3
) -> tuple[float, float]:
    """The reference's own speed-up and the original's p50 (s): medians of ``protocol.runs`` quiet runs.

    The quiet runs must agree within ``max_spread``. The figures are cached for this
    machine and become every later candidate's bar, so a noisy measurement is repeated
    (up to ``attempts`` times as many runs). If no quiet stretch comes, the medians of all
    those runs are used when their middle half agrees within ``max_spread``
    (``middle_spread``); else nothing is stored and this raises ``TimingInconclusive``.
    ``report`` gets the runs either way.
    """
    original_s, optimised_s = warm_up(pair, protocol, "the reference (calibration)")
    samples = samples_per_run(protocol, original_s, optimised_s)
    runs: list[Run] = []
    for _ in range(attempts * protocol.runs):
        runs.append(measure_run(pair, samples, "the reference (calibration)"))
        quiet = [run for run in runs if run.quiet(protocol)][-protocol.runs:]
        if len(quiet) == protocol.runs and spread(quiet) <= protocol.max_spread:
            report(quiet)
            return _medians(quiet)
    if middle_spread(runs) <= protocol.max_spread:
        # No quiet stretch, but the runs agree on the speed-up: the middle half of the per-run
        # speed-ups lies within ``max_spread`` of their median. On our shared 2-core VMs the
        # within-run IQR of a ~2 ms round trip stays above 20% for minutes at load 1 (jitter from
        # the host), while the median of 15 runs' speed-ups lands within 3% of a quiet
        # calibration (tools/README.md); what this would not catch, a heavily loaded machine
        # biasing every run alike (load 4 to 8), is what the original's p50 recorded here
        # then guards: later runs slower than 1.2x of it are not counted as undisturbed.
        report(runs)
        return _medians(runs)
    report(runs)
    raise TimingInconclusive(
        f"timing inconclusive: the machine was too noisy to measure the reference solution's speed-up "
        f"({len(runs)} runs, {sum(run.quiet(protocol) for run in runs)} quiet, spread {spread(runs):.0%}); "
        "nothing was scored: grade again when the machine is quieter"
    )
