"""A trained model as plain data: exported where the candidate's code runs, evaluated where none does.

Why: a model object returned by a candidate is candidate code. Calling it to predict
runs whatever its ``forward`` does, after the clock that limits training has
stopped: it can train itself on its first call, or do anything else. So the
challenge never predicts with the returned object. Instead, inside the timed call,
the model is turned into plain data (``export``): its computation as a torch.fx
graph whose every step is an allowlisted torch operation or standard layer, and
its weights as plain tensors. That crosses the channel like any reply (dicts,
lists, strings, numbers, tensors: no pickle). A worker that runs no candidate code
rebuilds it with this module (``rebuild``) and predicts. Nothing the candidate's
code does after ``export`` returned can change what is scored.

The description (``FORMAT``)::

    {"format": FORMAT,
     "nodes":   [{"op": ..., "name": str, "target": str, "args": [...], "kwargs": [...]}, ...],
     "modules": {qualified name: {"type": layer name, "config": {...}, "training": bool}},
     "tensors": {name: Tensor}}                  # the layers' weights and buffers, and other tensors

``op`` is ``input`` (the images), ``tensor`` (one of ``tensors``), ``module`` (a
layer of ``modules``, called), ``function`` (an allowlisted function, by name),
``method`` (an allowlisted tensor method, by name) or ``output``. Arguments are
tagged lists (``["node", name]``, ``["value", 3]``, ``["tuple", [...]]``, ...).
Each layer keeps the train/eval mode it was returned in. A model whose ``forward``
cannot be traced (Python control flow on tensor values) or uses something outside
the allowlists cannot be exported: ``ExportError`` says what, in the candidate's terms.

Rebuilding trusts nothing in the description: names are looked up in fixed tables
(never imported or evaluated), layers are built on the ``meta`` device and must
take exactly the tensors sent, with the shapes they declare, and sizes are capped.
A malformed description raises ``PlainModelError``.

Used by ``adapter.py`` (both sides). Depends on torch only; a challenge that grades
trained models the same way can copy it into its assets.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

FORMAT = "cvgrade-plain-model/1"
MAX_NODES = 20_000
MAX_MODULES = 5_000
MAX_TENSORS = 4_000
MAX_ARG_DEPTH = 8
MAX_ARG_ITEMS = 256
MAX_NAME_CHARS = 300

# ---------------------------------------------------------------------------- what a model may use

# Standard layers, rebuilt from their constructor arguments (read back from the layer's attributes).
LAYERS: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in (
    nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Bilinear,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
    nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax, nn.Softplus,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool1d,
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Upsample, nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d,
    nn.ReplicationPad2d, nn.PixelShuffle, nn.CosineSimilarity,
)}

# Functions, by the name written in the description. Pure tensor arithmetic only: nothing that
# reads files, starts anything, allocates by a size given as a number, or trains.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    **{f"operator.{name}": getattr(operator, name) for name in (
        "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "matmul", "getitem",
        "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor", "invert", "iadd", "isub", "imul", "itruediv")},
    "getattr": getattr,  # attribute reads, limited to TENSOR_ATTRIBUTES
    **{f"torch.{name}": getattr(torch, name) for name in (
        "relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "abs", "neg", "sign", "clamp", "clip",
        "flatten", "reshape", "cat", "concat", "stack", "hstack", "vstack", "squeeze", "unsqueeze",
        "transpose", "permute", "swapaxes", "movedim", "flip", "roll", "chunk", "split", "narrow",
        "add", "sub", "mul", "div", "true_divide", "pow", "matmul", "mm", "bmm", "einsum", "addmm", "outer",
        "mean", "sum", "prod", "amax", "amin", "max", "min", "maximum", "minimum", "argmax", "argmin",
        "logsumexp", "softmax", "log_softmax", "std", "var", "norm", "cumsum",
        "where", "gather", "index_select", "masked_fill", "topk", "sort", "diagonal", "t",
        "erf", "floor", "ceil", "round", "sin", "cos", "square", "reciprocal",
    )},
    **{f"torch.nn.functional.{name}": getattr(F, name) for name in (
        "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "hardswish",
        "hardsigmoid", "hardtanh", "sigmoid", "tanh", "softplus", "softmax", "log_softmax", "normalize",
        "linear", "bilinear", "conv1d", "conv2d", "conv_transpose2d", "batch_norm", "layer_norm", "group_norm",
        "instance_norm", "dropout", "dropout1d", "dropout2d", "alpha_dropout",
        "avg_pool2d", "max_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
        "pad", "interpolate", "pixel_shuffle", "cosine_similarity", "one_hot",
    )},
}
_FUNCTION_NAMES: dict[int, str] = {id(function): name for name, function in FUNCTIONS.items()}

# Tensor methods, called on a tensor the graph computed.
METHODS = frozenset((
    "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "permute", "transpose", "t",
    "contiguous", "squeeze", "unsqueeze", "expand", "expand_as", "repeat", "flip", "roll", "chunk", "split",
    "narrow", "select", "index_select", "gather", "masked_fill", "where",
    "mean", "sum", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "norm", "std", "var",
    "logsumexp", "softmax", "log_softmax", "cumsum", "topk", "sort",
    "clamp", "clamp_min", "clamp_max", "clip", "relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt",
    "abs", "neg", "pow", "square", "reciprocal", "sign", "floor", "ceil", "round",
    "add", "sub", "mul", "div", "matmul", "mm", "bmm",
    "add_", "sub_", "mul_", "div_", "relu_", "clamp_", "masked_fill_",
    "float", "double", "half", "bfloat16", "to", "type_as", "cpu", "cuda", "detach", "clone",
    "size", "dim", "numel",
))
TENSOR_ATTRIBUTES = frozenset(("shape", "ndim", "dtype", "device", "T", "mT"))

_DTYPES = {str(dtype).removeprefix("torch."): dtype for dtype in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.int32, torch.int16,
    torch.int8, torch.uint8, torch.bool)}
_MEMORY_FORMATS = {"contiguous_format": torch.contiguous_format, "channels_last": torch.channels_last,
                   "preserve_format": torch.preserve_format}


class ExportError(Exception):
    """The candidate's model cannot be described as plain data; the message says why, in their terms."""


