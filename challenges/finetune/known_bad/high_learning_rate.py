"""Known bad: fine-tunes with a learning rate for training from scratch. SGD at 0.1 on every
parameter, with augmentation and a sound schedule, but the first large updates wreck the
pretrained features, and a few dozen images per class cannot rebuild them.
"""

import math
import time

import torch
import torch.nn.functional as F
from torch import nn


def augment(x):
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4), mode="replicate")
    dy, dx = torch.randint(0, 9, (n,)).tolist(), torch.randint(0, 9, (n,)).tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    flip = torch.rand(n, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def finetune(backbone, train_set, num_classes, time_budget_s, device):
    started = time.perf_counter()
    stop_at = started + 0.7 * time_budget_s
    model = nn.Sequential(backbone, nn.Linear(backbone.out_features, num_classes)).to(device)
    images = torch.stack([train_set[i][0] for i in range(len(train_set))]).to(device)
    labels = torch.tensor([train_set[i][1] for i in range(len(train_set))], device=device)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    while time.perf_counter() < stop_at:
        for index in torch.randperm(len(images), device=device).split(32):
            progress = min((time.perf_counter() - started) / (stop_at - started), 1.0)
            optimiser.param_groups[0]["lr"] = 0.1 * 0.5 * (1 + math.cos(math.pi * progress))
            loss = F.cross_entropy(model(augment(images[index])), labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()
