"""Known good: torch.fx and channels-last. The model's forward is not traceable as written
(numpy normalisation, `.item()`, a data-dependent NaN check), so a clean wrapper module is
traced with `torch.fx.symbolic_trace` after the depthwise loops are swapped for grouped
convolutions; `torch.fx.experimental.optimization.fuse` folds Conv+BatchNorm pairs in the
graph (in float64, before the cast to float32); weights and inputs are channels-last."""

import copy

import torch
import torch.fx
from torch import nn
from torch.fx.experimental.optimization import fuse


class DepthwiseSeparable(nn.Module):
    def __init__(self, block):
        super().__init__()
        c = block.depthwise.shape[0]
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.dw.weight = nn.Parameter(block.depthwise.detach().clone())
        self.bn1 = block.bn1
        self.pw = block.pointwise
        self.bn2 = block.bn2

    def forward(self, x):
        y = torch.relu(self.bn1(self.dw(x)))
        return torch.relu(self.bn2(self.pw(y)) + x)


class Traceable(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.features = nn.Sequential(
            model.stem,
            DepthwiseSeparable(model.block1),
            model.down1,
            DepthwiseSeparable(model.block2),
            model.down2,
            model.block3,
            DepthwiseSeparable(model.block4),
        )
        self.fc = model.head.fc
        self.scale = 1.0 / float(model.temperature)

    def forward(self, x):
        x = (x - 0.5) / 0.25
        x = self.features(x)
        return self.fc(x.mean(dim=(2, 3))) * self.scale


def optimize(model, example_input):
    model = copy.deepcopy(model).eval()
    graph_module = fuse(torch.fx.symbolic_trace(Traceable(model).eval()))  # Conv+BN folded, still float64
    fast = graph_module.float().to(example_input.device).to(memory_format=torch.channels_last).eval()
    with torch.inference_mode():
        fast(example_input.contiguous(memory_format=torch.channels_last))

    def run(images):
        with torch.inference_mode():
            return fast(images.contiguous(memory_format=torch.channels_last))

    return run