class PlainModelError(ValueError):
    """A description that is malformed or asks for something outside the allowlists."""


# ---------------------------------------------------------------------------- export (candidate's side)


def export(model: nn.Module) -> dict[str, Any]:
    """``model`` as plain data (see the module docstring): a graph of allowlisted steps and copies of its tensors.

    Traces ``model.forward`` with torch.fx, so the model's code runs once, here; raises
    ``ExportError`` when its computation cannot be written down.
    """
    root = _Called(_unwrap(model))
    try:
        graph_module = fx.GraphModule(root, _Tracer().trace(root))
    except Exception as err:  # the model's own code raised while being traced
        raise ExportError(_trace_failure(err)) from None
    nodes: list[dict[str, Any]] = []
    modules: dict[str, dict[str, Any]] = {}
    tensors: dict[str, Tensor] = {}
    for node in graph_module.graph.nodes:
        entry: dict[str, Any] = {"op": "", "name": node.name, "target": ""}
        if node.op == "placeholder":
            entry["op"] = "input"
        elif node.op == "get_attr":
            value = _attribute(graph_module, str(node.target))
            if not isinstance(value, Tensor):
                raise ExportError(f"forward reads {node.target}, a {type(value).__name__}: only tensors can be read")
            tensors[str(node.target)] = _copy(value)
            entry.update(op="tensor", target=str(node.target))
        elif node.op == "call_module":
            target = str(node.target)
            layer = graph_module.get_submodule(target)
            if target not in modules:
                modules[target] = _export_layer(target, layer)
                for key, value in layer.state_dict().items():
                    tensors[f"{target}.{key}"] = _copy(value)
            entry.update(op="module", target=target)
        elif node.op == "call_function":
            name = _FUNCTION_NAMES.get(id(node.target))
            if name is None:
                raise ExportError(f"forward calls {_callable_name(node.target)}, which the grader cannot rebuild: "
                                  "use torch operations and standard torch.nn layers (see plain_model.py in the "
                                  "assets for the list)")
            if name == "getattr" and (len(node.args) != 2 or node.args[1] not in TENSOR_ATTRIBUTES):
                raise ExportError(f"forward reads the attribute {node.args[1:]!r} of a tensor; only "
                                  f"{', '.join(sorted(TENSOR_ATTRIBUTES))} can be read")
            entry.update(op="function", target=name)
        elif node.op == "call_method":
            if node.target not in METHODS:
                raise ExportError(f"forward calls the tensor method .{node.target}(), which the grader cannot "
                                  "rebuild (see plain_model.py in the assets for the list)")
            entry.update(op="method", target=str(node.target))
        elif node.op == "output":
            entry["op"] = "output"
        else:
            raise ExportError(f"unexpected step {node.op} in the traced model")
        if "args" not in entry:
            entry["args"] = [_export_arg(arg) for arg in node.args]
            entry["kwargs"] = [[key, _export_arg(value)] for key, value in node.kwargs.items()]
        nodes.append(entry)
    return {"format": FORMAT, "nodes": nodes, "modules": modules, "tensors": tensors}


