"""Hidden check: the candidate's speed-up over the original model, against the reference's on this machine.

The original model is timed in the reference's worker (a clean sandbox with the same
limits), never in the candidate's, where the candidate's code could slow it down. The
candidate's callable is timed in its own worker. The two alternate call by call on the
same fresh images, on the judge's clock, and every candidate output is checked against
the original's. The bar is a fraction of the reference solution's own speed-up, measured
the same way on this machine (cached per machine and challenge version by the
``calibration`` fixture). See latency_timing.py for the protocol and its noise gate.
"""

from __future__ import annotations

import secrets
import statistics
import sys
from pathlib import Path

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

import latency_kit as kit
import latency_timing as timing

# Between the partial solutions measured in tools/README.md: float32 and inference mode with
# the Python loops left reach about 0.5 of the reference, grouped convs and float32 without
# inference mode about 0.75.
FRACTION_OF_REFERENCE = 0.6
CALL_TIMEOUT_RATIO = 20.0  # a candidate call slower than 20x the original is stopped
PROBE_CALLS = 40  # caching probe: the same image again and again, against fresh ones
REVIEW_RATIO = 10.0  # speed-ups above 10x the reference's are flagged for a person to look at


def _check(value, expected, where: str) -> None:
    got = kit.as_logits(value, f"the optimised callable ({where})")
    want = kit.as_logits(expected, f"the original model ({where})")
    assert kit.logits_error(got, want) <= 1.0, (
        f"the optimised callable returned wrong logits during the speed measurement ({where}): "
        f"not within {kit.ATOL:g} + {kit.RTOL:g}*|expected| of the original model's"
    )


def _remote(session, function: str, timeout_s: float):
    def call(image):
        return session.timed(function, image, timeout_s=timeout_s)
    return call


def _pair(original_session, optimised_session, seed: int, timeout_s: float, control_session=None) -> timing.Pair:
    """The original in ``original_session`` against the callable in ``optimised_session``.

    With ``control_session``, that session's callable (the reference's) is timed alongside.
    """
    return timing.Pair(
        original=_remote(original_session, "adapter.run_original", kit.CALL_TIMEOUT_S),
        optimised=_remote(optimised_session, "adapter.run_optimized", timeout_s),
        check=_check,
        images=kit.synthetic_images,
        seed=seed,
        control=_remote(control_session, "adapter.run_optimized", kit.CALL_TIMEOUT_S) if control_session else None,
    )


def _repeated_input_ratio(pair: timing.Pair) -> float:
    """p50 on one image sent again and again / p50 on fresh images (alternated): well under 1 means caching."""
    fresh = pair.fresh(PROBE_CALLS)
    repeated_image = pair.fresh(1)
    repeated_s, fresh_s = [], []
    for index in range(PROBE_CALLS):
        for image, times in ((repeated_image, repeated_s), (fresh[index:index + 1], fresh_s)):
            expected, _ = pair.original(image.clone())
            value, seconds = pair.optimised(image.clone())
            pair.check(value, expected, f"caching probe, call {index + 1}")
            times.append(seconds)
    return statistics.median(repeated_s) / statistics.median(fresh_s)


def test_speed(candidate, reference, record, calibration):
    device = kit.reference_device(reference)
    protocol = timing.GPU if device == "cuda" else timing.CPU
    kit.prepare(reference, 0)
    kit.prepare(candidate, secrets.randbits(31))
    record.metric("hardware_class", calibration.hardware_class)

    measured: dict[str, float] = {}

    def measure_reference() -> tuple[float, float]:
        if not measured:
            def report(runs: list[timing.Run]) -> None:
                for key, value in timing.summary(runs, protocol).items():
                    record.metric(f"calibration_{key}", value)

            pair = _pair(reference, reference, secrets.randbits(31), kit.CALL_TIMEOUT_S)
            measured["speedup"], measured["original_s"] = timing.calibrate(pair, protocol, report)
        return measured["speedup"], measured["original_s"]

    # Warm up first: a callable that returns wrong logits fails here, before any calibration.
    pair = _pair(reference, candidate, secrets.randbits(31), kit.CALL_TIMEOUT_S, control_session=reference)
    original_s, optimised_s = timing.warm_up(pair, protocol, "warm-up")
    pair.optimised = _remote(candidate, "adapter.run_optimized", max(1.0, CALL_TIMEOUT_RATIO * original_s))

    reference_speedup = calibration.value("reference_speedup", lambda: measure_reference()[0])
    baseline_s = calibration.value("original_p50_ms", lambda: measure_reference()[1] * 1e3) / 1e3
    threshold = FRACTION_OF_REFERENCE * reference_speedup
    if measured:  # the calibration ran in between: warm the candidate's side up again
        original_s, optimised_s = timing.warm_up(pair, protocol, "warm-up")
    samples = timing.samples_per_run(protocol, original_s, optimised_s)
    runs = [timing.measure_run(pair, samples, f"run {r + 1}") for r in range(protocol.runs)]
    verdict = timing.decide(runs, threshold, protocol, baseline_s, reference_speedup)
    while verdict is None and len(runs) < protocol.runs + protocol.extra_runs:
        runs.append(timing.measure_run(pair, samples, f"run {len(runs) + 1}"))
        verdict = timing.decide(runs, threshold, protocol, baseline_s, reference_speedup)

    figures = timing.summary(runs, protocol, reference_speedup)
    for key, value in figures.items():
        record.metric(key, value)
    record.metric("reference_speedup", round(reference_speedup, 3))
    record.metric("required_speedup", round(threshold, 3))
    slowdown = figures["original_p50_ms"] / (baseline_s * 1e3)
    record.metric("original_slowdown_vs_calibration", round(slowdown, 3))
    last = runs[-1]
    record.distribution(
        "latency of one image, last run", [t * 1e3 for t in last.optimised.seconds], unit="ms",
        baseline=[t * 1e3 for t in last.original.seconds], label="optimised", baseline_label="original model",
    )
    record.gauge("speed-up over the original model", figures["speedup"], threshold=threshold, unit="x")
    ratio = _repeated_input_ratio(pair)
    record.metric("repeated_input_time_ratio", round(ratio, 3))
    record.metric("caching_suspected", "yes" if ratio < 0.9 else "no")
    record.metric("review_suspiciously_fast", "yes" if figures["speedup"] > REVIEW_RATIO * reference_speedup else "no")

    described = (
        f"the speed-up over the original model was {figures['speedup']:.2f}x (median of {len(runs)} runs, "
        f"spread {figures['speedup_spread']:.0%}); this machine asks for at least {threshold:.2f}x, "
        f"{FRACTION_OF_REFERENCE:g} of the reference solution's {reference_speedup:.2f}x"
    )
    if verdict is None:
        busy = f"the original model ran {slowdown:.2f}x as slow as at calibration; " if slowdown > 1.1 else ""
        controlled = figures.get("controlled_speedup", figures["speedup"])
        raise timing.TimingInconclusive(
            f"timing inconclusive: {described}, and the machine was too busy to be sure ({busy}"
            f"{figures['quiet_runs']} of {len(runs)} runs quiet; corrected for the machine's state with the "
            f"reference's callable timed alongside, {controlled:.2f}x); nothing was scored: grade again "
            "when the machine is quieter"
        )
    assert verdict, described
