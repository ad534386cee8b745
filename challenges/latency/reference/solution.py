"""Reference solution for the `latency` challenge: the same function as ShapeNet-10, without its waste.

What profiling the original at batch size 1 shows, and what is done about it:

- autograd records every op (the service calls ``model(images)`` with gradients on):
  ``torch.inference_mode``;
- every parameter and every op is float64 (the research team trains in float64), which
  has no fast convolution kernels on the CPU: float32 (BatchNorm is folded in float64
  first, then rounded once);
- the depthwise convolutions of the three separable blocks are Python loops over their
  32, 64 and 128 channels (224 tiny convolutions and three ``cat``): grouped convolutions;
- every BatchNorm runs as its own op: folded into the convolution before it;
- the input is normalised in numpy (a copy to the host and back): the per-channel scale
  1 / std is folded into the stem's weights and only ``x - mean`` is left (exact, padding
  included: zero padding of ``(x - mean) / std`` is zero padding of ``x - mean``);
- the head divides by a temperature read with ``.item()``: 1 / T is folded into the linear
  layer;
- the NaN guard (``bool()`` of a tensor) and the monitoring softmax with ``.item()`` are
  host synchronisations that do not change the logits: dropped (inputs are finite).

On the CPU the weights are stored channels-last, oneDNN's preferred layout (about 15%
faster here than contiguous weights; TorchScript freezing gains no more and is deprecated).
On a GPU the work is a handful of small kernels whose launch cost dominates: the model is
captured once in a CUDA graph and replayed, channels-last, in float32 (no reduced
precision: the logits stay within float32 rounding of the original's).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def _fused(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    return fuse_conv_bn_eval(conv.eval(), bn.eval())


def _depthwise(weight: Tensor) -> nn.Conv2d:
    channels = weight.shape[0]
    conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
    conv.weight = nn.Parameter(weight.detach().clone())
    return conv


class FusedSeparable(nn.Module):
    """SeparableBlock with both BatchNorms folded and the depthwise loop as one grouped conv."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.depthwise = _fused(_depthwise(block.depthwise), block.bn1)
        self.pointwise = _fused(block.pointwise, block.bn2)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.pointwise(F.relu(self.depthwise(x))) + x)


class FusedResidual(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.conv1 = _fused(block.conv1, block.bn1)
        self.conv2 = _fused(block.conv2, block.bn2)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class FusedConvReLU(nn.Module):
    def __init__(self, layer: nn.Sequential) -> None:
        super().__init__()
        self.conv = _fused(layer[0], layer[1])

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x))


class FastShapeNet(nn.Module):
    """ShapeNet-10's function in float32, BatchNorm folded, grouped depthwise convs, no host round trips."""

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        model = copy.deepcopy(original).cpu().eval()  # folded in the original's float64, rounded once at the end
        # Normalisation: keep ``x - mean`` and fold 1 / std into the stem's input channels.
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.stem = FusedConvReLU(model.stem)
        inv_std = torch.tensor([1.0 / s for s in STD]).view(1, 3, 1, 1)
        self.stem.conv.weight = nn.Parameter(self.stem.conv.weight.detach() * inv_std)
        self.blocks = nn.Sequential(
            FusedSeparable(model.block1),
            FusedConvReLU(model.down1),
            FusedSeparable(model.block2),
            FusedConvReLU(model.down2),
            FusedResidual(model.block3),
            FusedSeparable(model.block4),
        )
        # The head divides by the temperature: fold 1 / T into the linear layer, in float64.
        temperature = float(original.temperature)
        fc = original.head.fc
        self.fc = nn.Linear(fc.in_features, fc.out_features)
        self.fc.weight = nn.Parameter(fc.weight.detach().cpu().double() / temperature)
        self.fc.bias = nn.Parameter(fc.bias.detach().cpu().double() / temperature)
        self.float()

    def forward(self, images: Tensor) -> Tensor:
        x = self.blocks(self.stem(images - self.mean))
        return self.fc(x.mean(dim=(2, 3)))


def _cuda_graph(module: nn.Module, example: Tensor) -> Callable[[Tensor], Tensor]:
    module = module.to(memory_format=torch.channels_last)
    static_input = example.detach().clone().contiguous(memory_format=torch.channels_last)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):  # warm up cuDNN's algorithm choice outside the graph
            module(static_input)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        static_output = module(static_input)

    def run(images: Tensor) -> Tensor:
        with torch.inference_mode():
            static_input.copy_(images)
            graph.replay()
            return static_output.clone()  # the next replay overwrites static_output

    return run


def optimize(model: nn.Module, example_input: Tensor) -> Callable[[Tensor], Tensor]:
    device = example_input.device
    fast = FastShapeNet(model).to(device).eval()
    if device.type == "cuda":
        return _cuda_graph(fast, example_input)
    fast = fast.to(memory_format=torch.channels_last)  # oneDNN's preferred layout: no reorders between convs
    with torch.inference_mode():
        for _ in range(3):  # let oneDNN pick and cache its kernels before the first real call
            fast(example_input)

    def run(images: Tensor) -> Tensor:
        with torch.inference_mode():
            return fast(images)

    return run
