"""Captures a worker's stdout and stderr through a pipe, up to a byte cap.

A flood beyond the cap is a limit breach, not a memory problem for us: the
reader keeps the first ``max_bytes`` bytes, records the breach and calls back
so the owner can kill the worker. It goes on reading, and throwing away, what
still comes until the stream ends: a writer that is never read from blocks,
and a blocked writer can hold up the very kill that would end it (the Docker
engine answers a kill only once the container's output has been taken).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator


class CappedOutput:
    """Drains a stream of output chunks on a daemon thread; keeps at most ``max_bytes`` bytes.

    ``on_exceeded`` is called once, on a daemon thread of its own, when more than
    ``max_bytes`` bytes have come: it may block (an engine round trip) without
    stopping the draining, and ``text()`` never waits for it.
    """

    def __init__(self, chunks: Iterator[bytes], max_bytes: int, on_exceeded: Callable[[], None]) -> None:
        self._chunks_in = chunks
        self._max_bytes = max_bytes
        self._on_exceeded = on_exceeded
        self._chunks = bytearray()
        self._seen_bytes = 0
        self._lock = threading.Lock()
        self.exceeded = False
        self._thread = threading.Thread(target=self._drain, name="cvgrade-output", daemon=True)
        self._thread.start()

    @classmethod
    def from_fd(cls, fd: int, max_bytes: int, on_exceeded: Callable[[], None]) -> CappedOutput:
        """Drain a pipe's read end (closed when the writer side is gone)."""
        return cls(_read_fd(fd), max_bytes, on_exceeded)

    def _drain(self) -> None:
        try:
            for chunk in self._chunks_in:
                with self._lock:
                    self._seen_bytes += len(chunk)
                    room = self._max_bytes - len(self._chunks)
                    if room > 0:
                        self._chunks += chunk[:room]
                    breached = self._seen_bytes > self._max_bytes and not self.exceeded
                    if breached:
                        self.exceeded = True
                if breached:
                    threading.Thread(target=self._on_exceeded, name="cvgrade-output-limit", daemon=True).start()
        except Exception:  # a broken stream just ends the capture
            return
        finally:
            close = getattr(self._chunks_in, "close", None)
            if close is not None:
                close()  # releases the pipe or the engine's stream

    @property
    def seen_bytes(self) -> int:
        """How many bytes came in all, kept or thrown away."""
        with self._lock:
            return self._seen_bytes

    def text(self, tail_bytes: int = 4000) -> str:
        """The last ``tail_bytes`` of what was kept, decoded leniently."""
        with self._lock:
            data = bytes(self._chunks[-tail_bytes:])
        return data.decode("utf-8", errors="replace")

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)


def _read_fd(fd: int) -> Iterator[bytes]:
    try:
        while chunk := os.read(fd, 1 << 16):
            yield chunk
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
