"""The compact model format of the `compress` challenge: its schema, its bytes, and the loader that runs it.

A compressed model is an **artifact**: a plain dict of an architecture in a small fixed
schema and the tensors it names. The grader serialises it with ``pack`` (the model's size
is the length of those bytes), and rebuilds and runs it with ``build``, in a process that
runs none of your code. Nothing is ever pickled, and no code travels: only the ops below.

    artifact = {
        "format": "compact/1",
        "engine": "x86",              # kernels for the quantized ops: x86 | fbgemm | onednn | qnnpack
        "nodes": [node, ...],         # run in order; the first reads "image": [B, 3, 64, 64] float32 in [0, 1]
        "output": "logits",           # the value returned: [B, 10] float logits
        "tensors": {name: tensor},    # plain tensors: float32, float16, bfloat16, int8, uint8 or int32
    }
    node = {"op": "conv2d", "inputs": ["image"], "output": "x1", "weight": "stem.weight", "stride": 2, ...}

Ops (``inputs``: value names; ``output``: a new name). *Float* values are float32
tensors; *quantized* values are quint8 tensors (``quantize`` makes them):

| op | inputs | fields | on |
|---|---|---|---|
| ``conv2d`` | 1 | weight, bias?, stride?, padding?, dilation?, groups? | float |
| ``linear`` | 1 | weight, bias? | float |
| ``batch_norm`` | 1 | mean, var, weight?, bias?, eps? | float |
| ``channel_affine`` | 1 | scale, shift (``x * scale[c] + shift[c]``) | float |
| ``add`` | 2 | | float |
| ``quantize`` | 1 | scale, zero_point (numbers) | float -> quantized |
| ``dequantize`` | 1 | | quantized -> float |
| ``quantized_conv2d`` | 1 | weight (affine int8), bias?, scale, zero_point, relu?, and conv2d's fields | quantized |
| ``quantized_linear`` | 1 | weight (affine int8), bias?, scale, zero_point, relu? | quantized |
| ``quantized_add`` | 2 | scale, zero_point, relu? | quantized |
| ``relu``, ``flatten`` | 1 | | either |
| ``max_pool2d``, ``avg_pool2d`` | 1 | kernel_size, stride?, padding? | either |
| ``adaptive_avg_pool2d`` | 1 | output_size? (default 1) | either |

A weight field (weight, bias, mean, var, scale, shift) names a plain float tensor, or
gives an **encoding**, decoded to float32 once when the model is built:

- ``{"encoding": "affine", "values": v, "scale": s, "zero_point": z, "axis": 0}``:
  ``(v - z) * s``; ``v`` int8 or uint8; ``s`` float and ``z`` integer, one per slice along
  ``axis`` (or one each, with ``"axis": None``). Quantized ops take only this, with int8 values.
- ``{"encoding": "codebook", "indices": i, "codebook": c}``: ``c[i]``; ``i`` uint8, ``c`` float, at most 256 entries.
- ``{"encoding": "sparse", "mask": m, "values": <a name, affine or codebook>, "shape": [..]}``:
  ``m`` uint8, one bit per element (``numpy.packbits(..., bitorder="little")`` of the flat
  tensor), the values of the set bits in order.

Use ``pack`` / ``unpack`` / ``size_bytes`` / ``build`` / ``export_float`` below; every error is a
``CompactError`` saying which node or tensor is wrong.
"""

from __future__ import annotations

import json
import math
import operator
import re
import struct
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

FORMAT = "compact/1"
MAGIC = b"CVCOMPACT1\0\0"  # 12 bytes, then u32 header length, the JSON header, the tensors' bytes
INPUT = "image"
INPUT_SHAPE = (3, 64, 64)
NUM_CLASSES = 10
ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")

# Bounds that keep a hostile artifact from costing the loader more than a sound one could need.
MAX_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024
MAX_NODES = 256
MAX_TENSORS = 1024
MAX_ELEMENTS = 32 * 1024 * 1024  # all tensors decoded, together
MAX_ACTIVATION = 512 * 1024  # elements of one value, per image (16 times the original's largest)
MAX_ACTIVATIONS = 2 * 1024 * 1024  # elements of all values together, per image
MAX_MACS = 250_000_000  # multiply-adds per image (about 4 times the original's)
MAX_DIM = 4096
NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,100}\Z")

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int8": torch.int8, "uint8": torch.uint8, "int32": torch.int32,
}
_DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
_FLOATS = (torch.float32, torch.float16, torch.bfloat16)
_INTEGERS = (torch.int8, torch.uint8, torch.int32)


class CompactError(ValueError):
    """The artifact does not follow the format; the message says where and how."""


# ---------------------------------------------------------------------------- the schema

_WEIGHT = "weight ref"
_OPTIONAL_WEIGHT = "optional weight ref"
_PAIR = "int or pair"
_POSITIVE_PAIR = "positive int or pair"

