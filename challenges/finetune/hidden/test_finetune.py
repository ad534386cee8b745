"""Hidden checks for finetune: a small task, the time budget, accuracy on held-back images, consistent
predictions, and nothing left running.

The training set and backbone are in the candidate's worker (assets); training is timed on
the judge's clock, stopped at the budget plus a little grace, and runs once per grading
(``finetune_judge.main_run``); the checks after it reuse it. Its reply carries the trained
model as plain data, which the reference's worker (our code only) rebuilds and predicts with
(``finetune_judge.Evaluator``): the test images never reach the candidate's worker, their
labels never leave the judge, and accuracy is computed here. Thresholds come from
thresholds.toml, by hardware class.
"""

from __future__ import annotations

import finetune_judge as judge
import torch

SMALL_CLASSES = (1, 4, 8)  # three classes of the training set (renumbered 0, 1, 2 by the adapter)
SMALL_PER_CLASS = 8
CONSISTENCY_IMAGES = 12


def _limits(calibration, reference, record) -> tuple[judge.Thresholds, float]:
    limits = judge.thresholds(calibration.hardware_class)
    budget = judge.budget_s(limits, calibration, reference, record)
    record.metric("hardware_entry", limits.hardware)
    record.metric("time_budget_s", budget)
    return limits, budget


def test_small_task(candidate, reference, calibration, record):
    """finetune on 3 classes of 8 images with a short budget: logits of shape [B, 3], finite, in time."""
    limits = judge.thresholds(calibration.hardware_class)
    labels = torch.tensor(candidate.call("adapter.describe", timeout_s=60)["labels"])
    indices = [int(i) for c in SMALL_CLASSES for i in torch.nonzero(labels == c).flatten()[:SMALL_PER_CLASS]]
    run = judge.train(candidate, limits.small_budget_s, indices=indices, slot="small")
    assert not run.failure, f"on a task of 3 classes: {run.failure}"
    assert run.info.get("num_classes") == len(SMALL_CLASSES), "the adapter saw the wrong number of classes"
    record.metric("small_task_train_s", round(run.seconds, 2))
    evaluator = judge.Evaluator(reference, limits)
    evaluator.load(run, "candidate-small")
    evaluator.predict(judge.test_set().images[:10], "candidate-small", len(SMALL_CLASSES), limits.eval_min_s,
                      "logits of a model fine-tuned with num_classes=3, for 10 images")


def test_time_budget(candidate, reference, calibration, record):
    """The main training run (all training images) returns within its time budget."""
    _, budget = _limits(calibration, reference, record)
    run = judge.main_run(candidate, "candidate", budget)
    if run.seconds == run.seconds:  # not NaN: the call came back
        record.metric("train_s", round(run.seconds, 2))
    assert not run.failure, run.failure


def test_accuracy_partial(candidate, reference, calibration, record):
    """Test accuracy of at least the partial-credit threshold."""
    limits, budget = _limits(calibration, reference, record)
    run = judge.trained(candidate, "candidate", budget)
    accuracy = judge.accuracy(judge.test_logits(judge.Evaluator(reference, limits), run, record))
    record.metric("accuracy", round(accuracy, 4))
    assert accuracy >= limits.partial_accuracy, (
        f"accuracy on the held-back test images is {accuracy:.1%}, below {limits.partial_accuracy:.0%} "
        f"(partial credit) and {limits.pass_accuracy:.0%} (pass)"
    )


def test_accuracy(candidate, reference, calibration, record):
    """Test accuracy of at least the pass threshold (a gate)."""
    limits, budget = _limits(calibration, reference, record)
    run = judge.trained(candidate, "candidate", budget)
    accuracy = judge.accuracy(judge.test_logits(judge.Evaluator(reference, limits), run, record))
    record.metric("accuracy", round(accuracy, 4))
    assert accuracy >= limits.pass_accuracy, (
        f"accuracy on the held-back test images is {accuracy:.1%}; passing needs {limits.pass_accuracy:.0%}"
    )


def test_consistent_predictions(candidate, reference, calibration, record):
    """An image's logits do not depend on the other images in its batch, nor on earlier predictions."""
    limits, budget = _limits(calibration, reference, record)
    run = judge.trained(candidate, "candidate", budget)
    num_classes = int(run.info["num_classes"])
    evaluator = judge.Evaluator(reference, limits)
    evaluator.load(run, "candidate-main")  # afresh: as finetune returned it, whatever was predicted before
    images = judge.test_set().images[-CONSISTENCY_IMAGES:]
    what = f"logits of a batch of {len(images)} test images"
    together = evaluator.predict(images, "candidate-main", num_classes, limits.eval_min_s, what)
    alone = torch.cat([
        evaluator.predict(images[i:i + 1], "candidate-main", num_classes, limits.eval_min_s,
                          "logits of one test image")
        for i in range(len(images))
    ])
    again = evaluator.predict(images, "candidate-main", num_classes, limits.eval_min_s, what)
    # Loose enough for TF32 convolutions and batch-size-dependent kernels on a GPU; batch statistics
    # or dropout change logits by a sizeable fraction of their range.
    scale = float(together.abs().max()) + 1.0
    tolerance = 1e-2 * scale
    assert float((alone - together).abs().max()) <= tolerance, (
        "an image's logits change with the other images in its batch (predicted alone vs in a batch): "
        "is the model still in training mode (batch norm using batch statistics)?"
    )
    assert float((again - together).abs().max()) <= tolerance, (
        "predicting the same batch twice gives different logits: the model changes when it is used "
        "(dropout or batch norm in training mode?)"
    )


def test_no_work_outside_finetune(candidate, reference, calibration, record):
    """Training happens inside finetune: nothing heavy at import, nothing left running after it returns."""
    limits, budget = _limits(calibration, reference, record)
    run = judge.trained(candidate, "candidate", budget)
    info = run.info
    threads = [str(name) for name in info.get("threads_left", [])]
    assert not threads, (
        f"finetune left {len(threads)} thread(s) running after it returned ({', '.join(threads[:3])}): "
        "all training must be finished when finetune returns"
    )
    assert int(info.get("processes_left", 0)) == 0, (
        "finetune left child processes running after it returned: all training must be finished when "
        "finetune returns (DataLoader workers must be shut down)"
    )
    at_import = [str(name) for name in info.get("threads_at_import", [])]
    assert not at_import, (
        f"importing your solution started {len(at_import)} thread(s): do the work inside finetune"
    )
    import_cpu_s = float(info.get("import_cpu_s", 0.0))
    record.metric("import_cpu_s", round(import_cpu_s, 2))
    assert import_cpu_s <= limits.import_cpu_limit_s, (
        f"importing your solution used {import_cpu_s:.0f} s of CPU time (the limit is "
        f"{limits.import_cpu_limit_s:.0f} s, importing torch included): train inside finetune, where the "
        "time budget counts"
    )
