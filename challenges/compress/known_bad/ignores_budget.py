"""Distils into a half-width student for a fixed 2,000 steps, whatever time_budget_s says.

Distillation is a sound idea, but 2,000 steps on one CPU thread take many minutes: the grader
stops compress at its budget (plus a little grace), and a stopped compress has no artifact.
"""

import os
import sys

import torch
import torch.nn.functional as F

ASSETS = os.environ.get("CVGRADE_ASSETS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
sys.path.insert(0, ASSETS)
import compact  # noqa: E402
from model import ShapeCNN  # noqa: E402
from synthetic import make_images  # noqa: E402

STEPS = 2000


def compress(model, calibration_images, time_budget_s):
    student = ShapeCNN(width=16)
    optimiser = torch.optim.Adam(student.parameters(), lr=2e-3)
    for step in range(STEPS):
        images, _ = make_images(64, 100 + step)
        with torch.no_grad():
            target = F.softmax(model(images), dim=1)
        loss = F.kl_div(F.log_softmax(student(images), dim=1), target, reduction="batchmean")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return compact.export_float(student.eval())
