"""The channel's wire format: framed messages of JSON plus raw tensor bytes.

This module is loaded on both sides of the channel: by the judge (trusted) and
by the candidate worker inside the sandbox. It therefore depends only on the
standard library, numpy and torch, and never imports anything of the host's
packages.

A message is::

    u32 header_length | u32 buffer_count | header (UTF-8 JSON)
    then, for each buffer: u64 length | bytes

Values travel as plain data only. JSON carries None, bools, numbers, strings
and lists; tuples, dicts, tensors and arrays are tagged objects whose bytes
travel in the buffers. Decoding never unpickles, evals or imports anything: a
tensor is rebuilt from its bytes by ``numpy.frombuffer`` with a dtype from a
fixed list, and an unknown tag is a protocol error.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

import numpy as np
import torch

_HEADER = struct.Struct("<II")
_BUFFER_LENGTH = struct.Struct("<Q")

MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64
MAX_BUFFERS = 4096

# dtype name -> (numpy dtype used for the bytes, torch dtype or None for plain arrays)
_TORCH_DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
_NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name)
    for name in (
        "float64", "float32", "float16", "int64", "int32", "int16", "int8",
        "uint64", "uint32", "uint16", "uint8", "bool", "complex64", "complex128",
    )
}
_TORCH_NAME = {dtype: name for name, dtype in _TORCH_DTYPES.items()}


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed message of plain data."""


class ChannelClosed(ProtocolError):
    """The peer closed its end of the channel (it exited or crashed)."""


class ChannelTimeout(Exception):
    """No complete message arrived before the deadline."""


class UnsupportedValue(TypeError):
    """A value that cannot cross the channel as plain data."""


# --------------------------------------------------------------------------- encoding


def encode(value: Any) -> tuple[bytes, list[memoryview]]:
    """Encode ``value`` as a JSON header and a list of raw buffers."""
    buffers: list[memoryview] = []
    doc = _encode(value, buffers, 0)
    header = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    return header, buffers


