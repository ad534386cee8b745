"""ShapeCNN: the classifier of the `compress` challenge, as its team ships it today.

A small residual CNN for 64 x 64 RGB images (float32 in [0, 1]) and ten classes of shapes
and textures (see ``synthetic.py``): a stem, a plain convolution, two downsampling
convolutions each followed by a residual block, global average pooling and a linear layer.
Every convolution is followed by BatchNorm; 473,450 parameters, all float32. Weights:
``shapecnn.pt`` (made by ``tools/train_original.py`` in the challenge folder).

Load it with ``load_model(path_of_the_weights)``; it comes back in eval mode, on the CPU.
It is plain PyTorch and traceable with ``torch.fx`` (no data-dependent control flow).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NUM_CLASSES = 10
INPUT_SHAPE = (3, 64, 64)
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


class ConvBNReLU(nn.Sequential):
    """3 x 3 convolution (no bias), BatchNorm, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )


class ResidualBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, plus the input, ReLU (ResNet's basic block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + x)


class ShapeCNN(nn.Module):
    """64 x 64 -> 32 (stem) -> 16 -> 8 pixels; 32, 64 and 128 channels; pooled, then linear."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 32) -> None:
        super().__init__()
        self.normalise = Normalise(MEAN, STD)
        self.stem = ConvBNReLU(3, width, stride=2)                  # 32 x 32
        self.conv = ConvBNReLU(width, width)
        self.down1 = ConvBNReLU(width, 2 * width, stride=2)         # 16 x 16
        self.block1 = ResidualBlock(2 * width)
        self.down2 = ConvBNReLU(2 * width, 4 * width, stride=2)     # 8 x 8
        self.block2 = ResidualBlock(4 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """images: [B, 3, 64, 64] float32 in [0, 1]. Returns logits [B, 10], float32."""
        x = self.normalise(images)
        x = self.stem(x)
        x = self.conv(x)
        x = self.down1(x)
        x = self.block1(x)
        x = self.down2(x)
        x = self.block2(x)
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


class Normalise(nn.Module):
    """(images - mean) / std per channel, as a fixed scale and shift (buffers, not parameters)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("scale", 1.0 / torch.tensor(std).view(1, -1, 1, 1))
        self.register_buffer("shift", -torch.tensor(mean).view(1, -1, 1, 1) / torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        return images * self.scale + self.shift


def load_model(weights_path: str) -> ShapeCNN:
    """The trained model in eval mode on the CPU."""
    model = ShapeCNN()
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
