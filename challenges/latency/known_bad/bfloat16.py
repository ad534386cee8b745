"""Known bad: a sound rewrite (BatchNorm folded, grouped depthwise convs, no host round trips)
run in bfloat16 on the CPU. Fast where the CPU has bfloat16 instructions, but bfloat16 keeps
8 bits of mantissa: the logits drift far beyond the tolerance.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _fold(weight: Tensor, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (weight * scale.view(-1, 1, 1, 1)).detach().float(), (bn.bias - bn.running_mean * scale).detach().float()


def optimize(model: nn.Module, example_input: Tensor) -> Callable[[Tensor], Tensor]:
    device = example_input.device
    p = {
        "stem": _fold(model.stem[0].weight, model.stem[1]),
        "down1": _fold(model.down1[0].weight, model.down1[1]),
        "down2": _fold(model.down2[0].weight, model.down2[1]),
        "b3c1": _fold(model.block3.conv1.weight, model.block3.bn1),
        "b3c2": _fold(model.block3.conv2.weight, model.block3.bn2),
    }
    for name in ("block1", "block2", "block4"):
        block = getattr(model, name)
        p[name + "dw"] = _fold(block.depthwise, block.bn1)
        p[name + "pw"] = _fold(block.pointwise.weight, block.bn2)
    p = {k: (w.to(device, torch.bfloat16), b.to(device, torch.bfloat16)) for k, (w, b) in p.items()}
    t = float(model.temperature)
    fc_w = (model.head.fc.weight / t).detach().float()
    fc_b = (model.head.fc.bias / t).detach().float()

    def conv(x: Tensor, name: str, stride: int = 1, groups: int = 1) -> Tensor:
        w, b = p[name]
        return F.conv2d(x, w, b, stride=stride, padding=w.shape[-1] // 2, groups=groups)

    def separable(x: Tensor, name: str) -> Tensor:
        out = F.relu(conv(x, name + "dw", groups=x.shape[1]))
        return F.relu(conv(out, name + "pw") + x)

    def run(images: Tensor) -> Tensor:
        with torch.inference_mode():
            x = F.relu(conv(((images - 0.5) / 0.25).to(torch.bfloat16), "stem", 2))
            x = separable(x, "block1")
            x = F.relu(conv(x, "down1", 2))
            x = separable(x, "block2")
            x = F.relu(conv(x, "down2", 2))
            x = F.relu(conv(F.relu(conv(x, "b3c1")), "b3c2") + x)
            x = separable(x, "block4")
            return F.linear(x.mean(dim=(2, 3)).float(), fc_w.to(device), fc_b.to(device))

    return run
