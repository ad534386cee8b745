"""Attack (ATTACKS.md, "Working outside the measured window"): finetune returns within a second an
untrained model wrapped in a module that trains itself, with gradients re-enabled, on its first call
(for 1.5 times the time budget).

The training runs wherever the returned model is first called. A fair grader charges it to
finetune's time budget or never runs it: the model that is scored is the one finetune handed
over, and an untrained head scores about 10%. Either way, no model trained for longer than the
budget allows earns the accuracy checks.
"""

import time

import torch
import torch.nn.functional as F
from torch import nn

FIRST_CALL_BUDGETS = 1.5  # it trains 1.5 times its time_budget_s on its first call


class TrainsOnFirstCall(nn.Module):
    def __init__(self, backbone, train_set, num_classes, device, seconds):
        super().__init__()
        self.seconds = seconds
        self.model = nn.Sequential(backbone, nn.Linear(backbone.out_features, num_classes)).to(device)
        self.images = torch.stack([train_set[i][0] for i in range(len(train_set))]).to(device)
        self.labels = torch.tensor([train_set[i][1] for i in range(len(train_set))], device=device)
        self.trained = False

    def train_now(self):
        optimiser = torch.optim.SGD(self.model.parameters(), lr=0.02, momentum=0.9, nesterov=True,
                                    weight_decay=5e-4)
        stop_at = time.perf_counter() + self.seconds
        with torch.enable_grad():
            self.model.train()
            while time.perf_counter() < stop_at:
                for index in torch.randperm(len(self.images)).split(32):
                    if len(index) < 2 or time.perf_counter() >= stop_at:
                        continue
                    x = self.images[index]
                    x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(3), x)
                    loss = F.cross_entropy(self.model(x), self.labels[index], label_smoothing=0.1)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
            self.model.eval()
        self.trained = True

    def forward(self, x):
        if not self.trained:
            self.train_now()
        return self.model(x)


def finetune(backbone, train_set, num_classes, time_budget_s, device):
    return TrainsOnFirstCall(backbone, train_set, num_classes, device, FIRST_CALL_BUDGETS * time_budget_s)