def _encode(value: Any, buffers: list[memoryview], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise UnsupportedValue(f"value is nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return [_encode(item, buffers, depth + 1) for item in value]
    if kind is tuple:
        return {"$tuple": [_encode(item, buffers, depth + 1) for item in value]}
    if kind is dict:
        items = []
        for key, item in value.items():
            if type(key) is not str:
                raise UnsupportedValue("dict keys must be str to cross the channel")
            items.append([key, _encode(item, buffers, depth + 1)])
        return {"$dict": items}
    if kind is torch.Tensor:
        return _encode_tensor(value, buffers)
    if isinstance(value, torch.Tensor):
        raise UnsupportedValue(
            f"a subclass of torch.Tensor ({kind.__qualname__}) cannot be sent: return a plain tensor"
        )
    if kind is np.ndarray:
        return _encode_array(value, buffers)
    if isinstance(value, np.generic) and value.dtype.name in _NUMPY_DTYPES:
        return value.item()
    raise UnsupportedValue(
        f"a value of type {kind.__module__}.{kind.__qualname__} cannot be sent to the judge: "
        "use tensors, arrays, numbers, strings, lists, tuples or dicts"
    )


def _encode_tensor(tensor: torch.Tensor, buffers: list[memoryview]) -> dict[str, Any]:
    if tensor.layout != torch.strided:
        raise UnsupportedValue(f"tensors with layout {tensor.layout} cannot be sent: use a dense tensor")
    name = _TORCH_NAME.get(tensor.dtype)
    if name is None:
        raise UnsupportedValue(f"tensors of dtype {tensor.dtype} cannot be sent")
    device = str(tensor.device)
    data = tensor.detach()
    if data.is_conj():
        data = data.resolve_conj()
    if data.is_neg():
        data = data.resolve_neg()
    data = data.to("cpu").contiguous()
    if data.dtype == torch.bfloat16:
        data = data.view(torch.int16)
    buffers.append(_bytes_view(data.numpy()))
    return {
        "$tensor": len(buffers) - 1,
        "dtype": name,
        "shape": list(tensor.shape),
        "device": device,
        "requires_grad": bool(tensor.requires_grad),
    }


def _bytes_view(array: np.ndarray[Any, Any]) -> memoryview:
    """The bytes of a contiguous array, without copying (also for empty arrays)."""
    flat: Any = array.reshape(-1).view(np.uint8)
    return memoryview(flat)


def _encode_array(array: np.ndarray[Any, Any], buffers: list[memoryview]) -> dict[str, Any]:
    name = array.dtype.name
    if name not in _NUMPY_DTYPES:
        raise UnsupportedValue(f"arrays of dtype {array.dtype} cannot be sent")
    contiguous = np.ascontiguousarray(array)
    if contiguous.dtype.byteorder == ">":
        contiguous = contiguous.astype(contiguous.dtype.newbyteorder("<"))
    buffers.append(_bytes_view(contiguous))
    return {"$ndarray": len(buffers) - 1, "dtype": name, "shape": list(array.shape)}


# --------------------------------------------------------------------------- decoding


def decode(header: bytes, buffers: list[bytes], *, map_device: str | None = None) -> Any:
    """Rebuild a value from a header and its buffers, accepting plain data only.

    ``map_device``: where to place decoded tensors. ``None`` keeps the device
    named in the message when this process can use it, else the CPU.
    """
    try:
        doc = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ProtocolError(f"message header is not valid JSON: {err}") from None
    used: set[int] = set()
    value = _decode(doc, buffers, used, 0, map_device)
    if len(used) != len(buffers):
        raise ProtocolError("message carries buffers that no value refers to")
    return value


def _decode(doc: Any, buffers: list[bytes], used: set[int], depth: int, map_device: str | None) -> Any:
    if depth > MAX_DEPTH:
        raise ProtocolError(f"value is nested deeper than {MAX_DEPTH} levels")
    kind = type(doc)
    if doc is None or kind in (bool, int, float, str):
        return doc
    if kind is list:
        return [_decode(item, buffers, used, depth + 1, map_device) for item in doc]
    if kind is not dict or len(doc) == 0:
        raise ProtocolError("malformed value in message")
    if "$tuple" in doc and len(doc) == 1:
        items = doc["$tuple"]
        if type(items) is not list:
            raise ProtocolError("malformed tuple in message")
        return tuple(_decode(item, buffers, used, depth + 1, map_device) for item in items)
    if "$dict" in doc and len(doc) == 1:
        pairs = doc["$dict"]
        if type(pairs) is not list:
            raise ProtocolError("malformed dict in message")
        result: dict[str, Any] = {}
        for pair in pairs:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise ProtocolError("malformed dict entry in message")
            result[pair[0]] = _decode(pair[1], buffers, used, depth + 1, map_device)
        return result
    if "$tensor" in doc:
        return _decode_tensor(doc, buffers, used, map_device)
    if "$ndarray" in doc:
        return _decode_array(doc, buffers, used)
    raise ProtocolError("unknown tagged value in message")


def _take_buffer(doc: dict[str, Any], key: str, buffers: list[bytes], used: set[int]) -> bytes:
    index = doc.get(key)
    if type(index) is not int or not 0 <= index < len(buffers) or index in used:
        raise ProtocolError("tensor refers to a missing or reused buffer")
    used.add(index)
    return buffers[index]


def _checked_shape(doc: dict[str, Any]) -> tuple[int, ...]:
    shape = doc.get("shape")
    if type(shape) is not list or len(shape) > 32 or any(type(n) is not int or n < 0 for n in shape):
        raise ProtocolError("tensor has a malformed shape")
    return tuple(shape)


def _decode_tensor(
    doc: dict[str, Any], buffers: list[bytes], used: set[int], map_device: str | None
) -> torch.Tensor:
    name = doc.get("dtype")
    if type(name) is not str or name not in _TORCH_DTYPES:
        raise ProtocolError(f"tensor has an unsupported dtype {name!r}")
    shape = _checked_shape(doc)
    raw = _take_buffer(doc, "$tensor", buffers, used)
    storage_dtype = np.dtype("int16") if name == "bfloat16" else np.dtype(name)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * storage_dtype.itemsize != len(raw):
        raise ProtocolError("tensor bytes do not match its shape and dtype")
    array = np.frombuffer(raw, dtype=storage_dtype, count=count).reshape(shape).copy()
    tensor = torch.from_numpy(array)
    if name == "bfloat16":
        tensor = tensor.view(torch.bfloat16)
    device = doc.get("device", "cpu")
    if type(device) is not str:
        raise ProtocolError("tensor has a malformed device")
    target = map_device if map_device is not None else _usable_device(device)
    if target != "cpu":
        tensor = tensor.to(target)
    if doc.get("requires_grad") is True and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


def _usable_device(device: str) -> str:
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ProtocolError(f"tensor names an unknown device {device!r}") from None
    if parsed.type == "cuda" and torch.cuda.is_available():
        return str(parsed)
    return "cpu"


def _decode_array(doc: dict[str, Any], buffers: list[bytes], used: set[int]) -> np.ndarray[Any, Any]:
    name = doc.get("dtype")
    if type(name) is not str or name not in _NUMPY_DTYPES:
        raise ProtocolError(f"array has an unsupported dtype {name!r}")
    shape = _checked_shape(doc)
    raw = _take_buffer(doc, "$ndarray", buffers, used)
    dtype = _NUMPY_DTYPES[name]
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize != len(raw):
        raise ProtocolError("array bytes do not match its shape and dtype")
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape).copy()


# --------------------------------------------------------------------------- framing


def write_message(fd: int, value: Any, deadline: float | None = None) -> None:
    """Encode ``value`` and write it whole to ``fd``.

    With a ``deadline`` (a ``time.monotonic()`` value) the file descriptor must
    be non-blocking; a peer that stops reading makes this raise ``ChannelTimeout``.
    """
    header, buffers = encode(value)
    parts: list[bytes | memoryview] = [_HEADER.pack(len(header), len(buffers)), header]
    for buffer in buffers:
        parts.append(_BUFFER_LENGTH.pack(buffer.nbytes))
        parts.append(buffer)
    if sum(len(part) for part in parts) < 65536:
        parts = [b"".join(bytes(part) for part in parts)]
    for part in parts:
        _write_view(fd, memoryview(part).cast("B"), deadline)


def _write_view(fd: int, view: memoryview, deadline: float | None) -> None:
    poller: select.poll | None = None
    while view.nbytes:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            written = 0
        except BrokenPipeError:
            raise ChannelClosed("the other side closed the channel") from None
        view = view[written:]
        if view.nbytes and deadline is not None:
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLOUT | select.POLLERR | select.POLLHUP)
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not poller.poll(remaining_ms):
                raise ChannelTimeout()


