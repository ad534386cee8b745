"""The judge's side of the finetune challenge: thresholds, the held-back test set, one training run per solution.

Imported by the hidden checks (never shipped to a worker). The training run is
shared: the first check that needs the trained model runs ``adapter.train`` on
the judge's clock, and the others reuse its outcome, including a failure, whose
message they repeat.

The candidate's worker only trains. Its reply carries the trained model as plain
data (``assets/plain_model.py``), exported inside the timed call; the judge hands
that to the reference's worker, which runs only our code, to rebuild and predict
(``Evaluator``). So what is scored is the state finetune returned, the candidate's
code never sees a held-back image, and the time predicting takes is held against
the time the challenge's own architecture takes in the same worker.
"""

from __future__ import annotations

import importlib.util
import math
import re
import secrets
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grader.judgekit import CallFailure, Outcome, expect_tensor
from harness.sandbox import SandboxUnavailable

HIDDEN = Path(__file__).resolve().parent
CHALLENGE = HIDDEN.parent
ASSETS = CHALLENGE / "assets"

# The judge stops a training call at budget * (1 + GRACE_FRACTION) + GRACE_S: process start-up
# noise and the channel are not the candidate's fault. Past that it is "time budget exceeded".
GRACE_FRACTION = 0.10
GRACE_S = 2.0
EVAL_BATCH = 100
LOAD_TIMEOUT_S = 60.0  # rebuilding a model in the trusted worker


def _data_module() -> Any:
    name = "cvgrade_judge_finetune_data"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ASSETS / "finetune_data.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ---------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Thresholds:
    hardware: str  # the table entry used: "cpu", a cuda-* class, or "gpu" (the default for GPUs)
    budget_s: float
    small_budget_s: float
    pass_accuracy: float
    partial_accuracy: float
    calibrated: bool
    benchmark_s: float | None  # this entry's figure for adapter.benchmark; None: do not scale the budget
    benchmark_steps: int
    scale_limits: tuple[float, float]
    eval_ratio: float  # predicting the test set may take this many times the reference architecture's time
    eval_min_s: float  # ... and never less than this; also the limit of each small prediction
    import_cpu_limit_s: float


def _table() -> dict[str, Any]:
    return tomllib.loads((HIDDEN / "thresholds.toml").read_text(encoding="utf-8"))


def thresholds(hardware_class: str) -> Thresholds:
    """The entry for ``hardware_class``, else the default GPU entry for any cuda-* class."""
    table = _table()["hardware"]
    name = hardware_class if hardware_class in table else ("cpu" if hardware_class == "cpu" else "gpu")
    entry = table[name]
    return Thresholds(
        hardware=name,
        budget_s=float(entry["budget_s"]),
        small_budget_s=float(entry["small_budget_s"]),
        pass_accuracy=float(entry["pass_accuracy"]),
        partial_accuracy=float(entry["partial_accuracy"]),
        calibrated=bool(entry["calibrated"]),
        benchmark_s=float(entry["benchmark_s"]) if "benchmark_s" in entry else None,
        benchmark_steps=int(entry.get("benchmark_steps", 10)),
        scale_limits=(float(entry.get("min_scale", 1.0)), float(entry.get("max_scale", 1.0))),
        eval_ratio=float(entry["eval_ratio"]),
        eval_min_s=float(entry["eval_min_s"]),
        import_cpu_limit_s=float(entry["import_cpu_limit_s"]),
    )


def benchmark_seconds(reference: Any, steps: int) -> float:
    """The reference worker's time for adapter.benchmark(steps): the fastest of three, after a warm-up."""
    reference.call("adapter.benchmark", 2, timeout_s=120)
    return min(reference.timed("adapter.benchmark", steps, timeout_s=120)[1] for _ in range(3))


def budget_s(limits: Thresholds, calibration: Any, reference: Any, record: Any) -> float:
    """The training budget on this machine: the table's, scaled by how fast this machine ran the benchmark.

    The benchmark figure is cached per machine by reference runs (``calibration.value``), so
    a candidate's run cannot change it, and scaling is clamped to the table's limits.
    """
    if limits.benchmark_s is None:
        return limits.budget_s
    measured = calibration.value(f"benchmark_{limits.benchmark_steps}_steps_s",
                                 lambda: benchmark_seconds(reference, limits.benchmark_steps))
    low, high = limits.scale_limits
    scale = min(max(measured / limits.benchmark_s, low), high)
    record.metric("budget_scale", round(scale, 3))
    return round(limits.budget_s * scale, 1)


def stop_after_s(budget: float) -> float:
    return budget * (1 + GRACE_FRACTION) + GRACE_S


