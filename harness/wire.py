"""The channel's wire format: framed messages of JSON plus raw tensor bytes.

This module is loaded on both sides of the channel: by the judge (trusted) and
by the candidate worker inside the sandbox. It therefore depends only on the
standard library, numpy and torch, and never imports anything of the host's
packages.

A message is::

    u32 header_length | u32 buffer_count | header (UTF-8 JSON)
    then, for each buffer: u64 length | bytes

Values travel as plain data only. JSON carries None, bools, numbers (integers
of at most 64 bits), strings and lists; tuples, dicts, tensors and arrays are
tagged objects whose bytes travel in the buffers. Decoding never unpickles,
evals or imports anything: a tensor is rebuilt from its bytes by
``numpy.frombuffer`` with a dtype from a fixed list, on the CPU whatever device
the message names, and an unknown tag is a protocol error.

The reader is where the judge protects itself from a hostile peer, which can
write frames of its own and skip the encoder: it refuses a message larger than
its limit before reading it, and a header with more JSON values than it
decodes before decoding it (the values are counted in the raw bytes), so a
small message cannot expand into gigabytes of Python objects.
"""

from __future__ import annotations

import json
import os
import re
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
MAX_VALUES = 1 << 40  # the format's own: no limit; a reader sets its own
INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1  # int64 and uint64 both fit
LATE_READ_S = 2.0  # past a deadline, how long a reader goes on taking what is already waiting
_DEVICE = re.compile(r"(cpu|cuda)(:\d{1,4})?")

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
    if kind is int and not INT_MIN <= value <= INT_MAX:
        raise UnsupportedValue("an integer wider than 64 bits cannot be sent: use a float or a tensor")
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


def decode(
    header: bytes | bytearray,
    buffers: list[bytearray] | list[bytes],
    *,
    cuda_device: str | None = None,
    max_values: int = MAX_VALUES,
) -> Any:
    """Rebuild a value from a header and its buffers, accepting plain data only.

    Tensors are rebuilt on the CPU. One the message places on a CUDA device is
    moved to ``cuda_device`` when given (this process's own GPU), whatever index
    the message names; without it, it stays on the CPU. ``max_values`` bounds
    the JSON values of the header, counted before it is parsed.
    """
    if _values_at_most(header) > max_values:
        raise ProtocolError(
            f"the message holds more values than the judge decodes ({max_values}): "
            "return tensors or arrays rather than long lists"
        )
    try:
        doc = json.loads(bytes(header).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # ValueError: also integers of 4,300+ digits
        raise ProtocolError(f"message header is not valid JSON: {str(err)[:200]}") from None
    used: set[int] = set()
    value = _decode(doc, buffers, used, 0, cuda_device)
    if len(used) != len(buffers):
        raise ProtocolError("message carries buffers that no value refers to")
    return value


def _values_at_most(header: bytes | bytearray) -> int:
    """An upper bound on the JSON values in ``header``, from its raw bytes (no parsing).

    Every value but the first follows a ``,``, a ``[`` or a ``:``; brackets, commas and
    colons inside strings only make the bound looser.
    """
    return 1 + header.count(b",") + header.count(b"[") + header.count(b":")


def _decode(
    doc: Any, buffers: list[bytearray] | list[bytes], used: set[int], depth: int, cuda_device: str | None
) -> Any:
    if depth > MAX_DEPTH:
        raise ProtocolError(f"value is nested deeper than {MAX_DEPTH} levels")
    kind = type(doc)
    if kind is int and not INT_MIN <= doc <= INT_MAX:
        raise ProtocolError("the message holds an integer wider than 64 bits")
    if doc is None or kind in (bool, int, float, str):
        return doc
    if kind is list:
        return [_decode(item, buffers, used, depth + 1, cuda_device) for item in doc]
    if kind is not dict or len(doc) == 0:
        raise ProtocolError("malformed value in message")
    if "$tuple" in doc and len(doc) == 1:
        items = doc["$tuple"]
        if type(items) is not list:
            raise ProtocolError("malformed tuple in message")
        return tuple(_decode(item, buffers, used, depth + 1, cuda_device) for item in items)
    if "$dict" in doc and len(doc) == 1:
        pairs = doc["$dict"]
        if type(pairs) is not list:
            raise ProtocolError("malformed dict in message")
        result: dict[str, Any] = {}
        for pair in pairs:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise ProtocolError("malformed dict entry in message")
            result[pair[0]] = _decode(pair[1], buffers, used, depth + 1, cuda_device)
        return result
    if "$tensor" in doc:
        return _decode_tensor(doc, buffers, used, cuda_device)
    if "$ndarray" in doc:
        return _decode_array(doc, buffers, used)
    raise ProtocolError("unknown tagged value in message")


def _take_buffer(
    doc: dict[str, Any], key: str, buffers: list[bytearray] | list[bytes], used: set[int]
) -> bytearray | bytes:
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
    doc: dict[str, Any], buffers: list[bytearray] | list[bytes], used: set[int], cuda_device: str | None
) -> torch.Tensor:
    name = doc.get("dtype")
    if type(name) is not str or name not in _TORCH_DTYPES:
        raise ProtocolError(f"tensor has an unsupported dtype {name!r}")
    shape = _checked_shape(doc)
    device = doc.get("device", "cpu")
    if type(device) is not str or not _DEVICE.fullmatch(device):
        raise ProtocolError(f"tensor names a device the judge does not know: {str(device)[:40]!r}")
    raw = _take_buffer(doc, "$tensor", buffers, used)
    storage_dtype = np.dtype("int16") if name == "bfloat16" else np.dtype(name)
    tensor = torch.from_numpy(_array_of(raw, storage_dtype, shape))
    if name == "bfloat16":
        tensor = tensor.view(torch.bfloat16)
    if device.startswith("cuda") and cuda_device is not None:
        tensor = tensor.to(cuda_device)
    if doc.get("requires_grad") is True and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


