"""Known good: a linear probe, then the last residual stage fine-tuned with it.

The early layers of a pretrained CNN hold generic edges and textures; the last stage holds
the source task's shapes. So the stem and the first two stages keep their pretrained weights
(requires_grad off) while their BatchNorm statistics follow the new, busier images (the
modules stay in train mode), the new head is fitted alone for a few seconds with Adam, then
the last stage and the head are trained together with Adam and a step decay. Random crops and
flips, plus a random colour inversion (colour carries no class). Returned in eval mode.
"""

import time

import torch
import torch.nn.functional as F
from torch import nn


def finetune(backbone, train_set, num_classes, time_budget_s, device):
    started = time.monotonic()
    stop = 0.8 * time_budget_s
    xs = torch.stack([train_set[i][0] for i in range(len(train_set))]).to(device)
    ys = torch.as_tensor(train_set.targets, device=device)

    head = nn.Linear(backbone.out_features, num_classes).to(device)
    backbone.to(device)
    frozen = [backbone.stem, backbone.stages[0], backbone.stages[1]]
    last = backbone.stages[2]
    for module in frozen:
        module.requires_grad_(False)  # weights frozen; BatchNorm statistics adapt to the new images

    def batches():
        while True:
            for idx in torch.randperm(len(xs), device=device).split(50):
                x = F.pad(xs[idx], (3, 3, 3, 3), mode="replicate")
                dx, dy = torch.randint(0, 7, (2,)).tolist()
                x = x[:, :, dy:dy + 32, dx:dx + 32]
                if torch.rand(()) < 0.5:
                    x = x.flip(3)
                invert = (torch.rand(len(idx), 1, 1, 1, device=device) < 0.2).float()
                yield x * (1 - 2 * invert), ys[idx]

    def elapsed():
        return time.monotonic() - started

    stream = batches()
    # 1. linear probe: only the head, the last stage frozen too
    last.requires_grad_(False)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    while elapsed() < 0.15 * stop:
        x, y = next(stream)
        loss = F.cross_entropy(head(backbone(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    # 2. the last stage and the head together, learning rate divided by 10 at 70% of the time
    last.train()
    last.requires_grad_(True)
    opt = torch.optim.Adam([{"params": last.parameters(), "lr": 1e-3},
                            {"params": head.parameters(), "lr": 3e-3}], weight_decay=1e-4)
    decayed = False
    while elapsed() < stop:
        if not decayed and elapsed() > 0.7 * stop:
            for group in opt.param_groups:
                group["lr"] /= 10
            decayed = True
        x, y = next(stream)
        loss = F.cross_entropy(head(backbone(x)), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()

    model = nn.Sequential(backbone, head)
    model.eval()
    return model
