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


def add(a, b):
    return a + b


def giant_error():
    _send(json.dumps({"ok": False, "error": {
        "type": "Forged" * 200_000, "message": "m" * 3_000_000, "traceback": "t" * 3_000_000,
        "location": "l" * 1_000_000}}).encode())


def many_values(count):
    _send(b'{"ok": true, "value": [' + b"0," * (count - 1) + b"0]}")


def wide_integer(digits):
    _send(b'{"ok": true, "value": 1' + b"0" * digits + b"}")


def tensor_on(device):
    _send(json.dumps({"ok": True, "value": {"$tensor": 0, "dtype": "float32", "shape": [2],
                                            "device": device}}).encode(), [b"\x00" * 8])


def bytes_of(size):
    _send(json.dumps({"ok": True, "value": {"$ndarray": 0, "dtype": "uint8", "shape": [size]}}).encode(),
          [b"\x01" * size])
