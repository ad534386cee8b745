"""Make ``assets/shapecnn.pt``: train ShapeCNN on fresh synthetic images.

    .venv/bin/python challenges/compress/tools/train_original.py           # writes assets/shapecnn.pt
    .venv/bin/python challenges/compress/tools/train_original.py --check   # retrain in memory, compare

Fixed seeds, fresh synthetic images every step (``assets/synthetic.py``), one CPU thread, so
that the weights are the same on every run on the same machine and torch version (other
CPUs may differ in the last bits; the figures printed at the end will not move).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import sys
import time
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

ASSETS = Path(__file__).resolve().parent.parent / "assets"
WEIGHTS = ASSETS / "shapecnn.pt"
SEED = 20261203
STEPS = 1500
BATCH = 64
LR = 4e-3
TRAIN_SEEDS = 1_000_000  # batch seeds: 1_000_000 + step
EVAL_SEED, EVAL_COUNT = 3_000_000, 4000  # held-out images for the figures


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def train(model_module: ModuleType, synthetic: ModuleType, steps: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(SEED)
    net = model_module.ShapeCNN()
    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps, pct_start=0.15)
    net.train()
    started = time.monotonic()
    for step in range(steps):
        images, labels = synthetic.make_images(BATCH, TRAIN_SEEDS + step)
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1}/{steps}: loss {loss.item():.3f} ({time.monotonic() - started:.0f} s)", flush=True)
    return {name: value.detach().clone() for name, value in net.state_dict().items()}


def accuracy(model_module: ModuleType, synthetic: ModuleType, state: dict[str, torch.Tensor]) -> float:
    net = model_module.ShapeCNN()
    net.load_state_dict(state)
    net.eval()
    images, labels = synthetic.make_images(EVAL_COUNT, EVAL_SEED)
    with torch.inference_mode():
        predicted = torch.cat([net(images[i:i + 200]).argmax(1) for i in range(0, EVAL_COUNT, 200)])
    return float((predicted == labels).double().mean())


def _digest(state: dict[str, torch.Tensor]) -> str:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="retrain and compare with the committed weights")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model_module = _load("cvgrade_compress_model", ASSETS / "model.py")
    synthetic = _load("cvgrade_compress_synthetic", ASSETS / "synthetic.py")
    started = time.monotonic()
    state = train(model_module, synthetic, args.steps)
    print(f"trained {args.steps} steps of {BATCH} images in {time.monotonic() - started:.0f} s")
    figure = accuracy(model_module, synthetic, state)
    print(f"accuracy on {EVAL_COUNT} held-out images (seed {EVAL_SEED}): {figure:.2%}")
    if args.check:
        committed = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
        same = all(torch.equal(committed[k], state[k]) for k in state)
        print("weights match the committed file" if same else "weights differ from the committed file")
        return
    torch.save(state, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 prefix {_digest(state)})")


if __name__ == "__main__":
    main()
