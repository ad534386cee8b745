"""The judge's side of `compress`: one compression per grading, the size of its bytes, the evaluator.

Imported by the hidden checks (never shipped to a worker). The first check that needs the
artifact calls ``adapter.compress`` in the candidate's worker on the judge's clock, keeps the
bytes it returns, and stops that worker: nothing of the candidate runs after that. The size
is the length of those bytes. The same bytes go to the **evaluator**, the reference's worker
(it runs no candidate code), which rebuilds the model with the challenge's own loader
(``assets/compact.py``); accuracy and latency are measured there. Later checks reuse the
outcome, including a failure, whose message they repeat.
"""

from __future__ import annotations

import importlib.util
import math
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from grader.judgekit import CallFailure, Outcome, expect_tensor

HIDDEN = Path(__file__).resolve().parent
ASSETS = HIDDEN.parent / "assets"

# Thresholds: see NOTES.md for the figures behind them.
BUDGET_S = 60.0  # compress() on the CPU, measured by the judge
GRACE_FRACTION, GRACE_S = 0.10, 2.0  # stopped at budget * 1.1 + 2 s: start-up noise is not the candidate's
MIN_SIZE_RATIO = 3.0  # the original's bytes / the artifact's bytes
PARTIAL_SIZE_RATIO = 1.5
MAX_ACCURACY_DROP = 1.0  # points of top-1 accuracy below the original's, on the hidden images
PARTIAL_ACCURACY_DROP = 3.0
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024  # compact.MAX_BYTES: larger replies are refused by the judge

TEST_SEED, TEST_COUNT = 8_100_000, 2000  # hidden images: seeds that never leave the judge
EVAL_BATCH = 50
LOAD_TIMEOUT_S = 60.0
# Per batch: the format caps a model at about 4x the original's multiply-adds per image (compact.MAX_MACS),
# so 50 images of the heaviest model it runs take seconds, not minutes, even on a busy machine.
EVAL_TIMEOUT_S = 60.0


def _load(name: str, path: Path) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def compact() -> ModuleType:
    return _load("cvgrade_judge_compress_compact", ASSETS / "compact.py")


def synthetic() -> ModuleType:
    return _load("cvgrade_judge_compress_synthetic", ASSETS / "synthetic.py")


def hidden_images() -> tuple[torch.Tensor, torch.Tensor]:
    """``TEST_COUNT`` images like the training data, from a seed that never leaves the judge, and their labels."""
    if "images" not in _STATE:
        _STATE["images"] = synthetic().make_images(TEST_COUNT, TEST_SEED)
    return _STATE["images"]


def original_bytes() -> int:
    """The original model's size: its float32 weights exported as they are, packed."""
    if "original_bytes" not in _STATE:
        original = _load("cvgrade_judge_compress_model", ASSETS / "model.py").load_model(str(ASSETS / "shapecnn.pt"))
        _STATE["original_bytes"] = len(compact().pack(compact().export_float(original)))
    return int(_STATE["original_bytes"])


# ---------------------------------------------------------------------------- the artifact


@dataclass
class Submission:
    """What the candidate's compress() gave, and what the evaluator made of it."""

    budget_s: float
    seconds: float = math.nan
    blob: torch.Tensor | None = None  # the packed artifact, as received
    failure: str = ""  # why there is no artifact (time budget, an exception, a malformed reply)
    load_failure: str = ""  # why the evaluator could not rebuild it
    info: dict[str, Any] = field(default_factory=dict)  # what the evaluator says it is made of

    @property
    def size_bytes(self) -> int:
        assert self.blob is not None
        return int(self.blob.numel())


_STATE: dict[str, Any] = {}


def stop_after_s(budget: float) -> float:
    return budget * (1 + GRACE_FRACTION) + GRACE_S


def submission(candidate: Any, reference: Any) -> Submission:
    """The candidate's artifact, compressed once per grading and loaded into the evaluator."""
    if "submission" not in _STATE:
        _STATE["submission"] = _compress(candidate, reference)
    return _STATE["submission"]


def _compress(candidate: Any, reference: Any) -> Submission:
    result = Submission(budget_s=BUDGET_S)
    limit = stop_after_s(BUDGET_S)
    reference.ping()  # the evaluator's greeting is read within its start-up limit, not after compress
    try:
        reply, result.seconds = candidate.timed("adapter.compress", BUDGET_S, secrets.randbits(31), timeout_s=limit)
    except CallFailure as failure:
        if failure.outcome is Outcome.TIMED_OUT:
            result.failure = (f"time budget exceeded: compress did not return within its time_budget_s of "
                              f"{BUDGET_S:g} s (stopped at {limit:.0f} s)")
        else:
            result.failure = failure.message.replace("adapter.compress()", "compress()")
        return result
    finally:
        candidate.stop()  # nothing of the candidate runs from here on: not while we evaluate, nor while we time
    blob = reply.get("artifact") if type(reply) is dict else None
    if type(blob) is not torch.Tensor or blob.dtype != torch.uint8 or blob.dim() != 1:
        result.failure = "the judge received no packed artifact from compress (a 1-D uint8 tensor was expected)"
        return result
    if blob.numel() > MAX_ARTIFACT_BYTES:
        result.failure = f"the packed artifact is larger than {MAX_ARTIFACT_BYTES} bytes"
        return result
    result.blob = blob
    if result.seconds > limit:
        result.failure = (f"time budget exceeded: compress took {result.seconds:.1f} s, its time_budget_s was "
                          f"{BUDGET_S:g} s")
        return result
    info = reference.call("adapter.load_artifact", blob, timeout_s=LOAD_TIMEOUT_S)
    if type(info) is not dict:
        raise RuntimeError("the evaluator answered load_artifact with something unexpected")
    if "error" in info:
        result.load_failure = f"the grader cannot rebuild your artifact: {info['error']}"
    result.info = info
    return result


def artifact(candidate: Any, reference: Any) -> Submission:
    """The submission, which must have produced an artifact: else fail with its reason."""
    result = submission(candidate, reference)
    assert not result.failure, f"no artifact to check: {result.failure}"
    return result


def loaded(candidate: Any, reference: Any) -> Submission:
    """The submission, whose artifact the evaluator must have rebuilt: else fail with the reason."""
    result = artifact(candidate, reference)
    assert not result.load_failure, result.load_failure
    return result


# ---------------------------------------------------------------------------- accuracy


def check_logits(value: Any, count: int, what: str) -> torch.Tensor:
    logits = expect_tensor(value, what=what, shape=(count, 10))
    assert logits.is_floating_point(), f"{what}: logits must be floating point"
    assert bool(torch.isfinite(logits).all()), f"{what}: some logits are NaN or infinite"
    return logits


def predictions(reference: Any, which: str) -> torch.Tensor:
    """Top-1 classes of the ``original`` or ``compressed`` model on the hidden images (computed once each)."""
    key = f"predictions.{which}"
    if key not in _STATE:
        images, _ = hidden_images()
        what = "the rebuilt model's logits on hidden images" if which == "compressed" else "the original model"
        batches = [check_logits(reference.call("adapter.logits", which, images[i:i + EVAL_BATCH],
                                               timeout_s=EVAL_TIMEOUT_S), len(images[i:i + EVAL_BATCH]), what)
                   for i in range(0, len(images), EVAL_BATCH)]
        _STATE[key] = torch.cat(batches).argmax(1)
    return _STATE[key]


def accuracy(reference: Any, which: str) -> float:
    _, labels = hidden_images()
    return float((predictions(reference, which) == labels).double().mean())
