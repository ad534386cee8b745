"""The finetune challenge's adapter: runs in the workers, turns plain data into objects and back.

The judge cannot hand an ``nn.Module`` or a ``Dataset`` over the channel, so it
calls these functions instead (as ``adapter.train`` and so on), with numbers and
tensors. It is loaded in two kinds of worker:

- the **candidate's**: ``train`` builds the backbone and the training set from
  this folder, calls the submission's ``finetune``, and, still inside the call the
  judge times, exports the returned model as plain data (``plain_model.export``:
  its graph of standard operations and copies of its weights), which is the
  reply. Whatever the candidate's code does after that changes nothing scored.
- the **reference's**, which runs only our code: ``load_model`` rebuilds a
  model from that plain data with the challenge's own code (``plain_model.rebuild``),
  and ``predict`` runs it on the images the judge sends. The held-back images
  never reach the candidate's worker, and the candidate's code never predicts.

In the candidate's worker everything here shares a process with the candidate's
code, so the judge trusts its replies no more than the candidate's own: the
checks that matter (accuracy on held-back images, the time budget) are measured
by the judge and the trusted worker. The checks on threads and import-time work
are there to catch honest mistakes and lazy tricks, not to stand up to a
candidate who rewrites this module.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import random
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

# Python threads that finetune started may take this long to finish after it returned
# (a DataLoader's workers and threads shut down when the loader is collected).
THREAD_GRACE_S = 2.0


def _load_helper(name: str) -> types.ModuleType:
    """Load ``<name>.py`` from this folder by path, under a name no file of the candidate can shadow."""
    path = Path(__file__).resolve().parent / f"{name}.py"
    module_name = f"cvgrade_assets_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


data = _load_helper("finetune_data")
plain_model = _load_helper("plain_model")

_state: dict[str, Any] = {}


def bind(solution: types.ModuleType, assets_dir: str) -> None:
    """Called once the submission is imported: note what its import left behind."""
    _state["solution"] = solution
    _state["assets"] = assets_dir
    _state["import_cpu_s"] = time.process_time()
    _state["threads_at_import"] = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    _warm_up()


def _warm_up() -> None:
    """Pay torch's lazy start-up costs before any clock starts: the optimisers import torch._dynamo
    (seconds), and a GPU needs its CUDA context."""
    weight = nn.Parameter(torch.zeros(2, 3, 3, 3))
    optimiser = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    loss = nn.functional.cross_entropy(nn.functional.conv2d(torch.zeros(1, 3, 4, 4), weight).mean((2, 3)),
                                       torch.zeros(1, dtype=torch.int64))
    loss.backward()
    optimiser.step()
    torch.optim.Adam([weight]).step()
    torch.optim.AdamW([weight]).step()
    if torch.cuda.is_available():  # create the CUDA context and load the convolution kernels now
        cuda_weight = weight.detach().cuda().requires_grad_()
        nn.functional.conv2d(torch.zeros(1, 3, 4, 4, device="cuda"), cuda_weight).sum().backward()
        torch.cuda.synchronize()


def _config() -> Any:
    if "config" not in _state:
        _state["config"] = data.DataConfig.load(_state.get("assets") or os.environ["CVGRADE_ASSETS"])
    return _state["config"]


def _train_images() -> Any:
    if "train_images" not in _state:
        config = _config()
        _state["train_images"] = data.load_images(config.folder / config.train, config.image_size)
    return _state["train_images"]


def _device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def describe() -> dict[str, Any]:
    """The training set and the backbone, in plain data (public checks use it)."""
    config = _config()
    train = _train_images()
    return {"num_train": len(train.labels), "labels": train.labels.tolist(), "classes": list(train.classes),
            "image_size": config.image_size,
            "mean": list(config.mean), "std": list(config.std), "architecture": config.architecture,
            "device": str(_device())}


def train_subset(indices: list[int]) -> tuple[Tensor, Tensor]:
    """uint8 images and labels of some training images (not secret: public checks hold some back)."""
    train = _train_images()
    index = torch.tensor(indices, dtype=torch.int64)
    return train.images[index].clone(), train.labels[index].clone()


def train(budget_s: float, seed: int, indices: list[int] | None = None, slot: str = "main") -> dict[str, Any]:
    """Call the submission's ``finetune`` on the training set (or the images ``indices``), export its model.

    Labels of a subset are renumbered 0..k-1 in increasing order of the original label.
    Returns what the judge needs beside its own clock: ``model``, the trained model as
    plain data (``plain_model.FORMAT``), or None with ``export_error`` saying why it
    cannot be; the number of classes; what was left running (threads, processes) or
    done at import time. The model is also kept here, in ``slot``, for ``predict``
    (practice runs, which have no trusted worker).
    """
    models = _state.setdefault("models", {})
    models.pop(slot, None)
    solution = _state["solution"]
    finetune = getattr(solution, "finetune", None)
    if not callable(finetune):
        raise AttributeError("your solution does not define finetune(backbone, train_set, num_classes, "
                             "time_budget_s, device)")
    config = _config()
    train_images = _train_images()
    images, labels = train_images.images, train_images.labels
    classes = list(train_images.classes)
    if indices is not None:
        index = torch.tensor(indices, dtype=torch.int64)
        images, original = images[index], labels[index]
        kept = sorted({int(label) for label in original})
        renumber = {label: new for new, label in enumerate(kept)}
        labels = torch.tensor([renumber[int(label)] for label in original], dtype=torch.int64)
        classes = [classes[label] for label in kept]
    num_classes = len(classes)
    train_set = data.TrainSet(images, labels, classes, config.mean, config.std)
    backbone = data.build_backbone(config)
    device = _device()

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    threads_before = set(threading.enumerate())
    children_before = _children()
    started = time.perf_counter()
    model = finetune(backbone, train_set, num_classes, float(budget_s), device)
    seconds = time.perf_counter() - started
    if not isinstance(model, nn.Module):
        raise TypeError(f"finetune must return an nn.Module, not {type(model).__name__}")
    # What is scored is this snapshot, taken inside the judge's timed call: later changes to the
    # returned object, and anything its code would do when called, count for nothing.
    exported, export_error = _export(model)
    del model, train_set, backbone
    threads_left, children_left = _left_running(threads_before, children_before)
    models[slot] = (exported if exported is not None else export_error, device)
    return {
        "model": exported,
        "export_error": export_error,
        "num_classes": num_classes,
        "finetune_s": seconds,
        "threads_left": threads_left,
        "processes_left": children_left,
        "import_cpu_s": float(_state.get("import_cpu_s", 0.0)),
        "threads_at_import": list(_state.get("threads_at_import", [])),
    }


def _export(model: nn.Module) -> tuple[dict[str, Any] | None, str]:
    """The model as plain data, or None and why it cannot be (the candidate's own model, in their terms)."""
    try:
        return plain_model.export(model), ""
    except plain_model.ExportError as err:
        return None, str(err)


def load_model(plain: dict[str, Any], slot: str) -> dict[str, Any]:
    """Rebuild a model from its plain data (``train``'s ``model``) with our own code, and keep it in ``slot``.

    Called in a worker that runs no candidate code. Returns its size in plain numbers.
    """
    models = _state.setdefault("models", {})
    models.pop(slot, None)
    device = _device()
    models[slot] = (plain_model.rebuild(plain, device), device)
    return {"tensors": len(plain["tensors"]), "values": sum(t.numel() for t in plain["tensors"].values())}


def load_baseline(num_classes: int, slot: str) -> None:
    """The challenge's own architecture (the backbone and a linear head, untrained, in eval mode), exported
    and rebuilt like a candidate's model: what predicting costs the reference's kind of model."""
    backbone = data.build_backbone(_config())
    baseline = nn.Sequential(backbone, nn.Linear(backbone.out_features, num_classes)).eval()
    load_model(plain_model.export(baseline), slot)


def predict(images: Tensor, slot: str = "main") -> Tensor:
    """The logits of the model in ``slot`` for uint8 images [B, 3, S, S], on the CPU.

    The model is the rebuilt plain model (``load_model``, or ``train``'s export in a practice
    run): its layers in the train/eval modes finetune returned them in, called under
    ``torch.no_grad()`` on normalised images on this worker's device.
    """
    if slot not in _state.get("models", {}):
        raise RuntimeError("no trained model: train did not finish in this worker (it failed, ran out of "
                           "time, or the worker was restarted)")
    model, device = _state["models"][slot]
    if isinstance(model, str):
        raise RuntimeError(f"the model returned by finetune cannot be graded: {model}")
    if isinstance(model, dict):  # train kept the export: rebuild it once, as a trusted worker would
        model = plain_model.rebuild(model, device)
        _state["models"][slot] = (model, device)
    config = _config()
    x = data.normalise(images, config.mean, config.std).to(device)
    with torch.no_grad():
        logits = model(x)
    if not isinstance(logits, Tensor):
        raise TypeError(f"the model returned by finetune must return a tensor of logits, "
                        f"not {type(logits).__name__}")
    return logits.detach().to("cpu").clone()


def benchmark(steps: int) -> float:
    """A fixed training workload for calibrating the time budget to this machine; returns a checksum.

    The judge times the call. ``steps`` steps of SGD on the pretrained backbone and a linear head,
    batches of 64 random images, on the training device.
    """
    config = _config()
    device = _device()
    generator = torch.Generator().manual_seed(0)
    backbone = data.build_backbone(config)
    model = nn.Sequential(backbone, nn.Linear(backbone.out_features, 10)).to(device)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    size = config.image_size
    loss = torch.zeros(())
    for _ in range(steps):
        x = torch.randn(64, 3, size, size, generator=generator).to(device)
        y = torch.randint(0, 10, (64,), generator=generator).to(device)
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return float(loss.detach())


# ---------------------------------------------------------------------------- what finetune left behind


def _children() -> set[int]:
    """Process ids of this process's children (all of its threads' children)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children", encoding="ascii") as f:
                found.update(int(pid) for pid in f.read().split())
    return found


def _left_running(threads_before: set[threading.Thread], children_before: set[int]) -> tuple[list[str], int]:
    """Threads and child processes started by finetune that are still running after a short grace."""
    deadline = time.monotonic() + THREAD_GRACE_S
    while True:
        gc.collect()
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        children = _children() - children_before
        if (not threads and not children) or time.monotonic() > deadline:
            return sorted(t.name for t in threads), len(children)
        time.sleep(0.05)
