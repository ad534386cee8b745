"""Captures a worker's stdout and stderr through a pipe, up to a byte cap.

A flood beyond the cap is a limit breach, not a memory problem for us: the
reader stops keeping bytes, records the breach and calls back so the owner can
kill the worker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


class CappedOutput:
    """Drains ``fd`` on a daemon thread; keeps at most ``max_bytes`` bytes."""

    def __init__(self, fd: int, max_bytes: int, on_exceeded: Callable[[], None]) -> None:
        self._fd = fd
        self._max_bytes = max_bytes
        self._on_exceeded = on_exceeded
        self._chunks = bytearray()
        self._seen_bytes = 0
        self._lock = threading.Lock()
        self.exceeded = False
        self._thread = threading.Thread(target=self._drain, name="cvgrade-output", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while True:
                chunk = os.read(self._fd, 1 << 16)
                if not chunk:
                    return
                with self._lock:
                    self._seen_bytes += len(chunk)
                    room = self._max_bytes - len(self._chunks)
                    if room > 0:
                        self._chunks += chunk[:room]
                    if self._seen_bytes > self._max_bytes and not self.exceeded:
                        self.exceeded = True
                        self._on_exceeded()
                        return
        except OSError:
            return
        finally:
            os.close(self._fd)

    def text(self, tail_bytes: int = 4000) -> str:
        """The last ``tail_bytes`` of what was kept, decoded leniently."""
        with self._lock:
            data = bytes(self._chunks[-tail_bytes:])
        return data.decode("utf-8", errors="replace")

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
