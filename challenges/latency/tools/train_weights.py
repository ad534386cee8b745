"""Make ``assets/shapenet10.pt``: train ShapeNet-10 briefly on synthetic images, fit its temperature.

    .venv/bin/python challenges/latency/tools/train_weights.py            # writes assets/shapenet10.pt
    .venv/bin/python challenges/latency/tools/train_weights.py --check    # retrain, compare with the committed file

Fixed seeds, fresh synthetic images every step (``assets/synthetic.py``), one CPU thread so
that the arithmetic, and so the weights, are the same on every run on the same machine and
torch version (other CPUs may differ in the last bits; the figures below will not move).
Training uses an equivalent forward for speed (the depthwise loop as one grouped conv, in
float32); the result is stored in the model's own float64 parameters and every figure
printed at the end is measured with the model's own (slow) forward.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import sys
import time
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

ASSETS = Path(__file__).resolve().parent.parent / "assets"
WEIGHTS = ASSETS / "shapenet10.pt"
SEED = 20261121
STEPS = 600
BATCH = 64
LR = 3e-3
TRAIN_SEEDS = 1_000_000  # image batch seeds: 1_000_000 + step
TEMPERATURE_SEED = 2_000_000  # held-out images for the temperature
EVAL_SEED = 3_000_000  # held-out images for the figures


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _grouped_forward(block: torch.nn.Module):
    """SeparableBlock.forward with the depthwise loop as one grouped conv (the same function)."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        out = F.relu(block.bn1(F.conv2d(x, block.depthwise, padding=1, groups=x.shape[1])))
        return F.relu(block.bn2(block.pointwise(out)) + x)
    return forward


def train(model_module: ModuleType, synthetic: ModuleType) -> dict[str, torch.Tensor]:
    torch.manual_seed(SEED)
    net = model_module.ShapeNet10().float()
    for block in (net.block1, net.block2, net.block4):
        block.forward = _grouped_forward(block)
    mean = torch.tensor(model_module.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(model_module.STD).view(1, 3, 1, 1)

    def logits_of(images: torch.Tensor) -> torch.Tensor:
        x = (images - mean) / std
        for name in ("stem", "block1", "down1", "block2", "down2", "block3", "block4"):
            x = getattr(net, name)(x)
        return net.head(x)

    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=STEPS, pct_start=0.15)
    net.train()
    started = time.monotonic()
    for step in range(STEPS):
        images, labels = synthetic.make_images(BATCH, TRAIN_SEEDS + step)
        loss = F.cross_entropy(logits_of(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == STEPS - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}  {time.monotonic() - started:.0f} s", flush=True)
    net.eval()
    return {key: value.detach().clone() for key, value in net.state_dict().items()}


def fit_temperature(model: torch.nn.Module, synthetic: ModuleType) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) on held-out images (a 1-D search)."""
    images, labels = synthetic.make_images(1000, TEMPERATURE_SEED)
    model.temperature.fill_(1.0)
    with torch.no_grad():
        logits = model(images).double()
    best_t, best_nll = 1.0, math.inf
    for step in range(-200, 201):  # T from 0.1 to 10 on a log grid
        t = 10.0 ** (step / 200)
        nll = float(F.cross_entropy(logits / t, labels))
        if nll < best_nll:
            best_t, best_nll = t, nll
    return round(best_t, 4)


def report(model: torch.nn.Module, synthetic: ModuleType) -> None:
    images, labels = synthetic.make_images(2000, EVAL_SEED)
    with torch.no_grad():
        logits = model(images)
    top2 = logits.topk(2, dim=1).values
    margin = (top2[:, 0] - top2[:, 1]).double()
    accuracy = float((logits.argmax(1) == labels).double().mean())
    q = torch.quantile(margin, torch.tensor([0.001, 0.01, 0.05, 0.5], dtype=torch.float64))
    print(f"held-out accuracy {accuracy:.4f} on 2000 images (seed {EVAL_SEED})")
    print(f"top-1 minus top-2 logit: quantiles 0.1% {q[0]:.3f}  1% {q[1]:.3f}  5% {q[2]:.3f}  median {q[3]:.3f}")
    print(f"logits: max |logit| {float(logits.abs().max()):.2f}, std {float(logits.std()):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="retrain and compare with the committed weights")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model_module = _load("cvgrade_assets_model", ASSETS / "model.py")
    synthetic = _load("cvgrade_assets_synthetic", ASSETS / "synthetic.py")

    state = train(model_module, synthetic)
    model = model_module.ShapeNet10()  # float64, with its own forward
    model.load_state_dict({key: value.double() if value.is_floating_point() else value
                           for key, value in state.items()})
    model.eval()
    temperature = fit_temperature(model, synthetic)
    model.temperature.fill_(temperature)
    print(f"temperature {temperature}")
    report(model, synthetic)

    final = {key: value.detach().clone().contiguous() for key, value in model.state_dict().items()}
    if args.check:
        committed = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
        worst = max(float((final[key] - committed[key]).abs().max()) for key in final if final[key].is_floating_point())
        print(f"largest difference from the committed weights: {worst:.3g}")
        return
    torch.save(final, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
