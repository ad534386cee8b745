"""The judge bounds, caps and places whatever a worker sends, whoever wrote the frame.

The worker's own encoder and its caps run in the candidate's process, so they prove nothing:
the solution here writes its own frames to the channel (``forged_frames_solution.py``). Every
bound that protects the judge holds on the judge's side: the reply's size for the check, the
header's size and its number of values (counted before anything is decoded), integers of at
most 64 bits, every text field cut to its length, and tensors on the CPU whatever device the
frame names.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from harness import wire
from harness.local import LocalSandbox
from harness.sandbox import Limits, Outcome, WorkerSpec
from harness.session import (
    MAX_LOCATION_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    MAX_TYPE_CHARS,
    CallFailure,
    WorkerSession,
)


@pytest.fixture
def forger(workspace: Path, isolation: str) -> Iterator[WorkerSession]:
    (workspace / "solution.py").write_text((Path(__file__).parent / "forged_frames_solution.py").read_text())
    spec = WorkerSpec(workspace=workspace, entry="solution.py", cells=None,
                      functions=[{"name": "add", "parameters": ["a", "b"]}],
                      limits=Limits(memory_mb=1024, setup_timeout_s=300))  # a busy machine imports torch slowly
    session = WorkerSession(LocalSandbox(isolation), spec)  # type: ignore[arg-type]
    yield session
    session.close()


def failure_of(session: WorkerSession, function: str, *args: object) -> CallFailure:
    with pytest.raises(CallFailure) as caught:
        session.call(function, list(args), {}, 30)
    return caught.value


def test_every_text_field_of_an_error_is_cut_by_the_judge(forger: WorkerSession) -> None:
    forger.set_reply_limit(64 << 20)
    failure = failure_of(forger, "giant_error")
    assert failure.outcome is Outcome.RAISED
    kind = failure.message.split(" raised ", 1)[1].split(":", 1)[0]
    assert kind.startswith("ForgedForged") and len(kind) <= MAX_TYPE_CHARS
    assert "m" * 100 in failure.message
    assert len(failure.message) <= MAX_TYPE_CHARS + MAX_MESSAGE_CHARS + MAX_LOCATION_CHARS + 200
    assert 0 < len(failure.detail) <= MAX_TRACEBACK_CHARS


def test_a_reply_larger_than_the_checks_limit_is_refused_unread(forger: WorkerSession) -> None:
    forger.set_reply_limit(1 << 20)
    failure = failure_of(forger, "bytes_of", 2 << 20)
    assert failure.outcome is Outcome.BAD_VALUE
    assert "more than the 1 MB this check accepts" in failure.message


def test_a_header_of_millions_of_values_is_refused_before_decoding(forger: WorkerSession) -> None:
    forger.set_reply_limit(64 << 20)
    failure = failure_of(forger, "many_values", 1_500_000)  # 3 MB: a header the judge reads
    assert failure.outcome is Outcome.BAD_VALUE
    assert "more values than the judge decodes" in failure.message


def test_integers_wider_than_64_bits_are_refused(forger: WorkerSession) -> None:
    failure = failure_of(forger, "wide_integer", 70)
    assert failure.outcome is Outcome.BAD_VALUE
    assert "64 bits" in failure.message
    failure = failure_of(forger, "wide_integer", 5000)  # past Python's own limit on digits
    assert failure.outcome is Outcome.BAD_VALUE


@pytest.mark.parametrize("device", ["cuda:7", "cuda", "cpu"])
def test_tensors_come_back_on_the_cpu_whatever_device_the_reply_names(forger: WorkerSession, device: str) -> None:
    value = forger.call("tensor_on", [device], {}, 30).value
    assert type(value) is torch.Tensor and value.device.type == "cpu"
    assert torch.equal(value, torch.zeros(2))
    assert not torch.cuda.is_initialized(), "decoding a reply touched a GPU"


def test_a_tensor_naming_an_unknown_device_is_refused(forger: WorkerSession) -> None:
    failure = failure_of(forger, "tensor_on", "tpu:0")
    assert failure.outcome is Outcome.BAD_VALUE and "device" in failure.message


def test_values_are_counted_before_anything_is_decoded() -> None:
    header = b"[" + b"0," * 999 + b"0]"
    assert len(wire.decode(header, [], max_values=1001)) == 1000
    with pytest.raises(wire.ProtocolError, match="more values than the judge decodes"):
        wire.decode(header, [], max_values=999)
    empty_lists = b"[" + b"[]," * 999 + b"[]]"  # the count errs on the safe side: 2001 for 1001 values
    with pytest.raises(wire.ProtocolError, match="more values than the judge decodes"):
        wire.decode(empty_lists, [], max_values=1500)



def test_a_message_waiting_since_before_its_deadline_is_still_read() -> None:
    read_fd, write_fd = os.pipe()
    try:
        header, _ = wire.encode({"ok": True})
        os.write(write_fd, struct.pack("<II", len(header), 0) + header)
        reader = wire.Reader(read_fd, max_message_bytes=1000)
        assert reader.read(time.monotonic() - 60) == {"ok": True}  # asked a minute late
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_trickle_that_keeps_the_channel_busy_cannot_hold_the_judge_past_its_deadline() -> None:
    # Another process keeps a byte waiting at all times, a byte per write, for a 200 MB message:
    # past the deadline the judge takes what is waiting for LATE_READ_S only, then gives up.
    read_fd, write_fd = os.pipe()
    trickle = subprocess.Popen(
        [sys.executable, "-c", "import os, struct, sys\nfd = int(sys.argv[1])\n"
         "os.write(fd, struct.pack('<II', 2, 1) + b'{}' + struct.pack('<Q', 200 << 20))\n"
         "while True:\n    os.write(fd, b'x')\n", str(write_fd)],
        pass_fds=[write_fd], stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        started = time.monotonic()
        with pytest.raises(wire.ChannelTimeout):
            wire.Reader(read_fd, max_message_bytes=1 << 30).read(started + 0.5)
        assert time.monotonic() - started < 30  # the trickle alone would take minutes
    finally:
        trickle.kill()
        trickle.wait()
        os.close(read_fd)
