"""Hidden checks for `compress`: the time budget, an artifact the grader rebuilds, its size, accuracy, speed.

compress() runs once per grading in the candidate's worker (``compress_judge.submission``),
which is stopped as soon as the packed artifact is back. Size is the length of those bytes;
accuracy and latency are measured on the model the challenge's own loader rebuilds from
them, in the evaluator (the reference's worker, which runs no candidate code), on hidden
images whose labels never leave the judge.
"""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

import compress_judge as judge
import compress_speed as speed


def test_time_budget(candidate, reference, record):
    """compress returns within its time budget, on the judge's clock."""
    result = judge.submission(candidate, reference)
    if result.seconds == result.seconds:  # not NaN: the call came back
        record.metric("compress_s", round(result.seconds, 2))
    record.metric("time_budget_s", result.budget_s)
    assert "time budget exceeded" not in result.failure, result.failure


def test_artifact(candidate, reference, record):
    """The artifact is well-formed; the challenge's loader rebuilds it and it returns finite logits."""
    result = judge.loaded(candidate, reference)
    record.metric("artifact_nodes", result.info.get("nodes", 0))
    record.metric("artifact_engine", str(result.info.get("engine", "")))
    for op, count in sorted(result.info.get("ops", {}).items()):
        record.metric(f"artifact_ops.{op}", count)
    judge.predictions(reference, "compressed")


def _size_ratio(candidate, reference, record) -> float:
    result = judge.artifact(candidate, reference)
    original = judge.original_bytes()
    ratio = original / max(result.size_bytes, 1)
    record.metric("size_bytes", result.size_bytes)
    record.metric("original_size_bytes", original)
    record.metric("size_ratio", round(ratio, 3))
    for dtype, count in sorted(result.info.get("tensor_bytes", {}).items()):
        record.metric(f"tensor_bytes.{dtype}", count)
    return ratio


def test_size_partial(candidate, reference, record):
    """At least PARTIAL_SIZE_RATIO times smaller than the original, in packed bytes."""
    ratio = _size_ratio(candidate, reference, record)
    assert ratio >= judge.PARTIAL_SIZE_RATIO, (
        f"the packed artifact is {ratio:.2f}x smaller than the original model; partial credit needs "
        f"{judge.PARTIAL_SIZE_RATIO:g}x and passing {judge.MIN_SIZE_RATIO:g}x"
    )


def test_size(candidate, reference, record):
    """At least MIN_SIZE_RATIO times smaller than the original, in packed bytes (a gate)."""
    ratio = _size_ratio(candidate, reference, record)
    record.gauge("size reduction", ratio, threshold=judge.MIN_SIZE_RATIO, unit="x")
    assert ratio >= judge.MIN_SIZE_RATIO, (
        f"the packed artifact is {ratio:.2f}x smaller than the original model "
        f"({judge.artifact(candidate, reference).size_bytes} bytes against {judge.original_bytes()}); "
        f"passing needs {judge.MIN_SIZE_RATIO:g}x"
    )


def _accuracy_drop(candidate, reference, record) -> float:
    judge.loaded(candidate, reference)
    original = judge.accuracy(reference, "original")
    compressed = judge.accuracy(reference, "compressed")
    agreement = float((judge.predictions(reference, "original") == judge.predictions(reference, "compressed"))
                      .double().mean())
    record.metric("original_accuracy", round(original, 4))
    record.metric("accuracy", round(compressed, 4))
    record.metric("top1_agreement_with_original", round(agreement, 4))
    drop = 100 * (original - compressed)
    record.metric("accuracy_drop_points", round(drop, 2))
    return drop


def test_accuracy_partial(candidate, reference, record):
    """Top-1 accuracy on the hidden images at most PARTIAL_ACCURACY_DROP points below the original's."""
    drop = _accuracy_drop(candidate, reference, record)
    assert drop <= judge.PARTIAL_ACCURACY_DROP, (
        f"top-1 accuracy on {judge.TEST_COUNT} hidden images is {drop:.1f} points below the original model's; "
        f"partial credit allows {judge.PARTIAL_ACCURACY_DROP:g} and passing {judge.MAX_ACCURACY_DROP:g}"
    )


def test_accuracy(candidate, reference, record):
    """Top-1 accuracy on the hidden images at most MAX_ACCURACY_DROP points below the original's (a gate)."""
    drop = _accuracy_drop(candidate, reference, record)
    record.gauge("accuracy lost", drop, threshold=judge.MAX_ACCURACY_DROP, unit=" points", higher_is_better=False)
    assert drop <= judge.MAX_ACCURACY_DROP, (
        f"top-1 accuracy on {judge.TEST_COUNT} hidden images is {drop:.2f} points below the original model's; "
        f"passing allows {judge.MAX_ACCURACY_DROP:g}"
    )


def test_speed(candidate, reference, record):
    """At batch size 1 on the CPU, the rebuilt model is at least as fast as the original (timed in the evaluator)."""
    judge.loaded(candidate, reference)
    speed.check(reference, record)