_OPS: dict[str, tuple[int, str, str, dict[str, str]]] = {
    # op: (inputs, input kind, output kind, {field: type})
    "conv2d": (1, "float", "float", {"weight": _WEIGHT, "bias": _OPTIONAL_WEIGHT, "stride": _POSITIVE_PAIR,
                                      "padding": _PAIR, "dilation": _POSITIVE_PAIR, "groups": "groups"}),
    "linear": (1, "float", "float", {"weight": _WEIGHT, "bias": _OPTIONAL_WEIGHT}),
    "batch_norm": (1, "float", "float", {"mean": _WEIGHT, "var": _WEIGHT, "weight": _OPTIONAL_WEIGHT,
                                          "bias": _OPTIONAL_WEIGHT, "eps": "eps"}),
    "channel_affine": (1, "float", "float", {"scale": _WEIGHT, "shift": _WEIGHT}),
    "add": (2, "float", "float", {}),
    "quantize": (1, "float", "quantized", {"scale": "qscale", "zero_point": "qzero"}),
    "dequantize": (1, "quantized", "float", {}),
    "quantized_conv2d": (1, "quantized", "quantized", {
        "weight": _WEIGHT, "bias": _OPTIONAL_WEIGHT, "scale": "qscale", "zero_point": "qzero", "relu": "bool",
        "stride": _POSITIVE_PAIR, "padding": _PAIR, "dilation": _POSITIVE_PAIR, "groups": "groups"}),
    "quantized_linear": (1, "quantized", "quantized", {"weight": _WEIGHT, "bias": _OPTIONAL_WEIGHT,
                                                         "scale": "qscale", "zero_point": "qzero", "relu": "bool"}),
    "quantized_add": (2, "quantized", "quantized", {"scale": "qscale", "zero_point": "qzero", "relu": "bool"}),
    "relu": (1, "either", "same", {}),
    "flatten": (1, "either", "same", {}),
    "max_pool2d": (1, "either", "same", {"kernel_size": _POSITIVE_PAIR, "stride": _POSITIVE_PAIR,
                                          "padding": _PAIR}),
    "avg_pool2d": (1, "either", "same", {"kernel_size": _POSITIVE_PAIR, "stride": _POSITIVE_PAIR,
                                          "padding": _PAIR}),
    "adaptive_avg_pool2d": (1, "either", "same", {"output_size": _POSITIVE_PAIR}),
}
_REQUIRED = {
    "conv2d": ("weight",), "linear": ("weight",), "batch_norm": ("mean", "var"),
    "channel_affine": ("scale", "shift"), "quantize": ("scale", "zero_point"),
    "quantized_conv2d": ("weight", "scale", "zero_point"), "quantized_linear": ("weight", "scale", "zero_point"),
    "quantized_add": ("scale", "zero_point"), "max_pool2d": ("kernel_size",), "avg_pool2d": ("kernel_size",),
}
QUANTIZED_OPS = ("quantized_conv2d", "quantized_linear", "quantized_add")


def _where(index: int, node: dict[str, Any]) -> str:
    op = node.get("op")
    return f"node {index} ({op})" if isinstance(op, str) and op in _OPS else f"node {index}"


def _pair(value: Any, what: str, low: int, high: int) -> tuple[int, int]:
    if type(value) is int:
        value = [value, value]
    if (type(value) is not list or len(value) != 2 or any(type(v) is not int for v in value)
            or not all(low <= v <= high for v in value)):
        raise CompactError(f"{what} must be an integer or a pair of integers from {low} to {high}")
    return int(value[0]), int(value[1])


def _check_field(kind: str, value: Any, what: str, tensors: dict[str, Tensor]) -> None:
    if kind in (_WEIGHT, _OPTIONAL_WEIGHT):
        if value is None and kind == _OPTIONAL_WEIGHT:
            return
        _check_ref(value, what, tensors, depth=0)
    elif kind == _PAIR:
        _pair(value, what, 0, 16)
    elif kind == _POSITIVE_PAIR:
        _pair(value, what, 1, 64)
    elif kind == "groups":
        if type(value) is not int or not 1 <= value <= MAX_DIM:
            raise CompactError(f"{what} must be an integer from 1 to {MAX_DIM}")
    elif kind in ("eps", "qscale"):
        if type(value) not in (int, float) or not (math.isfinite(value) and value > 0):
            raise CompactError(f"{what} must be a finite number above 0")
    elif kind == "qzero":
        if type(value) is not int or not 0 <= value <= 255:
            raise CompactError(f"{what} must be an integer from 0 to 255 (quint8)")
    elif kind == "bool" and type(value) is not bool:
        raise CompactError(f"{what} must be true or false")