def _array_of(raw: bytearray | bytes, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """The array held by ``raw``: without a copy when it is a private, writable ``bytearray``."""
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize != len(raw):
        raise ProtocolError("tensor bytes do not match its shape and dtype")
    array = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)
    return array if array.flags.writeable else array.copy()


def _decode_array(
    doc: dict[str, Any], buffers: list[bytearray] | list[bytes], used: set[int]
) -> np.ndarray[Any, Any]:
    name = doc.get("dtype")
    if type(name) is not str or name not in _NUMPY_DTYPES:
        raise ProtocolError(f"array has an unsupported dtype {name!r}")
    shape = _checked_shape(doc)
    raw = _take_buffer(doc, "$ndarray", buffers, used)
    return _array_of(raw, _NUMPY_DTYPES[name], shape)


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
    """Reads whole messages from a file descriptor, within a deadline and a reader's own bounds.

    ``max_message_bytes`` (header and buffers), ``max_header_bytes`` and ``max_values``
    are checked before the bytes they bound are read or decoded; ``cuda_device`` is
    where tensors that a message places on a CUDA device go (None: the CPU).
    A message read by its deadline counts only once decoded: decoding that takes it
    past the deadline is a ``ChannelTimeout``. One already waiting when a late
    reader asks is still taken, for ``LATE_READ_S`` at most.
    """

    def __init__(
        self,
        fd: int,
        *,
        max_message_bytes: int,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_values: int = MAX_VALUES,
        cuda_device: str | None = None,
    ) -> None:
        self._fd = fd
        self.max_message_bytes = max_message_bytes
        self.max_header_bytes = max_header_bytes
        self.max_values = max_values
        self._cuda_device = cuda_device
        self._late_cutoff = 0.0
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def read(self, deadline: float | None = None) -> Any:
        """Read one message; ``deadline`` is a ``time.monotonic()`` value or None."""
        if deadline is not None:
            self._late_cutoff = max(deadline, time.monotonic()) + LATE_READ_S
        header_length, buffer_count = _HEADER.unpack(self._read_exact(_HEADER.size, deadline))
        if header_length > MAX_HEADER_BYTES or buffer_count > MAX_BUFFERS:
            raise ProtocolError("message header is larger than the channel allows")
        if header_length > self.max_header_bytes:
            raise ProtocolError(
                f"the message's header is {header_length} bytes, more than the {_size(self.max_header_bytes)} "
                "the judge reads: return tensors or arrays rather than long lists or strings"
            )
        total = header_length
        self._check_size(total)
        header = self._read_exact(header_length, deadline)
        if _values_at_most(header) > self.max_values:  # before the buffers: no need to read them
            raise ProtocolError(
                f"the message holds more values than the judge decodes ({self.max_values}): "
                "return tensors or arrays rather than long lists"
            )
        buffers: list[bytearray] = []
        for _ in range(buffer_count):
            (length,) = _BUFFER_LENGTH.unpack(self._read_exact(_BUFFER_LENGTH.size, deadline))
            total += length
            self._check_size(total)
            buffers.append(self._read_exact(length, deadline))
        read_by = time.monotonic()
        value = decode(header, buffers, cuda_device=self._cuda_device, max_values=self.max_values)
        if deadline is not None and read_by <= deadline < time.monotonic():
            raise ChannelTimeout()  # decoding is part of the call: it may not carry it past its deadline
        return value

    def _check_size(self, total: int) -> None:
        if total > self.max_message_bytes:
            raise ProtocolError(
                f"the message is larger than the channel's limit: more than the {_size(self.max_message_bytes)} "
                "this check accepts"
            )

    def _read_exact(self, n: int, deadline: float | None) -> bytearray:
        """``n`` bytes, read into one buffer made at its final size (no copy on the way)."""
        data = bytearray(n)
        view = memoryview(data)
        got = 0
        while got < n:
            if deadline is not None:
                # Past the deadline, still take what is already waiting: a worker's greeting
                # sent in time may be read only later (a check that first waited for a lock).
                # Not for long: a peer that keeps a trickle waiting must not hold the judge.
                now = time.monotonic()
                remaining_ms = max(0, int((deadline - now) * 1000))
                if now > self._late_cutoff or not self._poll.poll(remaining_ms):
                    raise ChannelTimeout()
            count = os.readv(self._fd, [view[got:got + min(n - got, 1 << 22)]])
            if not count:
                raise ChannelClosed("the other side closed the channel")
            got += count
        return data


def _size(n_bytes: int) -> str:
    """A byte count for a sentence: whole MB from 1 MB on (1 MB = 2**20 bytes), else bytes."""
    if n_bytes >= 1 << 20:
        return f"{n_bytes / (1 << 20):.4g} MB"
    return f"{n_bytes} bytes"


def blocking_reader(fd: int) -> Reader:
    """A reader without a size cap beyond the format's own, for the worker side.

    The judge's CUDA tensors arrive on this process's GPU (its only one), or on the CPU without one.
    """
    return Reader(fd, max_message_bytes=1 << 62, cuda_device="cuda" if torch.cuda.is_available() else None)
