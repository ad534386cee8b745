"""ShapeNet-10: the classifier of the `latency` challenge, as its research team handed it over.

A small residual CNN for 64 x 64 RGB images (float32 in [0, 1]) and ten classes of shapes
and textures (see ``synthetic.py``). It is correct, and slow: it was written for training
and debugging, not for serving one image at a time. Weights: ``shapenet10.pt`` (made by
``tools/train_weights.py`` in the challenge folder).

Load it with ``load_model(path_of_the_weights)``; it comes back in eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
NUM_CLASSES = 10
INPUT_SHAPE = (3, 64, 64)


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, plus the input, ReLU (ResNet's basic block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class SeparableBlock(nn.Module):
    """Depthwise 3x3 conv, BN, ReLU, pointwise 1x1 conv, BN, plus the input (MobileNet style).

    The depthwise convolution is written out channel by channel, as in the paper's figure.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Parameter(torch.randn(channels, 1, 3, 3) * (2.0 / 9.0) ** 0.5)
        self.bn1 = nn.BatchNorm2d(channels)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        planes = [F.conv2d(x[:, c:c + 1], self.depthwise[c:c + 1], padding=1) for c in range(x.shape[1])]
        out = F.relu(self.bn1(torch.cat(planes, dim=1)))
        out = self.bn2(self.pointwise(out))
        return F.relu(out + x)


class ClassifierHead(nn.Module):
    """Global average pooling and a linear layer."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.mean(dim=(2, 3)))


class ShapeNet10(nn.Module):
    """Stem, four blocks (three depthwise-separable, one residual) at 32, 16 and 8 pixels, and a linear head.

    The research team trains in float64, so the parameters and the arithmetic are float64;
    the service expects float32 logits.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = ConvBNReLU(3, 32, stride=2)          # 32 x 32
        self.block1 = SeparableBlock(32)
        self.down1 = ConvBNReLU(32, 64, stride=2)        # 16 x 16
        self.block2 = SeparableBlock(64)
        self.down2 = ConvBNReLU(64, 128, stride=2)       # 8 x 8
        self.block3 = ResidualBlock(128)
        self.block4 = SeparableBlock(128)
        self.head = ClassifierHead(128, num_classes)
        # Temperature fitted on held-out images after training: softmax(logits) is calibrated.
        self.register_buffer("temperature", torch.tensor(1.0))
        self.last_confidence = 0.0  # read by the service's monitoring dashboard
        self.double()

    def normalise(self, images: Tensor) -> Tensor:
        """(images - MEAN) / STD per channel, in numpy, as in the training data pipeline."""
        array = images.detach().cpu().numpy().astype(np.float64)
        mean = np.array(MEAN).reshape(1, 3, 1, 1)
        std = np.array(STD).reshape(1, 3, 1, 1)
        return torch.from_numpy((array - mean) / std).to(images.device)

    def forward(self, images: Tensor) -> Tensor:
        """images: [B, 3, 64, 64] float32 in [0, 1]. Returns logits [B, 10], float32."""
        if not torch.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        x = self.normalise(images)
        x = self.stem(x)
        x = self.block1(x)
        x = self.down1(x)
        x = self.block2(x)
        x = self.down2(x)
        x = self.block3(x)
        x = self.block4(x)
        logits = self.head(x) / self.temperature.item()
        self.last_confidence = float(torch.softmax(logits, dim=1).max().item())
        return logits.float()


def load_model(weights_path: str, device: str | torch.device = "cpu") -> ShapeNet10:
    """The trained model in eval mode on ``device``."""
    model = ShapeNet10()
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval().to(device)