# ---------------------------------------------------------------------------- the test set


@dataclass
class TestSet:
    images: torch.Tensor  # uint8 [N, 3, S, S]
    labels: torch.Tensor  # int64 [N]
    classes: list[str]


_TEST: list[TestSet] = []


def test_set() -> TestSet:
    if not _TEST:
        data = _data_module()
        path = CHALLENGE / "hidden" / str(_table()["test"]["path"])
        config = data.DataConfig.load(ASSETS)
        loaded = data.load_images(path, config.image_size)
        train_classes = data.load_images(config.folder / config.train, config.image_size).classes
        if list(loaded.classes) != list(train_classes):
            # A challenge set up wrongly (see NOTES.md, "Using your own data set"), not the candidate's fault.
            raise RuntimeError(f"the test set's classes {loaded.classes} are not the training set's {train_classes}")
        _TEST.append(TestSet(loaded.images, loaded.labels, loaded.classes))
    return _TEST[0]


# ---------------------------------------------------------------------------- the training run


@dataclass
class Run:
    """One call of adapter.train: what it reported, or why it failed."""

    budget_s: float
    seconds: float = math.nan
    info: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None  # the trained model as plain data (assets/plain_model.py)
    failure: str = ""
    logits: torch.Tensor | None = None  # on the whole test set, once predicted


_RUNS: dict[str, Run] = {}


def train(solution: Any, budget: float, *, indices: list[int] | None = None, slot: str = "main") -> Run:
    """Run adapter.train on the judge's clock; a call past the budget (plus grace) is stopped.

    The clock stops when the reply, with the exported model in it, has arrived: exporting is
    part of the call, so whatever the model's code does while it is exported is timed too.
    """
    run = Run(budget_s=budget)
    limit = stop_after_s(budget)
    try:
        info, seconds = solution.timed("adapter.train", budget, secrets.randbits(31), indices, slot,
                                       timeout_s=limit)
    except CallFailure as failure:
        if failure.outcome is Outcome.TIMED_OUT:
            run.failure = (f"time budget exceeded: finetune did not return within its time_budget_s of "
                           f"{budget:g} s (stopped at {limit:.0f} s)")
        else:
            run.failure = in_candidate_terms(failure).message
        return run
    run.seconds = seconds
    if not isinstance(info, dict):
        run.failure = "the training call returned something unexpected"
        return run
    model = info.pop("model", None)
    run.model = model if isinstance(model, dict) else None
    run.info = info
    if seconds > limit:
        run.failure = (f"time budget exceeded: finetune took {seconds:.1f} s, its time_budget_s was {budget:g} s")
    return run


def main_run(solution: Any, label: str, budget: float) -> Run:
    """The training run on the whole training set; made once per solution, by whichever check comes first."""
    if label not in _RUNS:
        _RUNS[label] = train(solution, budget)
    return _RUNS[label]


def trained(solution: Any, label: str, budget: float) -> Run:
    """The main run, which must have succeeded: else fail with its reason."""
    run = main_run(solution, label, budget)
    assert not run.failure, f"no trained model to check: {run.failure}"
    return run


def in_candidate_terms(failure: CallFailure) -> CallFailure:
    """The same failure, naming finetune and the model rather than the adapter functions around them."""
    message = (failure.message.replace("adapter.train()", "finetune()")
               .replace("adapter.predict()", "the model returned by finetune"))
    return CallFailure(failure.outcome, message, detail=failure.detail, output=failure.output)


# ---------------------------------------------------------------------------- predicting, in a trusted worker

# How a failure in the trusted worker is told: by what happened, never by the text of the error, since
# it was raised while the candidate's graph ran on held-back images and could carry their values.
_TRUSTED_FAILURES = {
    Outcome.RAISED: "raised {kind}",
    Outcome.TIMED_OUT: "took longer than {limit}",
    Outcome.OUT_OF_MEMORY: "ran out of memory",
    Outcome.CRASHED: "crashed the process predicting with it",
    Outcome.BAD_VALUE: "returned something that is not a tensor of logits",
    Outcome.OUTPUT_LIMIT: "printed more than the output limit",
}


