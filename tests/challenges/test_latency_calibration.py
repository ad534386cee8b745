"""How the `latency` speed check decides: paired rounds against the reference, and an interval on the median.

The timing protocol is plain arithmetic over the judge's clock; these tests feed it callables
whose times are set by the test (a simulated machine whose load comes and goes), so that the
statistics are checked exactly and quickly.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from grader.judge.paired import MedianInterval, decide, median_interval
from tests.challenges.files import load_file

TIMING_PATH = Path(__file__).resolve().parents[2] / "challenges" / "latency" / "hidden" / "latency_timing.py"


def _load_timing() -> ModuleType:
    return load_file("latency_timing_under_test", TIMING_PATH)


timing = _load_timing()
FAST = timing.Protocol(warmup_calls=8, warmup_s=0.0, round_s=0.0, min_images=8, max_images=8,
                       min_rounds=12, max_rounds=60, budget_s=3600.0)


class Machine:
    """A simulated machine: its slowdown factor changes every ``stretch`` calls (load coming and going)."""

    def __init__(self, seed: int, *, busy: float, stretch: int = 40, jitter: float = 0.15) -> None:
        self._rng = random.Random(seed)
        self._busy = busy
        self._stretch = stretch
        self._jitter = jitter
        self._calls = 0
        self._factor = 1.0
        self.frozen_calls = 0

    def time(self, base_s: float) -> float:
        if self._calls % self._stretch == 0:
            self._factor = 1.0 + self._rng.uniform(0.0, self._busy)  # a neighbour's load, for a while
        self._calls += 1
        spike = 4.0 if self._rng.random() < 0.03 else 1.0  # the odd descheduled call
        return base_s * self._factor * spike * (1.0 + self._rng.uniform(-self._jitter, self._jitter))

    @contextlib.contextmanager
    def freeze(self) -> Iterator[str]:
        self.frozen_calls += 1
        yield "frozen (simulated)"


def _pair(machine: Machine, original_s: float, control_s: float, optimised_s: float):  # type: ignore[no-untyped-def]
    def remote(base_s: float) -> Callable[[torch.Tensor], tuple[torch.Tensor, float]]:
        return lambda image: (image.sum(), machine.time(base_s))

    return timing.Pair(original=remote(original_s), optimised=remote(optimised_s), control=remote(control_s),
                       check=lambda value, expected, where: None,
                       images=lambda count, seed: torch.zeros(count, 3, 4, 4), seed=1, freeze=machine.freeze)


# The reference's callable takes 2 ms, the original 6.5 ms; the bar is 0.6 of the reference.
ORIGINAL_S, CONTROL_S, BAR = 0.0065, 0.002, 0.6


@pytest.mark.parametrize(("fraction", "verdict"), [
    (1.0, "pass"),    # the reference itself
    (0.77, "pass"),   # float32 + grouped convs, BatchNorm unfused (known good)
    (0.42, "fail"),   # inference mode only (known bad)
    (0.31, "fail"),   # unchanged (the starter)
])
@pytest.mark.parametrize("busy", [0.0, 3.0])  # a quiet machine; one whose load quadruples times at worst
def test_sound_and_slow_solutions_get_their_verdict_quiet_or_busy(fraction: float, verdict: str, busy: float) -> None:
    for seed in range(5):
        machine = Machine(seed, busy=busy)
        measured = timing.measure(_pair(machine, ORIGINAL_S, CONTROL_S, CONTROL_S / fraction), FAST, BAR)
        assert measured.decision == verdict, (seed, timing.summary(measured))
        assert measured.fraction.low <= fraction * 1.1 and measured.fraction.high >= fraction * 0.9
        assert machine.frozen_calls > len(measured.rounds), "the reference was timed with the candidate running"


def test_a_solution_at_the_bar_on_a_busy_machine_is_inconclusive_not_guessed() -> None:
    machine = Machine(7, busy=6.0, stretch=3, jitter=0.4)  # load changing faster than a round: no pairing helps
    measured = timing.measure(_pair(machine, ORIGINAL_S, CONTROL_S, CONTROL_S / BAR), FAST, BAR)
    assert measured.decision == "inconclusive"
    assert measured.fraction.low < BAR <= measured.fraction.high


def test_the_reference_speedup_is_measured_alongside_in_every_round() -> None:
    machine = Machine(3, busy=2.0)
    measured = timing.measure(_pair(machine, ORIGINAL_S, CONTROL_S, CONTROL_S), FAST, BAR)
    figures = timing.summary(measured)
    assert figures["reference_speedup_alongside"] == pytest.approx(ORIGINAL_S / CONTROL_S, rel=0.1)
    assert figures["rounds"] >= FAST.min_rounds and figures["images_per_round"] == 8
    assert figures["decision"] == "pass"


def test_every_optimised_output_is_checked_against_the_originals() -> None:
    machine = Machine(1, busy=0.0)
    pair = _pair(machine, ORIGINAL_S, CONTROL_S, CONTROL_S)
    seen: list[str] = []
    pair.check = lambda value, expected, where: seen.append(where)
    round_ = pair.round(8, "round 1", candidate_first=True)
    assert len(seen) == 8 == len(round_.optimised) == len(round_.original) == len(round_.control)


# ---------------------------------------------------------------- the interval itself (grader.judge.paired)

def test_the_median_interval_widens_with_confidence_and_narrows_with_rounds() -> None:
    rng = random.Random(5)
    values = [rng.lognormvariate(0.0, 0.2) for _ in range(200)]
    ninety, ninety_nine = median_interval(values, 0.90), median_interval(values, 0.99)
    assert ninety.low >= ninety_nine.low and ninety.high <= ninety_nine.high
    assert median_interval(values[:15], 0.99).relative_width > 2 * ninety_nine.relative_width
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0] * 3, 0.99).median == 3.0


def test_too_few_rounds_give_no_interval_and_no_verdict() -> None:
    interval = median_interval([1.0, 2.0, 3.0], 0.99)  # 2 * 0.5**3 > 0.01: no order statistic covers
    assert (interval.low, interval.high) == (-math.inf, math.inf)
    assert decide(interval, 0.5) == "inconclusive"


def test_the_interval_covers_the_true_median_as_often_as_it_says() -> None:
    rng = random.Random(11)
    misses = 0
    for _ in range(400):
        sample = [rng.lognormvariate(0.0, 0.3) for _ in range(25)]  # true median 1.0
        interval = median_interval(sample, 0.95)
        misses += not interval.low <= 1.0 <= interval.high
    assert misses <= 0.05 * 400 * 1.8  # about 5 % expected; far more would mean the interval lies


@pytest.mark.parametrize(("low", "median", "high", "decision"), [
    (0.62, 0.7, 0.8, "pass"),           # all of it clears the bar
    (0.6, 0.7, 0.8, "pass"),            # exactly at the bar counts as meeting it
    (0.4, 0.5, 0.59, "fail"),           # all of it misses
    (0.5, 0.65, 0.8, "inconclusive"),   # straddles, and wide
    (0.595, 0.605, 0.615, "pass"),      # straddles, but as precise as it gets: the median decides
    (0.585, 0.595, 0.605, "fail"),
])
def test_decisions_against_the_bar(low: float, median: float, high: float, decision: str) -> None:
    assert decide(MedianInterval(low, median, high, 20, 0.99), 0.6, precision=0.03) == decision


def test_a_round_pairs_each_image_across_the_three_callables() -> None:
    order: list[str] = []
    counter = itertools.count()

    def remote(name: str) -> Callable[[torch.Tensor], tuple[torch.Tensor, float]]:
        return lambda image: (order.append(name), (image.sum(), 0.001 + next(counter) * 0))[1]

    @contextlib.contextmanager
    def freeze() -> Iterator[str]:
        order.append("freeze")
        yield "frozen"
        order.append("thaw")

    pair = timing.Pair(original=remote("original"), optimised=remote("optimised"), control=remote("control"),
                       check=lambda value, expected, where: None,
                       images=lambda count, seed: torch.zeros(count, 3, 4, 4), seed=1, freeze=freeze)
    pair.round(2, "r", candidate_first=False)
    # The reference's side runs frozen and first; the candidate's after the thaw.
    assert order == ["freeze", "original", "control", "control", "original", "thaw", "optimised", "optimised"]
