"""The wire format carries plain data only and refuses everything else."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time

import numpy as np
import pytest
import torch

from harness import wire


def roundtrip(value: object) -> object:
    header, buffers = wire.encode(value)
    return wire.decode(header, [bytes(b) for b in buffers])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16,
                                   torch.int64, torch.uint8, torch.bool])
def test_tensors_keep_dtype_shape_and_values(dtype: torch.dtype) -> None:
    tensor = (torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) % 2).to(dtype)
    back = roundtrip(tensor)
    assert type(back) is torch.Tensor
    assert back.dtype == dtype and back.shape == tensor.shape
    assert torch.equal(back, tensor)


def test_non_contiguous_and_empty_tensors_survive() -> None:
    tensor = torch.arange(12.0).reshape(3, 4).t()
    assert torch.equal(roundtrip(tensor), tensor)
    empty = torch.zeros(5, 0)
    assert roundtrip(empty).shape == (5, 0)


def test_containers_and_scalars_keep_their_types() -> None:
    value = {"a": (1, 2.5, None, True), "b": [np.arange(3)], "nan": float("nan")}
    back = roundtrip(value)
    assert isinstance(back["a"], tuple) and back["a"][:3] == (1, 2.5, None)
    assert np.array_equal(back["b"][0], np.arange(3))
    assert back["nan"] != back["nan"]


def test_tensor_subclass_is_refused() -> None:
    class AlwaysEqual(torch.Tensor):
        pass

    with pytest.raises(wire.UnsupportedValue, match="subclass"):
        wire.encode(torch.zeros(2).as_subclass(AlwaysEqual))


def test_arbitrary_objects_are_refused() -> None:
    class Liar:
        def __eq__(self, other: object) -> bool:
            return True

    with pytest.raises(wire.UnsupportedValue, match="cannot be sent"):
        wire.encode(Liar())
    with pytest.raises(wire.UnsupportedValue):
        wire.encode(np.array([object()], dtype=object))


@pytest.mark.parametrize("header", [
    b'{"$pickle": 0}',
    b'{"$tensor": 0, "dtype": "object", "shape": [1]}',
    b'{"$tensor": 0, "dtype": "float32", "shape": [1000]}',
    b'{"$tensor": 5, "dtype": "float32", "shape": [1]}',
    b'{"$tensor": 0, "dtype": "float32", "shape": [-1]}',
    b"not json",
    b"[" * 100000 + b"]" * 100000,
])
def test_malformed_messages_are_protocol_errors(header: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.decode(header, [b"\x00\x00\x00\x00"])


def test_reader_enforces_size_cap_and_deadline() -> None:
    read_fd, write_fd = os.pipe()
    try:
        reader = wire.Reader(read_fd, max_message_bytes=1000)
        os.write(write_fd, struct.pack("<II", 10, 1) + b'{"$tensor"')
        with pytest.raises(wire.ChannelTimeout):
            reader.read(time.monotonic() + 0.05)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    read_fd, write_fd = os.pipe()
    try:
        def write_until_closed() -> None:
            with contextlib.suppress(wire.ChannelClosed):
                wire.write_message(write_fd, torch.zeros(10000))

        writer = threading.Thread(target=write_until_closed)
        writer.start()
        with pytest.raises(wire.ProtocolError, match="larger than"):
            wire.Reader(read_fd, max_message_bytes=1000).read(time.monotonic() + 5)
    finally:
        os.close(read_fd)
        writer.join()
        os.close(write_fd)


def test_closed_channel_is_reported() -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    with pytest.raises(wire.ChannelClosed):
        wire.Reader(read_fd, max_message_bytes=1000).read(time.monotonic() + 1)
    os.close(read_fd)


def test_a_message_that_arrived_in_time_is_read_after_its_deadline() -> None:
    """A worker's greeting sent in time counts, even when the judge reads it late (after waiting for a lock)."""
    read_fd, write_fd = os.pipe()
    try:
        wire.write_message(write_fd, {"ok": True})
        assert wire.Reader(read_fd, max_message_bytes=1000).read(time.monotonic() - 1.0) == {"ok": True}
        with pytest.raises(wire.ChannelTimeout):  # nothing waiting: the deadline still holds
            wire.Reader(read_fd, max_message_bytes=1000).read(time.monotonic() - 1.0)
    finally:
        os.close(read_fd)
        os.close(write_fd)
