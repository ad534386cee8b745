"""Known good: AdamW, head first, then everything (the "gradual unfreezing" recipe).

Stage 1 (the first tenth of the time): the backbone is frozen, BatchNorm statistics included
(eval mode), and only a new linear head is trained, so the random head does not send large
gradients into the pretrained features. Stage 2: everything is unfrozen and trained with
AdamW, the backbone at a third of the head's learning rate, both decayed on a cosine of the
time used. The 300 training images are small enough to keep in one tensor; augmentation per
image: random crops (reflection padding), flips, and random channel permutations (the
statement says colour carries no class). Stops at 80% of the budget, returns in eval mode.
"""

import math
import time

import torch
import torch.nn.functional as F
from torch import nn


def augment(x):
    n, c, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    ys = torch.randint(0, 9, (n,))
    xs = torch.randint(0, 9, (n,))
    x = torch.stack([padded[k, :, ys[k]:ys[k] + h, xs[k]:xs[k] + w] for k in range(n)])
    flip = torch.rand(n, 1, 1, 1, device=x.device) < 0.5
    x = torch.where(flip, x.flip(3), x)
    perm = torch.rand(n, c, device=x.device).argsort(dim=1)
    return x[torch.arange(n, device=x.device)[:, None], perm]


def finetune(backbone, train_set, num_classes, time_budget_s, device):
    start = time.perf_counter()
    deadline = start + 0.8 * time_budget_s
    head_until = start + 0.1 * time_budget_s

    images = torch.stack([train_set[i][0] for i in range(len(train_set))]).to(device)
    labels = torch.tensor(train_set.targets).to(device)
    model = nn.Sequential(backbone, nn.Linear(backbone.out_features, num_classes)).to(device)

    def batches():
        while True:
            for idx in torch.randperm(len(images), device=device).split(32):
                if len(idx) > 1:  # BatchNorm needs two images to train
                    yield augment(images[idx]), labels[idx]

    stream = batches()

    # Stage 1: linear head on frozen features
    backbone.requires_grad_(False)
    backbone.eval()
    head_opt = torch.optim.AdamW(model[1].parameters(), lr=1e-2, weight_decay=1e-4)
    while time.perf_counter() < head_until:
        x, y = next(stream)
        loss = F.cross_entropy(model(x), y)
        head_opt.zero_grad()
        loss.backward()
        head_opt.step()

    # Stage 2: unfreeze everything, discriminative learning rates, cosine decay over the time left
    backbone.requires_grad_(True)
    model.train()
    opt = torch.optim.AdamW([
        {"params": backbone.parameters(), "lr": 1e-3},
        {"params": model[1].parameters(), "lr": 3e-3},
    ], weight_decay=0.05)
    base = [g["lr"] for g in opt.param_groups]
    stage_start = time.perf_counter()
    while True:
        frac = (time.perf_counter() - stage_start) / (deadline - stage_start)
        if frac >= 1:
            break
        for g, lr in zip(opt.param_groups, base, strict=True):
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * frac))
        x, y = next(stream)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()

    model.eval()
    return model