class _Tracer(fx.Tracer):
    """torch.fx's tracer: standard torch.nn layers stay whole (they are rebuilt by type), the rest is traced."""


class _Called(nn.Module):
    """The model as the judge calls it, ``model(images)``, whatever its forward's signature says."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Any:
        return self.model(images)


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``torch.compile`` wrapper."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) and type(model).__name__ == "OptimizedModule" else model


def _trace_failure(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if "control flow" in text or isinstance(err, fx.proxy.TraceError):
        return ("the model's forward cannot be traced by torch.fx: it branches or loops on the values of a "
                f"tensor ({text[:300]}); write forward as a fixed sequence of tensor operations")
    return f"tracing the model's forward with torch.fx failed: {type(err).__name__}: {text[:300]}"


def _copy(tensor: Tensor) -> Tensor:
    return tensor.detach().clone()


def _attribute(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _callable_name(target: Any) -> str:
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return f"{module}.{name}" if module else str(name)


def _export_layer(target: str, layer: nn.Module) -> dict[str, Any]:
    kind = type(layer).__name__
    if LAYERS.get(kind) is not type(layer):
        raise ExportError(f"the layer {target} is a {type(layer).__module__}.{type(layer).__qualname__}, which the "
                          "grader cannot rebuild: use standard torch.nn layers (see plain_model.py in the assets "
                          "for the list), or write it with torch operations in forward")
    config: dict[str, Any] = {}
    for name, parameter in inspect.signature(type(layer).__init__).parameters.items():
        if name in ("self", "device", "dtype") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name == "bias" and (getattr(layer, "bias", None) is None or isinstance(layer.bias, Tensor)):
            config[name] = layer.bias is not None
            continue
        if not hasattr(layer, name):
            continue  # a constructor argument the layer does not keep: its default is used
        config[name] = _export_config_value(target, name, getattr(layer, name))
    return {"type": kind, "config": config, "training": bool(layer.training)}


def _export_config_value(target: str, name: str, value: Any) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, tuple | list) and all(v is None or type(v) in (int, float, bool) for v in value):
        return list(value)
    raise ExportError(f"the layer {target} has a setting {name} of type {type(value).__name__} the grader cannot "
                      "rebuild")


def _export_arg(value: Any, depth: int = 0) -> list[Any]:
    if depth > MAX_ARG_DEPTH:
        raise ExportError("an argument in forward is nested too deeply")
    if isinstance(value, fx.Node):
        return ["node", value.name]
    if value is None or type(value) in (bool, int, float, str):
        return ["value", value]
    if isinstance(value, tuple | torch.Size):
        return ["tuple", [_export_arg(item, depth + 1) for item in value]]
    if isinstance(value, list):
        return ["list", [_export_arg(item, depth + 1) for item in value]]
    if isinstance(value, dict) and all(type(key) is str for key in value):
        return ["dict", [[key, _export_arg(item, depth + 1)] for key, item in value.items()]]
    if isinstance(value, slice):
        return ["slice", [_export_arg(part, depth + 1) for part in (value.start, value.stop, value.step)]]
    if value is Ellipsis:
        return ["ellipsis"]
    if isinstance(value, torch.dtype) and str(value).removeprefix("torch.") in _DTYPES:
        return ["dtype", str(value).removeprefix("torch.")]
    if isinstance(value, torch.device):
        return ["device"]
    if isinstance(value, torch.memory_format):
        name = next((key for key, known in _MEMORY_FORMATS.items() if known == value), None)
        if name is not None:
            return ["memory_format", name]
    raise ExportError(f"forward passes a {type(value).__name__} to an operation; the grader can rebuild numbers, "
                      "strings, tuples, lists, slices, dtypes and devices")


# ---------------------------------------------------------------------------- rebuild (trusted side)


class PlainModel(nn.Module):
    """A model rebuilt from its description: runs the graph step by step with the allowlisted operations.

    Call it like the original: ``logits = model(images)``. Its layers keep the modes they were
    exported in; nothing here calls ``train()`` or ``eval()`` on them.
    """

    def __init__(self, nodes: list[_Step], layers: dict[str, nn.Module], tensors: dict[str, Tensor],
                 device: torch.device) -> None:
        super().__init__()
        self._steps = nodes
        self._layers = layers
        self._tensors = tensors
        self._device = device
        for index, layer in enumerate(layers.values()):  # registered, so .to() and parameters() see them
            self.add_module(f"layer{index}", layer)

    def forward(self, images: Tensor) -> Any:
        values: dict[str, Any] = {}
        for step in self._steps:
            args = [_resolve(arg, values, self._device) for arg in step.args]
            kwargs = {key: _resolve(arg, values, self._device) for key, arg in step.kwargs}
            if step.op == "input":
                values[step.name] = images
            elif step.op == "tensor":
                values[step.name] = self._tensors[step.target]
            elif step.op == "module":
                values[step.name] = self._layers[step.target](*args, **kwargs)
            elif step.op == "function":
                if step.target == "getattr" and (len(args) != 2 or not isinstance(args[0], Tensor)):
                    raise PlainModelError(f"step {step.name}: getattr applies to a tensor only")
                values[step.name] = FUNCTIONS[step.target](*args, **kwargs)
            elif step.op == "method":
                if not args or not isinstance(args[0], Tensor):
                    raise PlainModelError(f"step {step.name}: a tensor method called on something else")
                values[step.name] = _call_method(args[0], step.target, args[1:], kwargs, self._device)
            else:  # output
                return args[0] if len(args) == 1 else tuple(args)
        raise PlainModelError("the description has no output step")


def _call_method(tensor: Tensor, name: str, args: list[Any], kwargs: dict[str, Any], device: torch.device) -> Any:
    """``tensor.name(*args, **kwargs)``; a move to a device becomes a move to the evaluation device."""
    if name == "cuda":
        return tensor.to(device)
    if name == "to":
        args = [device if _names_a_device(arg) else arg for arg in args]
        kwargs = {key: device if key == "device" else value for key, value in kwargs.items()}
    return getattr(tensor, name)(*args, **kwargs)


def _names_a_device(value: Any) -> bool:
    if isinstance(value, torch.device):
        return True
    if type(value) is not str:
        return False
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        return False
    return True


class _Step:
    __slots__ = ("args", "kwargs", "name", "op", "target")

    def __init__(self, op: str, name: str, target: str, args: list[Any], kwargs: list[tuple[str, Any]]) -> None:
        self.op, self.name, self.target, self.args, self.kwargs = op, name, target, args, kwargs


def rebuild(plain: Any, device: torch.device) -> PlainModel:
    """The model a description stands for, on ``device``; ``PlainModelError`` when it is malformed."""
    if type(plain) is not dict or plain.get("format") != FORMAT:
        raise PlainModelError(f"not a model description of format {FORMAT}")
    nodes, modules, tensors = plain.get("nodes"), plain.get("modules"), plain.get("tensors")
    if type(nodes) is not list or type(modules) is not dict or type(tensors) is not dict:
        raise PlainModelError("the description lacks its nodes, modules or tensors")
    if len(nodes) > MAX_NODES or len(modules) > MAX_MODULES or len(tensors) > MAX_TENSORS:
        raise PlainModelError("the description is larger than a model may be")
    for name, tensor in tensors.items():
        if type(name) is not str or len(name) > MAX_NAME_CHARS or type(tensor) is not Tensor:
            raise PlainModelError("the description's tensors must be plain tensors under short names")
    tensors = {name: tensor.detach().to(device) for name, tensor in tensors.items()}
    layers = {name: _rebuild_layer(name, entry, tensors, device) for name, entry in modules.items()}
    steps = _rebuild_steps(nodes, layers, tensors)
    return PlainModel(steps, layers, tensors, device)


def _rebuild_layer(name: Any, entry: Any, tensors: dict[str, Tensor], device: torch.device) -> nn.Module:
    if type(name) is not str or len(name) > MAX_NAME_CHARS or type(entry) is not dict:
        raise PlainModelError("a layer entry is malformed")
    kind, config, training = entry.get("type"), entry.get("config"), entry.get("training")
    if type(kind) is not str or kind not in LAYERS:
        raise PlainModelError("a layer is of a type outside the allowlist")
    if type(config) is not dict or type(training) is not bool:
        raise PlainModelError(f"the layer {name} has a malformed configuration")
    arguments = {key: _config_value(name, key, value) for key, value in config.items()}
    accepted = inspect.signature(LAYERS[kind].__init__).parameters
    if any(key not in accepted or key in ("self", "device", "dtype") for key in arguments):
        raise PlainModelError(f"the layer {name} has a setting its type does not take")
    try:
        with torch.device("meta"):  # no memory is allocated for what the configuration declares
            layer = LAYERS[kind](**arguments)
    except (TypeError, ValueError, RuntimeError) as err:
        raise PlainModelError(f"the layer {name} cannot be built from its settings ({type(err).__name__})") from None
    prefix = f"{name}."
    state = {key[len(prefix):]: tensor for key, tensor in tensors.items() if key.startswith(prefix)
             and "." not in key[len(prefix):]}
    expected = layer.state_dict()
    if set(state) != set(expected):
        raise PlainModelError(f"the layer {name} does not come with exactly the tensors it holds")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise PlainModelError(f"the tensor {name}.{key} does not have the shape its layer declares")
    layer.load_state_dict(state, assign=True)
    for tensor in (*layer.parameters(), *layer.buffers()):
        if tensor.is_meta:
            raise PlainModelError(f"the layer {name} holds a tensor that was not sent")
    layer.to(device)
    layer.train(training)
    layer.requires_grad_(False)
    return layer


def _config_value(name: str, key: Any, value: Any) -> Any:
    if type(key) is not str:
        raise PlainModelError(f"the layer {name} has a malformed setting")
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise PlainModelError(f"the layer {name} has a setting that is not finite")
        return value
    if type(value) is list and len(value) <= 8 and all(v is None or type(v) in (int, float, bool) for v in value):
        return tuple(value)
    raise PlainModelError(f"the layer {name} has a setting of an unsupported kind")


def _rebuild_steps(nodes: list[Any], layers: dict[str, nn.Module], tensors: dict[str, Tensor]) -> list[_Step]:
    steps: list[_Step] = []
    defined: set[str] = set()
    inputs = 0
    for index, node in enumerate(nodes):
        if type(node) is not dict:
            raise PlainModelError(f"step {index} is malformed")
        op, name, target = node.get("op"), node.get("name"), node.get("target", "")
        raw_args, raw_kwargs = node.get("args", []), node.get("kwargs", [])
        if type(name) is not str or len(name) > MAX_NAME_CHARS or name in defined or type(target) is not str:
            raise PlainModelError(f"step {index} has a missing, long or repeated name")
        if type(raw_args) is not list or type(raw_kwargs) is not list or \
                len(raw_args) + len(raw_kwargs) > MAX_ARG_ITEMS:
            raise PlainModelError(f"step {index} has malformed arguments")
        args = [_checked_arg(arg, defined, 0) for arg in raw_args]
        kwargs: list[tuple[str, Any]] = []
        for pair in raw_kwargs:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise PlainModelError(f"step {index} has a malformed keyword argument")
            kwargs.append((pair[0], _checked_arg(pair[1], defined, 0)))
        if op == "input":
            inputs += 1
        elif op == "tensor":
            if target not in tensors:
                raise PlainModelError(f"step {index} reads a tensor that was not sent")
        elif op == "module":
            if target not in layers:
                raise PlainModelError(f"step {index} calls a layer that is not described")
        elif op == "function":
            if target not in FUNCTIONS:
                raise PlainModelError(f"step {index} calls a function outside the allowlist")
            if target == "getattr" and (len(args) != 2 or kwargs or args[1][0] != "value"
                                        or args[1][1] not in TENSOR_ATTRIBUTES):
                raise PlainModelError(f"step {index} reads an attribute outside the allowlist")
        elif op == "method":
            if target not in METHODS:
                raise PlainModelError(f"step {index} calls a method outside the allowlist")
        elif op == "output":
            steps.append(_Step(op, name, target, args, kwargs))
            break
        else:
            raise PlainModelError(f"step {index} has an unknown kind")
        defined.add(name)
        steps.append(_Step(op, name, target, args, kwargs))
    if inputs != 1 or not steps or steps[-1].op != "output":
        raise PlainModelError("the description must take one input and end with an output step")
    return steps


def _checked_arg(arg: Any, defined: set[str], depth: int) -> Any:
    """An argument as a tuple tree (``("node", name)``, ``("value", 3)``, ...), checked for shape and size."""
    if depth > MAX_ARG_DEPTH or type(arg) is not list or not arg or type(arg[0]) is not str:
        raise PlainModelError("an argument is malformed")
    tag = arg[0]
    if tag == "node" and len(arg) == 2 and arg[1] in defined:
        return ("node", arg[1])
    if tag == "value" and len(arg) == 2 and (arg[1] is None or type(arg[1]) in (bool, int, float, str)):
        if type(arg[1]) is str and len(arg[1]) > MAX_NAME_CHARS:
            raise PlainModelError("a string argument is too long")
        return ("value", arg[1])
    if tag in ("tuple", "list", "slice") and len(arg) == 2 and type(arg[1]) is list and len(arg[1]) <= MAX_ARG_ITEMS:
        items = tuple(_checked_arg(item, defined, depth + 1) for item in arg[1])
        if tag == "slice" and len(items) != 3:
            raise PlainModelError("a slice takes three parts")
        return (tag, items)
    if tag == "dict" and len(arg) == 2 and type(arg[1]) is list and len(arg[1]) <= MAX_ARG_ITEMS:
        pairs = []
        for pair in arg[1]:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise PlainModelError("a dict argument is malformed")
            pairs.append((pair[0], _checked_arg(pair[1], defined, depth + 1)))
        return ("dict", tuple(pairs))
    if tag in ("ellipsis", "device") and len(arg) == 1:
        return (tag,)
    if tag == "dtype" and len(arg) == 2 and arg[1] in _DTYPES:
        return ("dtype", arg[1])
    if tag == "memory_format" and len(arg) == 2 and arg[1] in _MEMORY_FORMATS:
        return ("memory_format", arg[1])
    raise PlainModelError("an argument is of an unknown kind")


def _resolve(arg: Any, values: dict[str, Any], device: torch.device) -> Any:
    tag = arg[0]
    if tag == "node":
        return values[arg[1]]
    if tag == "value":
        return arg[1]
    if tag == "tuple":
        return tuple(_resolve(item, values, device) for item in arg[1])
    if tag == "list":
        return [_resolve(item, values, device) for item in arg[1]]
    if tag == "slice":
        return slice(*(_resolve(item, values, device) for item in arg[1]))
    if tag == "dict":
        return {key: _resolve(item, values, device) for key, item in arg[1]}
    if tag == "ellipsis":
        return Ellipsis
    if tag == "device":
        return device  # the model computes where it is evaluated, whichever device it named
    if tag == "dtype":
        return _DTYPES[arg[1]]
    return _MEMORY_FORMATS[arg[1]]