class Reader:
    """Reads whole messages from a file descriptor, with a deadline and a size cap."""

    def __init__(self, fd: int, *, max_message_bytes: int) -> None:
        self._fd = fd
        self._max_message_bytes = max_message_bytes
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def read(self, deadline: float | None = None, *, map_device: str | None = None) -> Any:
        """Read one message; ``deadline`` is a ``time.monotonic()`` value or None."""
        header_length, buffer_count = _HEADER.unpack(self._read_exact(_HEADER.size, deadline))
        if header_length > MAX_HEADER_BYTES or buffer_count > MAX_BUFFERS:
            raise ProtocolError("message header is larger than the channel allows")
        total = header_length
        self._check_size(total)
        header = self._read_exact(header_length, deadline)
        buffers: list[bytes] = []
        for _ in range(buffer_count):
            (length,) = _BUFFER_LENGTH.unpack(self._read_exact(_BUFFER_LENGTH.size, deadline))
            total += length
            self._check_size(total)
            buffers.append(self._read_exact(length, deadline))
        return decode(header, buffers, map_device=map_device)

    def _check_size(self, total: int) -> None:
        if total > self._max_message_bytes:
            raise ProtocolError(
                f"message is larger than the channel's limit of {self._max_message_bytes} bytes"
            )

    def _read_exact(self, n: int, deadline: float | None) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            if deadline is not None:
                # Past the deadline, still take what is already waiting: a worker's greeting
                # sent in time may be read only later (a check that first waited for a lock).
                remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
                if not self._poll.poll(remaining_ms):
                    raise ChannelTimeout()
            chunk = os.read(self._fd, min(n - len(chunks), 1 << 22))
            if not chunk:
                raise ChannelClosed("the other side closed the channel")
            chunks += chunk
        return bytes(chunks)


def blocking_reader(fd: int) -> Reader:
    """A reader without a size cap beyond the format's own, for the worker side."""
    return Reader(fd, max_message_bytes=1 << 62)
