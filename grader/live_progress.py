"""Live progress lines on a terminal: one per grading in progress, redrawn in place, gone when done.

Only for people watching a terminal: ``LiveProgress(console, enabled=False)``
(``--json``, or output piped to a file) draws nothing and costs nothing, so
machine-readable output never carries a byte of it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from grader.progress import Progress, ProgressCallback


class LiveProgress:
    """``with LiveProgress(console, enabled=...) as live: grade(..., progress=live.follow("sub.py"))``."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self._console = console
        self.enabled = enabled
        self._lines: dict[str, Progress] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> LiveProgress:
        if self.enabled:
            self._live = Live(_Lines(self), console=self._console, refresh_per_second=4, transient=True)
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def follow(self, label: str) -> ProgressCallback | None:
        """A callback for one grading's progress, shown as ``label``; None when nothing is drawn."""
        if not self.enabled:
            return None

        def update(progress: Progress) -> None:
            with self._lock:
                self._lines[label] = progress

        with self._lock:
            self._lines[label] = Progress(label)
        return update

    def done(self, label: str) -> None:
        """Stop showing ``label`` (its grading finished)."""
        with self._lock:
            self._lines.pop(label, None)

    @contextlib.contextmanager
    def following(self, label: str) -> Iterator[ProgressCallback | None]:
        """``follow(label)`` for the block, then ``done(label)``."""
        try:
            yield self.follow(label)
        finally:
            self.done(label)

    def render(self) -> RenderableType:
        with self._lock:
            rows = list(self._lines.items())
        return Group(*(Text.assemble((f"{label}: ", "bold"), (progress.describe(), "dim"))
                       for label, progress in rows))


class _Lines:
    """Rendered afresh at every refresh, so elapsed times tick without new progress lines."""

    def __init__(self, live: LiveProgress) -> None:
        self._live = live

    def __rich__(self) -> RenderableType:
        return self._live.render()
