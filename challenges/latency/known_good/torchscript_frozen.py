"""Known good: TorchScript, frozen. A clean, scriptable forward is written around the model's
own layers (its BatchNorms kept as modules, the depthwise loops replaced by grouped
convolutions, float32, no host round trips), then `torch.jit.script` + `torch.jit.freeze`
inline the weights and fold every BatchNorm into its convolution. Warmed up before it is
returned (the profiling executor optimises the graph on its first calls)."""

import copy

import torch
import torch.nn.functional as F
from torch import nn


class GroupedSeparable(nn.Module):
    def __init__(self, block):
        super().__init__()
        channels = block.depthwise.shape[0]
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.depthwise.weight = nn.Parameter(block.depthwise.detach().clone())
        self.bn1, self.pointwise, self.bn2 = block.bn1, block.pointwise, block.bn2

    def forward(self, x):
        out = F.relu(self.bn1(self.depthwise(x)))
        return F.relu(self.bn2(self.pointwise(out)) + x)


class Servable(nn.Module):
    """ShapeNet-10's computation without its debugging and monitoring code."""

    def __init__(self, model):
        super().__init__()
        model = copy.deepcopy(model)
        self.stem, self.down1, self.down2, self.block3 = model.stem, model.down1, model.down2, model.block3
        self.block1 = GroupedSeparable(model.block1)
        self.block2 = GroupedSeparable(model.block2)
        self.block4 = GroupedSeparable(model.block4)
        self.fc = model.head.fc
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1))
        self.temperature = float(model.temperature)

    def forward(self, images):
        x = (images - self.mean) / self.std
        x = self.block1(self.stem(x))
        x = self.block2(self.down1(x))
        x = self.block4(self.block3(self.down2(x)))
        return self.fc(x.mean(dim=(2, 3))) / self.temperature


def optimize(model, example_input):
    servable = Servable(model).float().eval().to(example_input.device)
    frozen = torch.jit.freeze(torch.jit.script(servable))
    with torch.inference_mode():
        for _ in range(5):
            frozen(example_input)

    def predict(images):
        with torch.inference_mode():
            return frozen(images)

    return predict
