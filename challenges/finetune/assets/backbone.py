"""The backbone given to `finetune`: a small ResNet for 32 x 32 images, pretrained on a shapes task.

Stem (3x3 convolution, 16 channels), then three stages of one residual basic block
each (16, 32, 64 channels; the second and third halve the resolution), then global
average pooling. It maps normalised images [B, 3, H, W] (any H, W of at least 8) to
features [B, 64]; `out_features` is 64. There is no classification head.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

WIDTHS = (16, 32, 64)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class TinyResNet(nn.Module):
    """Normalised images [B, 3, H, W] -> features [B, out_features]."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU())
        blocks = []
        channels = widths[0]
        for index, width in enumerate(widths):
            blocks.append(BasicBlock(channels, width, 1 if index == 0 else 2))
            channels = width
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.stages(self.stem(x)))
