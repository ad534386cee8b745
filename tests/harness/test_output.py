"""CappedOutput: keeps the first bytes up to a cap, calls back once past it, and never stops reading.

A writer that is not read from blocks; under Docker a blocked writer holds up the very kill
that would end it (the engine answers a kill only once the container's output is taken).
These tests give the capture a callback that returns only once the writer has written
everything: a capture that stops reading, or that waits for its callback before reading on,
never gets there (and the test fails after a generous wait instead of hanging).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import pytest

from harness.output import CappedOutput

CAP = 100_000
CHUNK = b"All tests passed!\n" * 1000  # 18 kB
CHUNKS = 600  # about 10 MB in all: a hundred times the cap
GENEROUS_S = 120.0  # only ever waited for in full when the capture is broken

Capture = Callable[[Callable[[], None], threading.Event], CappedOutput]


def from_a_generator(on_exceeded: Callable[[], None], written: threading.Event) -> CappedOutput:
    def flood() -> Iterator[bytes]:
        for _ in range(CHUNKS):
            yield CHUNK
        written.set()

    return CappedOutput(flood(), CAP, on_exceeded)


def from_a_pipe(on_exceeded: Callable[[], None], written: threading.Event) -> CappedOutput:
    """A real pipe (64 KiB of buffer): its writer blocks as soon as nobody reads."""
    read_fd, write_fd = os.pipe()

    def flood() -> None:
        try:
            for _ in range(CHUNKS):
                os.write(write_fd, CHUNK)
            written.set()
        finally:
            os.close(write_fd)

    threading.Thread(target=flood, daemon=True).start()
    return CappedOutput.from_fd(read_fd, CAP, on_exceeded)


@pytest.fixture(params=[from_a_generator, from_a_pipe], ids=["generator", "pipe"])
def capture(request: pytest.FixtureRequest) -> Capture:
    return request.param  # type: ignore[no-any-return]


def test_the_stream_is_read_to_its_end_while_the_callback_waits_for_the_writer(capture: Capture) -> None:
    written, callback_done = threading.Event(), threading.Event()
    calls: list[bool] = []

    def kill_that_waits_for_the_output_to_be_taken() -> None:
        calls.append(written.wait(GENEROUS_S))
        callback_done.set()

    output = capture(kill_that_waits_for_the_output_to_be_taken, written)
    output.join(GENEROUS_S)
    assert written.is_set(), "the capture stopped reading: the writer was left blocked"
    assert callback_done.wait(GENEROUS_S)
    assert calls == [True], "the callback ran more than once, or before it could see the end"
    assert output.exceeded
    assert output.seen_bytes == CHUNKS * len(CHUNK)
    assert output.text(tail_bytes=10 * CAP) == (CHUNK * 6)[:CAP].decode()  # the first CAP bytes only


def test_the_captured_text_can_be_read_while_the_callback_blocks(capture: Capture) -> None:
    called, release = threading.Event(), threading.Event()

    def blocking_callback() -> None:
        called.set()
        release.wait()  # for as long as the test needs: set in its finally

    output = capture(blocking_callback, threading.Event())
    try:
        assert called.wait(GENEROUS_S), "the callback never ran"
        read: list[str] = []
        reader = threading.Thread(target=lambda: read.append(output.text(tail_bytes=20)), daemon=True)
        reader.start()
        reader.join(GENEROUS_S)
        assert read == [(CHUNK * 6)[:CAP][-20:].decode()], "text() waited for the callback"
    finally:
        release.set()
        output.join(GENEROUS_S)


def test_output_under_the_cap_is_kept_whole_and_calls_nothing() -> None:
    calls: list[str] = []
    output = CappedOutput(iter([b"hello ", b"world"]), CAP, lambda: calls.append("called"))
    output.join(GENEROUS_S)
    assert (output.text(), output.exceeded, output.seen_bytes, calls) == ("hello world", False, 11, [])
