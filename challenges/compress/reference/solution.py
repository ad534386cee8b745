"""Reference solution to `compress`: static int8 post-training quantisation with torch.ao (FX graph mode).

1. ``prepare_fx`` with the x86 engine's default configuration: BatchNorm is folded into the
   convolutions, ReLUs are fused into them, weights get per-channel int8 observers and
   activations histogram observers. The input normalisation stays float (it is a per-channel
   scale and shift, cheaper before quantising than inside the int8 graph).
2. Calibration: 256 of the calibration images, in batches, through the prepared model.
3. ``convert_fx``: real int8 modules (quantized ConvReLU2d, Conv2d, Linear; add_relu).
4. Export: walk the converted graph and write each node in the compact schema; quantized
   weights become their int8 values with per-channel scales and zero points.

About 4x smaller (int8 weights), about 3x faster at batch size 1 on one CPU thread (real int8
kernels), top-1 accuracy within a few tenths of a point.
"""

from __future__ import annotations

import copy
import operator
import warnings
from typing import Any

import torch
from torch import Tensor, fx, nn

ENGINE = "x86"
CALIBRATION_IMAGES = 256  # half the set: histogram observers are slow, and more changes nothing
CALIBRATION_BATCH = 64


def compress(model: nn.Module, calibration_images: Tensor, time_budget_s: float) -> dict[str, Any]:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.backends.quantized.engine = ENGINE
    mapping = get_default_qconfig_mapping(ENGINE).set_module_name("normalise", None)
    prepared = prepare_fx(copy.deepcopy(model).eval(), mapping, example_inputs=(calibration_images[:1],))
    with torch.inference_mode():
        for start in range(0, CALIBRATION_IMAGES, CALIBRATION_BATCH):
            prepared(calibration_images[start:start + CALIBRATION_BATCH])
    return export(convert_fx(prepared))


def export(quantized: fx.GraphModule) -> dict[str, Any]:
    """The compact artifact of a model converted by ``convert_fx``."""
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.quantized as nnq

    modules = dict(quantized.named_modules())
    tensors: dict[str, Tensor] = {}
    nodes: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    constants: dict[str, Any] = {}
    output = ""

    def value_of(arg: Any) -> Any:
        return constants[arg.name] if isinstance(arg, fx.Node) and arg.name in constants else arg

    def int8_weight(prefix: str, weight: Tensor) -> dict[str, Any]:
        if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            scale, zero, axis = weight.q_per_channel_scales(), weight.q_per_channel_zero_points(), 0
        else:
            scale, zero, axis = torch.tensor([weight.q_scale()]), torch.tensor([weight.q_zero_point()]), None
        tensors[f"{prefix}.w"] = weight.int_repr().contiguous()
        tensors[f"{prefix}.w_scale"] = scale.float()
        tensors[f"{prefix}.w_zero"] = zero.to(torch.int32)
        return {"encoding": "affine", "values": f"{prefix}.w", "scale": f"{prefix}.w_scale",
                "zero_point": f"{prefix}.w_zero", "axis": axis}

    def bias(prefix: str, value: Tensor | None) -> str | None:
        if value is None:
            return None
        tensors[f"{prefix}.b"] = value.detach().float().contiguous()
        return f"{prefix}.b"

    for node in quantized.graph.nodes:
        if node.op == "placeholder":
            names[node.name] = "image"
            continue
        if node.op == "get_attr":
            value = quantized
            for part in str(node.target).split("."):
                value = getattr(value, part)
            constants[node.name] = value
            continue
        if node.op == "output":
            output = names[node.args[0].name]
            continue
        inputs = [names[a.name] for a in node.args if isinstance(a, fx.Node) and a.name not in constants]
        entry: dict[str, Any] = {"inputs": inputs, "output": node.name}
        if node.op == "call_module":
            module = modules[str(node.target)]
            prefix = str(node.target)
            if isinstance(module, (nniq.ConvReLU2d, nnq.Conv2d)):
                entry.update(op="quantized_conv2d", weight=int8_weight(prefix, module.weight()),
                             bias=bias(prefix, module.bias()), scale=float(module.scale),
                             zero_point=int(module.zero_point), relu=isinstance(module, nniq.ConvReLU2d),
                             stride=list(module.stride), padding=list(module.padding),
                             dilation=list(module.dilation), groups=module.groups)
            elif isinstance(module, (nniq.LinearReLU, nnq.Linear)):
                entry.update(op="quantized_linear", weight=int8_weight(prefix, module.weight()),
                             bias=bias(prefix, module.bias()), scale=float(module.scale),
                             zero_point=int(module.zero_point), relu=isinstance(module, nniq.LinearReLU))
            elif isinstance(module, nn.AdaptiveAvgPool2d):
                entry.update(op="adaptive_avg_pool2d", output_size=module.output_size)
            elif isinstance(module, nn.ReLU):
                entry["op"] = "relu"
            else:
                raise NotImplementedError(f"no export for {type(module).__name__} ({prefix})")
        elif node.target is operator.mul:
            scale = value_of(node.args[1])
            entry.update(op="channel_affine", scale=bias(f"{node.name}.scale", scale.reshape(-1)),
                         shift=bias(f"{node.name}.shift", torch.zeros(scale.numel())))
        elif node.target is operator.add and node.args[1].name in constants:
            # x * scale + shift: the normalisation; fold the shift into the channel_affine just written.
            previous = nodes[-1]
            assert previous["op"] == "channel_affine" and previous["output"] == inputs[0]
            tensors[previous["shift"]] = value_of(node.args[1]).reshape(-1).float().contiguous()
            names[node.name] = previous["output"]
            continue
        elif node.target is torch.quantize_per_tensor:
            entry.update(op="quantize", scale=float(value_of(node.args[1])),
                         zero_point=int(value_of(node.args[2])))
        elif node.target in (torch.ops.quantized.add_relu, torch.ops.quantized.add):
            entry.update(op="quantized_add", scale=float(value_of(node.args[2])),
                         zero_point=int(value_of(node.args[3])),
                         relu=node.target is torch.ops.quantized.add_relu)
        elif node.target is torch.flatten:
            entry["op"] = "flatten"
        elif node.op == "call_method" and node.target == "dequantize":
            entry["op"] = "dequantize"
        else:
            raise NotImplementedError(f"no export for {node.op} {node.target}")
        nodes.append({key: value for key, value in entry.items() if value is not None})
        names[node.name] = node.name
    return {"format": "compact/1", "engine": ENGINE, "nodes": nodes, "output": output, "tensors": tensors}
