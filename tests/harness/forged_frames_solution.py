"""A submission that answers the judge with frames of its own (read as text; never imported by the tests).

Each function writes one frame straight to the worker's reply channel, bypassing the worker's
encoder and its caps, then sleeps so that the worker never sends its own reply.
"""

import json
import os
import struct
import sys
import time


def _reply_fd():
    channel = getattr(sys.modules["__main__"], "CHANNEL", None)
    return channel[1] if channel is not None else int(sys.argv[3])


def _send(header, buffers=()):
    frame = struct.pack("<II", len(header), len(buffers)) + header
    for buffer in buffers:
        frame += struct.pack("<Q", len(buffer)) + buffer
    view = memoryview(frame)
    fd = _reply_fd()
    while view:
        view = view[os.write(fd, view):]
    time.sleep(120)


def _tagged(value):
    """A dict as the wire format writes one (``{"$dict": [[key, value], ...]}``)."""
    if isinstance(value, dict):
        return {"$dict": [[key, _tagged(item)] for key, item in value.items()]}
    return value


def add(a, b):
    return a + b


def giant_error():
    _send(json.dumps(_tagged({"ok": False, "error": {
        "type": "Forged" * 30_000, "message": "m" * 1_500_000, "traceback": "t" * 1_500_000,
        "location": "l" * 500_000}})).encode())  # 3.7 MB: under the judge's 4 MB for a header


def many_values(count):
    _send(b'{"$dict": [["ok", true], ["value", [' + b"0," * (count - 1) + b"0]]]}")


def wide_integer(digits):
    _send(b'{"$dict": [["ok", true], ["value", 1' + b"0" * digits + b"]]}")


def tensor_on(device):
    value = {"$tensor": 0, "dtype": "float32", "shape": [2], "device": device}
    _send(json.dumps({"$dict": [["ok", True], ["value", value]]}).encode(), [b"\x00" * 8])


def bytes_of(size):
    value = {"$ndarray": 0, "dtype": "uint8", "shape": [size]}
    _send(json.dumps({"$dict": [["ok", True], ["value", value]]}).encode(), [b"\x01" * size])
