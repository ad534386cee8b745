"""Your solution to the `finetune` challenge. Read README.md for the full statement.

Run the public checks with `cvgrade test DIR` and grade yourself with
`cvgrade grade DIR/solution.py --challenge finetune`.
"""

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


def finetune(backbone: nn.Module, train_set: Dataset, num_classes: int, time_budget_s: float,
             device: torch.device) -> nn.Module:
    """Adapt a pretrained backbone to a new classification task, within a time budget.

    Args:
        backbone: maps normalised images [B, 3, 32, 32] to features [B, backbone.out_features];
            pretrained on another task; given in training mode, on the CPU.
        train_set: item i is (image, label): a normalised float32 [3, 32, 32] tensor and an int
            in 0..num_classes-1. A few dozen images per class.
        num_classes: the number of classes.
        time_budget_s: finetune must return within this many seconds (the judge's clock).
        device: where to train, and where the returned model will be called.

    Returns:
        An nn.Module mapping normalised images [B, 3, 32, 32] on `device` to logits
        [B, num_classes], ready for inference: the judge calls it as returned, under
        torch.no_grad(), on batches of any size.
    """
    raise NotImplementedError("write finetune")
