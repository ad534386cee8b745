"""Pretrain the challenge's backbone on the source shapes task and write ``assets/backbone.pt``.

    python challenges/finetune/tools/pretrain.py                 # the committed weights (see NOTES.md)
    python challenges/finetune/tools/pretrain.py --out /tmp/b.pt --per-class 300 --epochs 3   # a quick try

The source task is 20 shape classes (``shapes.SOURCE_SHAPES``), none of them a
class of the target task, drawn in the source style; ``--per-class`` images of
each for training and 100 of each for validation, from their own seeds. The
backbone (``assets/backbone.py``) gets a linear head for the 20 classes, trained
with AdamW (weight decay 0.05, cosine learning rate from 3e-3, batch 128), random
crops (padding 4) and horizontal flips. Only the backbone's weights are saved, as
float32, with the figures of the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import shapes  # noqa: E402

ASSETS = HERE.parent / "assets"
SOURCE_TRAIN_SEED = 1001
SOURCE_VAL_SEED = 1002
LR = 3e-3


def load_backbone_module():
    spec = importlib.util.spec_from_file_location("finetune_assets_backbone", ASSETS / "backbone.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t


def augment(batch: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crops of the batch padded by ``padding`` (edge pixels repeated), and horizontal flips."""
    n, _, h, w = batch.shape
    padded = F.pad(batch, (padding,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def dataset(per_class: int, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = shapes.balanced_labels(len(shapes.SOURCE_SHAPES), per_class, seed)
    images = shapes.make_images(shapes.SOURCE_SHAPES, shapes.SOURCE_STYLE, seed, labels, size)
    return torch.from_numpy(images), torch.from_numpy(labels).long()


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 500):
            correct += int((model(images[start:start + 500]).argmax(1) == labels[start:start + 500]).sum())
    return correct / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ASSETS / "backbone.pt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.perf_counter()

    mean, std = shapes.MEAN, shapes.STD
    train_images, train_labels = dataset(args.per_class, SOURCE_TRAIN_SEED, args.size)
    val_images, val_labels = dataset(100, SOURCE_VAL_SEED, args.size)
    train_x = normalise(train_images, mean, std)
    val_x = normalise(val_images, mean, std)
    print(f"data: {len(train_x)} training and {len(val_x)} validation images "
          f"in {time.perf_counter() - started:.0f} s", flush=True)

    backbone_module = load_backbone_module()
    backbone = backbone_module.TinyResNet()
    model = nn.Sequential(backbone, nn.Linear(backbone.out_features, len(shapes.SOURCE_SHAPES)))
    optimiser = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.05)
    batch = 128
    steps_per_epoch = math.ceil(len(train_x) / batch)
    total_steps = args.epochs * steps_per_epoch
    step = 0
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        loss_sum = 0.0
        for start in range(0, len(order), batch):
            index = order[start:start + batch]
            x = augment(train_x[index], generator)
            lr = LR * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            for group in optimiser.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(x), train_labels[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            loss_sum += float(loss.detach()) * len(index)
            step += 1
        accuracy = evaluate(model, val_x, val_labels)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / len(train_x):.3f}, "
              f"validation accuracy {accuracy:.3f}, {time.perf_counter() - started:.0f} s", flush=True)

    figures = {
        "source_validation_accuracy": accuracy,
        "seconds": round(time.perf_counter() - started),
        "per_class": args.per_class,
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": args.threads,
        "torch": str(torch.__version__),
    }
    state = {key: value.detach().clone().float() if value.is_floating_point() else value.detach().clone()
             for key, value in backbone.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"architecture": "TinyResNet", "state_dict": state, "mean": mean, "std": std,
                "figures": figures}, args.out)
    print(f"wrote {args.out}: {figures}")


if __name__ == "__main__":
    main()
