"""Global magnitude pruning of 80% of the convolution weights, stored dense in float32: no smaller at all.

A pruned weight is a zero, and a zero in a dense float32 tensor still takes 4 bytes. The
size that counts is the bytes of the artifact, not the number of non-zero weights: pruning
only pays with an encoding that skips the zeros (``sparse``), and here it also costs
accuracy, since nothing is fine-tuned afterwards.
"""

import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.environ.get("CVGRADE_ASSETS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets"))
import compact  # noqa: E402

SPARSITY = 0.8


def compress(model, calibration_images, time_budget_s):
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    magnitudes = torch.cat([conv.weight.detach().abs().reshape(-1) for conv in convs])
    cut = magnitudes.kthvalue(int(SPARSITY * magnitudes.numel())).values
    with torch.no_grad():
        for conv in convs:
            conv.weight.mul_((conv.weight.abs() > cut).float())
    return compact.export_float(model)