class Evaluator:
    """Predicts with the candidate's trained models in the reference's worker, which runs only our code.

    ``load`` rebuilds a model there from the plain data ``adapter.train`` replied with;
    ``predict`` runs it on images. Failures are the candidate's, told by what happened.
    """

    def __init__(self, trusted: Any, limits: Thresholds) -> None:
        self._trusted = trusted
        self._limits = limits

    def load(self, run: Run, slot: str) -> None:
        """Rebuild ``run``'s model in the trusted worker under ``slot`` (again, if it was there: a fresh state)."""
        if run.model is None:
            reason = run.info.get("export_error") if isinstance(run.info.get("export_error"), str) else ""
            raise AssertionError(f"the model returned by finetune cannot be graded: {reason or 'it was not sent'}")
        try:
            self._trusted.call("adapter.load_model", run.model, slot, timeout_s=LOAD_TIMEOUT_S)
        except CallFailure as failure:
            if failure.outcome is Outcome.RAISED:  # our rebuilding code refused the description: it says why
                raise AssertionError("the model returned by finetune could not be rebuilt from its layers and "
                                     f"weights: {failure.message[:500]}") from None
            raise AssertionError(f"rebuilding the model returned by finetune {self._told(failure, LOAD_TIMEOUT_S)}"
                                 ) from None

    def predict(self, images: torch.Tensor, slot: str, num_classes: int, limit_s: float, what: str) -> torch.Tensor:
        """Logits for ``images`` in batches of EVAL_BATCH, within ``limit_s`` in all; each checked."""
        out = []
        deadline = time.monotonic() + limit_s
        for start in range(0, len(images), EVAL_BATCH):
            batch = images[start:start + EVAL_BATCH]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{what}: predicting {len(images)} images took more than {limit_s:.3g} s")
            try:
                logits = self._trusted.call("adapter.predict", batch, slot, timeout_s=remaining)
            except CallFailure as failure:
                raise AssertionError(f"{what}: the model returned by finetune {self._told(failure, limit_s)}"
                                     ) from None
            out.append(check_logits(logits, len(batch), num_classes, what))
        return torch.cat(out)

    def timed_predict(self, images: torch.Tensor, slot: str, num_classes: int, limit_s: float,
                      what: str) -> tuple[torch.Tensor, float]:
        started = time.monotonic()
        logits = self.predict(images, slot, num_classes, limit_s, what)
        return logits, time.monotonic() - started

    def baseline_s(self, images: torch.Tensor, num_classes: int) -> float:
        """How long the challenge's own architecture (backbone + linear head) takes to predict ``images`` here."""
        self._trusted.call("adapter.load_baseline", num_classes, "baseline", timeout_s=LOAD_TIMEOUT_S)
        started = time.monotonic()
        for start in range(0, len(images), EVAL_BATCH):
            self._trusted.call("adapter.predict", images[start:start + EVAL_BATCH], "baseline", timeout_s=120)
        return time.monotonic() - started

    @staticmethod
    def _told(failure: CallFailure, limit_s: float) -> str:
        if failure.outcome is Outcome.IMPORT_FAILED:  # the reference's worker itself is broken: ours
            raise SandboxUnavailable("the trusted worker that predicts with the candidate's model failed to start")
        sentence = _TRUSTED_FAILURES.get(failure.outcome, "failed")
        raised = re.search(r" raised ([A-Za-z_]\w{0,60})", failure.message)
        return sentence.format(kind=raised.group(1) if raised else "an exception", limit=f"{limit_s:.3g} s")


def check_logits(value: Any, batch: int, num_classes: int, what: str) -> torch.Tensor:
    value = expect_tensor(value, what=what, shape=(batch, num_classes))
    assert value.is_floating_point(), f"{what}: logits must be a floating-point tensor, got {value.dtype}"
    logits = value.detach().to(torch.float64)
    assert bool(torch.isfinite(logits).all()), f"{what}: some logits are NaN or infinite"
    return logits


def test_logits(evaluator: Evaluator, run: Run, record: Any) -> torch.Tensor:
    """The trained model's logits on the whole test set (predicted once, then reused).

    The time allowed is ``eval_ratio`` times what the challenge's own architecture takes in the
    same worker (at least ``eval_min_s``): predicting is no place to do more work.
    """
    if run.logits is None:
        data = test_set()
        num_classes = int(run.info.get("num_classes", -1))
        assert num_classes == len(data.classes), (
            f"the trained model was set up for {num_classes} classes, the task has {len(data.classes)}")
        limits = evaluator._limits
        baseline_s = evaluator.baseline_s(data.images, num_classes)
        limit_s = max(limits.eval_min_s, limits.eval_ratio * baseline_s)
        evaluator.load(run, "candidate-main")
        run.logits, seconds = evaluator.timed_predict(data.images, "candidate-main", num_classes, limit_s,
                                                      "logits of the test images")
        record.metric("predict_s", round(seconds, 3))
        record.metric("predict_baseline_s", round(baseline_s, 3))
        record.metric("predict_limit_s", round(limit_s, 2))
    return run.logits


def accuracy(logits: torch.Tensor) -> float:
    labels = test_set().labels
    return float((logits.argmax(1) == labels).double().mean())
