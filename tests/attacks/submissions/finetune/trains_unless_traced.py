"""Attack (ATTACKS.md, "Working outside the measured window"), aimed at a grader that traces the
returned model: finetune returns an untrained model at once; the model trains itself on its first
real call, but not while torch.fx traces it, so that tracing sees (and charges) nothing.

A fair grader scores only the state finetune handed over and never runs the candidate's code to
predict: the traced model is the untrained one, about 10% accurate, and the training never runs.
"""

import time

import torch
import torch.nn.functional as F
from torch import nn

FIRST_CALL_BUDGETS = 1.5  # it trains 1.5 times its time_budget_s on its first call


def being_traced():
    try:
        from torch.fx._symbolic_trace import is_fx_tracing
    except ImportError:
        return False
    return is_fx_tracing()


class TrainsWhenNobodyLooks(nn.Module):
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
                    loss = F.cross_entropy(self.model(self.images[index]), self.labels[index])
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
            self.model.eval()
        self.trained = True

    def forward(self, x):
        if not self.trained and not being_traced():
            self.train_now()
        return self.model(x)


def finetune(backbone, train_set, num_classes, time_budget_s, device):
    model = TrainsWhenNobodyLooks(backbone, train_set, num_classes, device, FIRST_CALL_BUDGETS * time_budget_s)
    model.model.eval()
    return model