def _check_ref(ref: Any, what: str, tensors: dict[str, Tensor], depth: int) -> None:
    """A tensor name, or an encoding whose parts name tensors of the right kinds."""
    if type(ref) is str:
        tensor = _named(ref, what, tensors)
        if tensor.dtype not in _FLOATS:
            raise CompactError(f"{what}: tensor {ref!r} is {_DTYPE_NAMES[tensor.dtype]}; a plain weight must be "
                               "float32, float16 or bfloat16 (store integers with an affine encoding)")
        return
    if type(ref) is not dict or type(ref.get("encoding")) is not str:
        raise CompactError(f"{what} must name a tensor or be an encoding dict with an \"encoding\" field")
    encoding = ref["encoding"]
    fields = {"affine": {"encoding", "values", "scale", "zero_point", "axis"},
              "codebook": {"encoding", "indices", "codebook"},
              "sparse": {"encoding", "mask", "values", "shape"}}.get(encoding)
    if fields is None:
        raise CompactError(f"{what}: unknown encoding {str(encoding)[:40]!r} (affine, codebook or sparse)")
    if set(ref) != fields:
        raise CompactError(f"{what}: a {encoding} encoding has exactly the fields {sorted(fields)}")
    if encoding == "affine":
        values = _named(ref["values"], f"{what} (values)", tensors)
        scale = _named(ref["scale"], f"{what} (scale)", tensors)
        zero = _named(ref["zero_point"], f"{what} (zero_point)", tensors)
        if values.dtype not in (torch.int8, torch.uint8):
            raise CompactError(f"{what}: affine values must be int8 or uint8")
        if scale.dtype not in _FLOATS or zero.dtype not in _INTEGERS:
            raise CompactError(f"{what}: an affine scale must be a float tensor and its zero_point an integer one")
        axis = ref["axis"]
        if axis is None:
            slices = 1
            if scale.numel() != 1 or zero.numel() != 1:
                raise CompactError(f"{what}: with \"axis\": null, scale and zero_point hold one number each")
        else:
            if type(axis) is not int or not 0 <= axis < values.dim():
                raise CompactError(f"{what}: axis must be null or a dimension of the values")
            slices = values.shape[axis]
            if tuple(scale.shape) != (slices,) or tuple(zero.shape) != (slices,):
                raise CompactError(f"{what}: scale and zero_point must have shape [{slices}] (one per slice "
                                   f"along axis {axis})")
        if slices and not bool(torch.isfinite(scale.float()).all()):
            raise CompactError(f"{what}: an affine scale must be finite")
    elif encoding == "codebook":
        indices = _named(ref["indices"], f"{what} (indices)", tensors)
        book = _named(ref["codebook"], f"{what} (codebook)", tensors)
        if indices.dtype != torch.uint8 or book.dtype not in _FLOATS or book.dim() != 1:
            raise CompactError(f"{what}: codebook indices must be uint8 and the codebook a 1-D float tensor")
        if not 1 <= book.numel() <= 256 or (indices.numel() and int(indices.max()) >= book.numel()):
            raise CompactError(f"{what}: the codebook has 1 to 256 entries and every index is below its length")
    else:
        if depth > 0:
            raise CompactError(f"{what}: the values of a sparse encoding cannot be sparse themselves")
        shape = ref["shape"]
        if type(shape) is not list or not 1 <= len(shape) <= 4 or any(type(n) is not int or n < 0 for n in shape):
            raise CompactError(f"{what}: a sparse encoding's shape is a list of 1 to 4 sizes")
        numel = math.prod(shape)
        if numel > MAX_ELEMENTS:
            raise CompactError(f"{what}: a sparse shape of more than {MAX_ELEMENTS} elements")
        mask = _named(ref["mask"], f"{what} (mask)", tensors)
        if mask.dtype != torch.uint8 or tuple(mask.shape) != ((numel + 7) // 8,):
            raise CompactError(f"{what}: the mask must be uint8 of shape [{(numel + 7) // 8}] (one bit per element)")
        _check_ref(ref["values"], f"{what} (values)", tensors, depth + 1)


def _named(name: Any, what: str, tensors: dict[str, Tensor]) -> Tensor:
    if type(name) is not str or name not in tensors:
        shown = name[:100] if type(name) is str else type(name).__name__
        raise CompactError(f"{what}: names no tensor of the artifact ({shown!r})")
    return tensors[name]


def _ref_names(ref: Any) -> list[str]:
    if ref is None:
        return []
    if type(ref) is str:
        return [ref]
    parts = [ref[key] for key in ("values", "scale", "zero_point", "indices", "codebook", "mask") if key in ref]
    names = [part for part in parts if type(part) is str]
    if ref.get("encoding") == "sparse":
        names += _ref_names(ref["values"])
    return names


def validate(artifact: Any) -> None:
    """Check ``artifact`` against the schema (fields, types, names, value kinds, shapes and bounds)."""
    if type(artifact) is not dict:
        raise CompactError(f"an artifact is a dict, not a {type(artifact).__name__}")
    expected = {"format", "engine", "nodes", "output", "tensors"}
    if set(artifact) != expected:
        got = sorted(str(key)[:40] for key in artifact)[:10]
        raise CompactError(f"an artifact has exactly the fields {sorted(expected)}; got {got}")
    if artifact["format"] != FORMAT:
        raise CompactError(f"\"format\" must be {FORMAT!r}")
    if artifact["engine"] not in ENGINES:
        raise CompactError(f"\"engine\" must be one of {', '.join(ENGINES)}")
    tensors = artifact["tensors"]
    if type(tensors) is not dict or len(tensors) > MAX_TENSORS:
        raise CompactError(f"\"tensors\" must be a dict of at most {MAX_TENSORS} named tensors")
    total = 0
    for name, tensor in tensors.items():
        if type(name) is not str or not NAME.match(name):
            raise CompactError(f"tensor names are 1 to 100 letters, digits or _.:/- ({str(name)[:100]!r} is not)")
        if type(tensor) is not torch.Tensor or tensor.dtype not in _DTYPE_NAMES or tensor.layout != torch.strided:
            raise CompactError(f"tensor {name!r} must be a plain dense tensor of dtype "
                               f"{', '.join(DTYPES)}")
        if tensor.dim() > 4:
            raise CompactError(f"tensor {name!r} has more than 4 dimensions")
        total += tensor.numel()
    if total > MAX_ELEMENTS:
        raise CompactError(f"the artifact's tensors hold more than {MAX_ELEMENTS} elements")
    nodes = artifact["nodes"]
    if type(nodes) is not list or not 1 <= len(nodes) <= MAX_NODES:
        raise CompactError(f"\"nodes\" must be a list of 1 to {MAX_NODES} nodes")
    used: set[str] = set()
    for index, node in enumerate(nodes):
        if type(node) is not dict:
            raise CompactError(f"node {index} must be a dict")
        where = _where(index, node)
        if node.get("op") not in _OPS:
            raise CompactError(f"{where}: unknown op {str(node.get('op'))[:40]!r}; the ops are {', '.join(_OPS)}")
        count, _, _, fields = _OPS[node["op"]]
        unknown = set(node) - {"op", "inputs", "output", *fields}
        if unknown:
            raise CompactError(f"{where}: unknown field(s) {sorted(str(k)[:40] for k in unknown)}")
        missing = [f for f in _REQUIRED.get(node["op"], ()) if f not in node]
        if missing:
            raise CompactError(f"{where}: missing field(s) {missing}")
        inputs = node.get("inputs")
        if type(inputs) is not list or len(inputs) != count or any(type(i) is not str for i in inputs):
            raise CompactError(f"{where}: \"inputs\" must be a list of {count} value name(s)")
        if type(node.get("output")) is not str or not NAME.match(node["output"]):
            raise CompactError(f"{where}: \"output\" must be a new value name (letters, digits, _.:/-)")
        for field, kind in fields.items():
            if field in node:
                _check_field(kind, node[field], f"{where}, field {field!r}", tensors)
                used.update(_ref_names(node[field]) if "weight ref" in kind else [])
    unused = sorted(set(tensors) - used)
    if unused:
        raise CompactError(f"tensor(s) no node uses: {', '.join(unused[:5])}{' ...' if len(unused) > 5 else ''}")
    if type(artifact["output"]) is not str:
        raise CompactError("\"output\" must name a value")
    _infer(artifact)


# ---------------------------------------------------------------------------- shapes and kinds


def _infer(artifact: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Each value's kind (float or quantized) and shape per image; checks every node's inputs fit."""
    values: dict[str, tuple[str, tuple[int, ...]]] = {INPUT: ("float", INPUT_SHAPE)}
    macs = 0
    elements = math.prod(INPUT_SHAPE)
    tensors = artifact["tensors"]
    for index, node in enumerate(artifact["nodes"]):
        where = _where(index, node)
        op = node["op"]
        _, wanted, produced, _ = _OPS[op]
        args = []
        for name in node["inputs"]:
            if name not in values:
                raise CompactError(f"{where}: input {name[:100]!r} is not the image nor the output of an earlier node")
            args.append(values[name])
        kinds = {kind for kind, _ in args}
        if wanted != "either" and kinds != {wanted}:
            raise CompactError(f"{where}: takes {wanted} values, got {' and '.join(sorted(kinds))} "
                               f"({'quantize' if wanted == 'quantized' else 'dequantize'} first)")
        if len(kinds) != 1:
            raise CompactError(f"{where}: its inputs mix float and quantized values")
        kind = args[0][0] if produced == "same" else produced
        shape, node_macs = _output_shape(op, node, [s for _, s in args], tensors, where)
        macs += node_macs
        elements += math.prod(shape)
        if math.prod(shape) > MAX_ACTIVATION or elements > MAX_ACTIVATIONS or macs > MAX_MACS:
            raise CompactError(f"{where}: the model grows beyond what this format runs (per image: "
                               f"{MAX_ACTIVATION} elements in one value, {MAX_ACTIVATIONS} in all, "
                               f"{MAX_MACS} multiply-adds)")
        if node["output"] in values:
            raise CompactError(f"{where}: output {node['output']!r} is already a value; names are single-use")
        values[node["output"]] = (kind, shape)
    output = artifact["output"]
    if output not in values:
        raise CompactError("\"output\" names no value of the model")
    kind, shape = values[output]
    if kind != "float" or shape != (NUM_CLASSES,):
        raise CompactError(f"the output must be float logits of shape [B, {NUM_CLASSES}]; "
                           f"{output!r} is {kind} of shape [B, {', '.join(map(str, shape))}]")
    return values


def _ref_shape(ref: Any, tensors: dict[str, Tensor]) -> tuple[int, ...]:
    if type(ref) is str:
        return tuple(tensors[ref].shape)
    if ref["encoding"] == "affine":
        return tuple(tensors[ref["values"]].shape)
    if ref["encoding"] == "codebook":
        return tuple(tensors[ref["indices"]].shape)
    return tuple(ref["shape"])


def _sized(node: dict[str, Any], field: str, shape: tuple[int, ...], tensors: dict[str, Tensor], where: str) -> None:
    ref = node.get(field)
    if ref is not None and _ref_shape(ref, tensors) != shape:
        raise CompactError(f"{where}: {field} must have shape {list(shape)}, has {list(_ref_shape(ref, tensors))}")


def _output_shape(op: str, node: dict[str, Any], shapes: list[tuple[int, ...]], tensors: dict[str, Tensor],
                  where: str) -> tuple[tuple[int, ...], int]:
    shape = shapes[0]
    if op in ("conv2d", "quantized_conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm",
              "channel_affine") and len(shape) != 3:
        raise CompactError(f"{where}: takes [B, C, H, W] values, got [B, {', '.join(map(str, shape))}]")
    if op in ("conv2d", "quantized_conv2d"):
        weight = _ref_shape(node["weight"], tensors)
        groups = node.get("groups", 1)
        if len(weight) != 4 or weight[0] % groups or shape[0] != weight[1] * groups:
            raise CompactError(f"{where}: weight of shape {list(weight)} with groups={groups} does not take "
                               f"{shape[0]} input channels (it must be [out, in / groups, kh, kw])")
        if op == "quantized_conv2d":
            _quantized_weight(node["weight"], tensors, where)
        _sized(node, "bias", (weight[0],), tensors, where)
        kernel = weight[2:]
        stride = _pair(node.get("stride", 1), where, 1, 64)
        padding = _pair(node.get("padding", 0), where, 0, 16)
        dilation = _pair(node.get("dilation", 1), where, 1, 64)
        size = [(shape[1 + i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in (0, 1)]
        if min(size) < 1:
            raise CompactError(f"{where}: the output would be empty ({size[0]} x {size[1]})")
        return (weight[0], size[0], size[1]), weight[0] * size[0] * size[1] * weight[1] * kernel[0] * kernel[1]
    if op in ("linear", "quantized_linear"):
        weight = _ref_shape(node["weight"], tensors)
        if len(shape) != 1 or len(weight) != 2 or weight[1] != shape[0]:
            raise CompactError(f"{where}: weight of shape {list(weight)} does not take [B, "
                               f"{', '.join(map(str, shape))}] inputs (it must be [out, in]; flatten first)")
        if op == "quantized_linear":
            _quantized_weight(node["weight"], tensors, where)
        _sized(node, "bias", (weight[0],), tensors, where)
        return (weight[0],), weight[0] * weight[1]
    if op in ("batch_norm", "channel_affine"):
        for field in ("mean", "var", "weight", "bias", "scale", "shift"):
            _sized(node, field, (shape[0],), tensors, where)
        return shape, 0
    if op in ("add", "quantized_add"):
        if shapes[0] != shapes[1]:
            raise CompactError(f"{where}: adds values of different shapes")
        return shape, 0
    if op in ("max_pool2d", "avg_pool2d"):
        kernel = _pair(node["kernel_size"], where, 1, 64)
        stride = _pair(node.get("stride", node["kernel_size"]), where, 1, 64)
        padding = _pair(node.get("padding", 0), where, 0, 16)
        if any(2 * padding[i] > kernel[i] for i in (0, 1)):
            raise CompactError(f"{where}: padding must be at most half the kernel size")
        size = [(shape[1 + i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in (0, 1)]
        if min(size) < 1:
            raise CompactError(f"{where}: the output would be empty")
        return (shape[0], size[0], size[1]), 0
    if op == "adaptive_avg_pool2d":
        out = _pair(node.get("output_size", 1), where, 1, 64)
        return (shape[0], out[0], out[1]), 0
    if op == "flatten":
        return (math.prod(shape),), 0
    return shape, 0  # relu, quantize, dequantize


def _quantized_weight(ref: Any, tensors: dict[str, Tensor], where: str) -> None:
    if type(ref) is not dict or ref.get("encoding") != "affine" or tensors[ref["values"]].dtype != torch.int8:
        raise CompactError(f"{where}: the weight of a quantized op must be an affine encoding with int8 values")
    if ref["axis"] not in (None, 0):
        raise CompactError(f"{where}: a quantized weight is per tensor (axis null) or per output channel (axis 0)")


# ---------------------------------------------------------------------------- bytes


def pack(artifact: Any) -> bytes:
    """The artifact as bytes: its size is the length of these. Validates it first."""
    validate(artifact)
    names = list(artifact["tensors"])
    header = {key: artifact[key] for key in ("format", "engine", "nodes", "output")}
    header["tensors"] = [[name, _DTYPE_NAMES[artifact["tensors"][name].dtype],
                          list(artifact["tensors"][name].shape)] for name in names]
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(text) > MAX_HEADER_BYTES:
        raise CompactError(f"the architecture takes more than {MAX_HEADER_BYTES} bytes of JSON")
    parts = [MAGIC, struct.pack("<I", len(text)), text]
    for name in names:
        tensor = artifact["tensors"][name].detach().to("cpu").contiguous()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.view(torch.int16)
        parts.append(tensor.numpy().astype(tensor.numpy().dtype.newbyteorder("<"), copy=False).tobytes())
    blob = b"".join(parts)
    if len(blob) > MAX_BYTES:
        raise CompactError(f"the artifact is larger than {MAX_BYTES} bytes")
    return blob


def unpack(blob: bytes) -> dict[str, Any]:
    """The artifact in ``blob`` (bytes from ``pack``), validated. Decodes JSON and raw numbers only."""
    if len(blob) > MAX_BYTES:
        raise CompactError(f"the artifact is larger than {MAX_BYTES} bytes")
    head = len(MAGIC) + 4
    if len(blob) < head or blob[:len(MAGIC)] != MAGIC:
        raise CompactError("these bytes are not a packed artifact (wrong magic)")
    (length,) = struct.unpack("<I", blob[len(MAGIC):head])
    if length > MAX_HEADER_BYTES or head + length > len(blob):
        raise CompactError("the packed artifact's header is truncated or too long")
    try:
        header = json.loads(blob[head:head + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CompactError("the packed artifact's header is not valid JSON") from None
    if type(header) is not dict or type(header.get("tensors")) is not list or len(header["tensors"]) > MAX_TENSORS:
        raise CompactError("the packed artifact's header has no valid tensor list")
    tensors: dict[str, Tensor] = {}
    offset = head + length
    for entry in header["tensors"]:
        if (type(entry) is not list or len(entry) != 3 or type(entry[0]) is not str or entry[1] not in DTYPES
                or type(entry[2]) is not list or len(entry[2]) > 4
                or any(type(n) is not int or n < 0 for n in entry[2])):
            raise CompactError("the packed artifact's tensor list is malformed")
        name, dtype, shape = entry
        if name in tensors:
            raise CompactError(f"tensor {name[:100]!r} appears twice")
        storage = np.dtype("<i2") if dtype == "bfloat16" else np.dtype(str(DTYPES[dtype]).replace("torch.", ""))
        count = math.prod(shape)
        if count > MAX_ELEMENTS or offset + count * storage.itemsize > len(blob):
            raise CompactError("the packed artifact is shorter than its tensor list says")
        array = np.frombuffer(blob, dtype=storage.newbyteorder("<"), count=count, offset=offset).reshape(shape)
        tensor = torch.from_numpy(array.astype(storage.newbyteorder("="), copy=True))
        tensors[name] = tensor.view(torch.bfloat16) if dtype == "bfloat16" else tensor
        offset += count * storage.itemsize
    if offset != len(blob):
        raise CompactError("the packed artifact has bytes after its last tensor")
    artifact = {key: header.get(key) for key in ("format", "engine", "nodes", "output")}
    artifact["tensors"] = tensors
    validate(artifact)
    return artifact


def size_bytes(artifact: Any) -> int:
    """The artifact's size: the length of ``pack(artifact)``."""
    return len(pack(artifact))


# ---------------------------------------------------------------------------- decoding weights


def decode(ref: Any, tensors: dict[str, Tensor]) -> Tensor:
    """The float32 tensor a weight field stands for (its encoding undone)."""
    if type(ref) is str:
        return tensors[ref].float()
    if ref["encoding"] == "affine":
        values = tensors[ref["values"]].float()
        scale = tensors[ref["scale"]].float()
        zero = tensors[ref["zero_point"]].float()
        if ref["axis"] is None:
            return (values - zero.reshape(())) * scale.reshape(())
        view = [1] * values.dim()
        view[ref["axis"]] = -1
        return (values - zero.view(view)) * scale.view(view)
    if ref["encoding"] == "codebook":
        return tensors[ref["codebook"]].float()[tensors[ref["indices"]].long()]
    shape = ref["shape"]
    numel = math.prod(shape)
    bits = np.unpackbits(tensors[ref["mask"]].numpy(), bitorder="little")
    if bits[numel:].any():
        raise CompactError("a sparse mask sets bits past the end of its tensor")
    keep = torch.from_numpy(bits[:numel].astype(bool))
    values = decode(ref["values"], tensors).reshape(-1)
    if values.numel() != int(keep.sum()):
        raise CompactError(f"a sparse encoding has {values.numel()} values for {int(keep.sum())} set mask bits")
    dense = torch.zeros(numel, dtype=torch.float32)
    dense[keep] = values
    return dense.reshape(shape)


def _qweight(ref: dict[str, Any], tensors: dict[str, Tensor]) -> Tensor:
    values = tensors[ref["values"]]
    scale = tensors[ref["scale"]].double()
    zero = tensors[ref["zero_point"]].long()
    if ref["axis"] is None:
        return torch._make_per_tensor_quantized_tensor(values, float(scale.reshape(())), int(zero.reshape(())))
    return torch._make_per_channel_quantized_tensor(values, scale, zero, 0)


# ---------------------------------------------------------------------------- building and running


Step = tuple[Callable[..., Tensor], list[str], str]


class CompactModel(nn.Module):
    """A model rebuilt from an artifact: runs its nodes in order. ``forward(images) -> logits``."""

    def __init__(self, steps: list[Step], output: str, modules: list[nn.Module], last_use: dict[str, int]) -> None:
        super().__init__()
        self._steps = steps
        self._output = output
        self._last_use = last_use
        self.parts = nn.ModuleList(modules)  # quantized modules, so that .eval() and printing reach them

    def forward(self, images: Tensor) -> Tensor:
        values = {INPUT: images}
        for index, (run, inputs, output) in enumerate(self._steps):
            values[output] = run(*(values[name] for name in inputs))
            for name in inputs:
                if self._last_use.get(name) == index:
                    del values[name]
        return values[self._output]


def build(artifact: Any) -> CompactModel:
    """The runnable model of ``artifact`` (validated, weights decoded, quantized weights prepacked), in eval mode."""
    validate(artifact)
    tensors = artifact["tensors"]
    quantized = any(node["op"] in QUANTIZED_OPS for node in artifact["nodes"])
    if quantized:
        if artifact["engine"] not in torch.backends.quantized.supported_engines:
            raise CompactError(f"the quantized engine {artifact['engine']!r} is not available on this machine")
        torch.backends.quantized.engine = artifact["engine"]
    steps: list[Step] = []
    modules: list[nn.Module] = []
    last_use: dict[str, int] = {}
    for index, node in enumerate(artifact["nodes"]):
        for name in node["inputs"]:
            last_use[name] = index
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 2.14 calls its quantized tensors deprecated; they still run
            try:
                run = _step(node, tensors, modules)
            except CompactError:
                raise
            except (RuntimeError, ValueError, TypeError) as err:
                reason = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
                raise CompactError(f"{_where(index, node)}: cannot be built: {reason}") from None
        steps.append((run, list(node["inputs"]), node["output"]))
    last_use.pop(artifact["output"], None)
    model = CompactModel(steps, artifact["output"], modules, last_use).eval()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logits = model(torch.zeros(2, *INPUT_SHAPE))
    except (RuntimeError, ValueError, TypeError) as err:
        raise CompactError(f"the rebuilt model fails on an image: {str(err).splitlines()[0][:300]}") from None
    if tuple(logits.shape) != (2, NUM_CLASSES) or not logits.is_floating_point():
        raise CompactError(f"the rebuilt model returns {tuple(logits.shape)} {logits.dtype}, not [B, 10] float logits")
    return model


def _step(node: dict[str, Any], tensors: dict[str, Tensor], modules: list[nn.Module]) -> Callable[..., Tensor]:
    op = node["op"]

    def weight(field: str) -> Tensor | None:
        ref = node.get(field)
        return None if ref is None else decode(ref, tensors)

    conv = {"stride": _pair(node.get("stride", 1), op, 1, 64), "padding": _pair(node.get("padding", 0), op, 0, 16),
            "dilation": _pair(node.get("dilation", 1), op, 1, 64), "groups": node.get("groups", 1)}
    if op == "conv2d":
        w, b = weight("weight"), weight("bias")
        return lambda x: F.conv2d(x, w, b, **conv)
    if op == "linear":
        w, b = weight("weight"), weight("bias")
        return lambda x: F.linear(x, w, b)
    if op == "batch_norm":
        mean, var, w, b, eps = weight("mean"), weight("var"), weight("weight"), weight("bias"), node.get("eps", 1e-5)
        return lambda x: F.batch_norm(x, mean, var, w, b, False, 0.0, eps)
    if op == "channel_affine":
        scale, shift = weight("scale").view(1, -1, 1, 1), weight("shift").view(1, -1, 1, 1)  # type: ignore[union-attr]
        return lambda x: torch.addcmul(shift, x, scale)
    if op == "add":
        return operator.add
    if op == "quantize":
        scale, zero = float(node["scale"]), int(node["zero_point"])
        return lambda x: torch.quantize_per_tensor(x, scale, zero, torch.quint8)
    if op == "dequantize":
        return lambda x: x.dequantize()
    if op in ("quantized_conv2d", "quantized_linear"):
        qweight = _qweight(node["weight"], tensors)
        bias = weight("bias")
        module = _quantized_module(op, node, qweight, conv)
        module.set_weight_bias(qweight, bias)
        module.scale, module.zero_point = float(node["scale"]), int(node["zero_point"])
        modules.append(module)
        return module
    if op == "quantized_add":
        add = torch.ops.quantized.add_relu if node.get("relu") else torch.ops.quantized.add
        scale, zero = float(node["scale"]), int(node["zero_point"])
        return lambda a, b: add(a, b, scale, zero)
    if op == "relu":
        return F.relu
    if op == "flatten":
        return lambda x: torch.flatten(x, 1)
    if op in ("max_pool2d", "avg_pool2d"):
        kernel = _pair(node["kernel_size"], op, 1, 64)
        stride = _pair(node.get("stride", node["kernel_size"]), op, 1, 64)
        padding = _pair(node.get("padding", 0), op, 0, 16)
        pool = F.max_pool2d if op == "max_pool2d" else F.avg_pool2d
        return lambda x: pool(x, kernel, stride, padding)
    size = _pair(node.get("output_size", 1), op, 1, 64)
    return lambda x: F.adaptive_avg_pool2d(x, size)


def _quantized_module(op: str, node: dict[str, Any], qweight: Tensor, conv: dict[str, Any]) -> Any:
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.quantized as nnq

    relu = bool(node.get("relu", False))
    if op == "quantized_linear":
        kind = nniq.LinearReLU if relu else nnq.Linear
        return kind(qweight.shape[1], qweight.shape[0])
    kind = nniq.ConvReLU2d if relu else nnq.Conv2d
    out_channels, per_group, kh, kw = qweight.shape
    return kind(per_group * conv["groups"], out_channels, (kh, kw), stride=conv["stride"], padding=conv["padding"],
                dilation=conv["dilation"], groups=conv["groups"])


# ---------------------------------------------------------------------------- exporting a float model


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return type(module).__name__ == "Normalise" or super().is_leaf_module(module, qualified_name)


def export_float(model: nn.Module) -> dict[str, Any]:
    """The artifact of a float model built from Conv2d, BatchNorm2d, ReLU, Linear, pooling, flatten and adds.

    Tensors are stored as they are (float32): the size of ``model`` as it stands. Traced with
    ``torch.fx``; layers outside that list raise ``CompactError``.
    """
    graph = _Tracer().trace(model)
    modules = dict(model.named_modules())
    tensors: dict[str, Tensor] = {}
    nodes: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    output = ""

    def keep(name: str, tensor: Tensor | None) -> str | None:
        if tensor is None:
            return None
        tensors[name] = tensor.detach().float().clone().contiguous()
        return name

    for fx_node in graph.nodes:
        if fx_node.op == "placeholder":
            names[fx_node.name] = INPUT
            continue
        if fx_node.op == "output":
            output = names[fx_node.args[0].name]
            continue
        inputs = [names[a.name] for a in fx_node.args if isinstance(a, torch.fx.Node)]
        node: dict[str, Any] = {"inputs": inputs, "output": fx_node.name}
        target = fx_node.target
        if fx_node.op == "call_module":
            module = modules[str(target)]
            prefix = str(target)
            if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros" and isinstance(module.padding, tuple):
                node.update(op="conv2d", weight=keep(f"{prefix}.weight", module.weight),
                            bias=keep(f"{prefix}.bias", module.bias), stride=list(module.stride),
                            padding=list(module.padding), dilation=list(module.dilation), groups=module.groups)
            elif isinstance(module, nn.BatchNorm2d):
                node.update(op="batch_norm", mean=keep(f"{prefix}.running_mean", module.running_mean),
                            var=keep(f"{prefix}.running_var", module.running_var),
                            weight=keep(f"{prefix}.weight", module.weight), bias=keep(f"{prefix}.bias", module.bias),
                            eps=module.eps)
            elif type(module).__name__ == "Normalise":
                node.update(op="channel_affine", scale=keep(f"{prefix}.scale", module.scale.reshape(-1)),
                            shift=keep(f"{prefix}.shift", module.shift.reshape(-1)))
            elif isinstance(module, nn.ReLU):
                node["op"] = "relu"
            elif isinstance(module, nn.Linear):
                node.update(op="linear", weight=keep(f"{prefix}.weight", module.weight),
                            bias=keep(f"{prefix}.bias", module.bias))
            elif isinstance(module, nn.AdaptiveAvgPool2d):
                node.update(op="adaptive_avg_pool2d", output_size=list(_pair_of(module.output_size)))
            elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
                node.update(op="max_pool2d" if isinstance(module, nn.MaxPool2d) else "avg_pool2d",
                            kernel_size=list(_pair_of(module.kernel_size)), stride=list(_pair_of(module.stride)),
                            padding=list(_pair_of(module.padding)))
            elif isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
                node["op"] = "flatten"
            elif isinstance(module, nn.Identity):
                names[fx_node.name] = inputs[0]
                continue
            else:
                raise CompactError(f"export_float cannot export a {type(module).__name__} ({prefix})")
        elif target in (operator.add, torch.add) or (fx_node.op == "call_method" and target == "add"):
            node["op"] = "add"
        elif target in (F.relu, torch.relu) or (fx_node.op == "call_method" and target == "relu"):
            node["op"] = "relu"
        elif target is torch.flatten or (fx_node.op == "call_method" and target == "flatten"):
            if list(fx_node.args[1:]) + list(fx_node.kwargs.values()) not in ([1], [1, -1]):
                raise CompactError("export_float exports flatten(x, 1) only: the batch dimension stays")
            node["op"] = "flatten"
        else:
            raise CompactError(f"export_float cannot export {fx_node.op} {target}")
        nodes.append({key: value for key, value in node.items() if value is not None})
        names[fx_node.name] = fx_node.name
    artifact = {"format": FORMAT, "engine": "x86", "nodes": nodes, "output": output, "tensors": tensors}
    validate(artifact)
    return artifact


def _pair_of(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))
