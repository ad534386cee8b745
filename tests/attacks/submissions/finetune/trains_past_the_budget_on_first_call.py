"""Attack (ATTACKS.md, "Working outside the measured window"): finetune trains for 70% of its budget,
like the reference, then returns a model that trains itself for 1.5 budgets more on its first call.

Before the fix this trained for 2.2 budgets and got full marks (the extra training ran inside the
judge's first prediction, limited only by the time allowed to predict). A fair grader charges the
extra training to finetune's clock: the run is over its budget and stopped ("time budget
exceeded"), so it earns neither the time budget nor the accuracy checks.
"""

import time

import torch
import torch.nn.functional as F
from torch import nn

TIME_FRACTION = 0.7
FIRST_CALL_BUDGETS = 1.5  # it trains 1.5 times its time_budget_s on its first call


def train_for(model, images, labels, seconds):
    optimiser = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4)
    stop_at = time.perf_counter() + seconds
    with torch.enable_grad():
        model.train()
        while time.perf_counter() < stop_at:
            for index in torch.randperm(len(images)).split(32):
                if len(index) < 2 or time.perf_counter() >= stop_at:
                    continue
                x = images[index]
                x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(3), x)
                loss = F.cross_entropy(model(x), labels[index], label_smoothing=0.1)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        model.eval()


class MoreTrainingOnFirstCall(nn.Module):
    def __init__(self, model, images, labels, seconds):
        super().__init__()
        self.seconds = seconds
        self.model = model
        self.images = images
        self.labels = labels
        self.trained_more = False

    def forward(self, x):
        if not self.trained_more:
            train_for(self.model, self.images, self.labels, self.seconds)
            self.trained_more = True
        return self.model(x)


def finetune(backbone, train_set, num_classes, time_budget_s, device):
    started = time.perf_counter()
    images = torch.stack([train_set[i][0] for i in range(len(train_set))]).to(device)
    labels = torch.tensor([train_set[i][1] for i in range(len(train_set))], device=device)
    model = nn.Sequential(backbone, nn.Linear(backbone.out_features, num_classes)).to(device)
    train_for(model, images, labels, TIME_FRACTION * time_budget_s - (time.perf_counter() - started))
    return MoreTrainingOnFirstCall(model, images, labels, FIRST_CALL_BUDGETS * time_budget_s)
