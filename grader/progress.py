"""How a grading is getting on, while the judge runs: which check, how far, about how long left.

The judge writes progress lines into its records file (``ProgressRecord``, see
``grader.judge.plugin``): one when a check starts (its name, its number of all,
and an estimate of the time left when this machine has the reference's check
durations), and any a long check adds itself (``record.progress``: the speed
check's rounds). ``ProgressTail`` reads the lines as they come; the grader
hands each as a ``Progress`` to whoever asked (the terminal display of the CLI).
Progress never reaches a result: verdicts come from check records only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grader.judge.contracts import ContractError, ProgressRecord, parse_record


@dataclass
class Progress:
    """The latest word from one grading's judge."""

    submission: str
    check: str = ""
    index: int = 0  # 1-based number of the check now running; 0 before the first
    total: int = 0
    estimate_s: float | None = None  # the time the reference took from this check on, on this machine
    note: str = ""  # the running check's own progress line, if it gave one
    started: float = field(default_factory=time.monotonic)
    check_started: float = field(default_factory=time.monotonic)

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def describe(self) -> str:
        """``check 3 of 10: box_iou_random (12 s; about 40 s left) - round 4 ...``"""
        if not self.index:
            return f"starting ({self.elapsed_s():.0f} s)"
        line = f"check {self.index} of {self.total}: {self.check} ({self.elapsed_s():.0f} s"
        if self.estimate_s is not None:
            left = max(self.estimate_s - (time.monotonic() - self.check_started), 0.0)
            line += f"; about {left:.0f} s left"
        line += ")"
        return f"{line} - {self.note}" if self.note else line


ProgressCallback = Callable[[Progress], None]


class ProgressTail:
    """Reads the judge's progress lines as they are appended; the first complete lines only."""

    def __init__(self, path: Path, progress: Progress, callback: ProgressCallback) -> None:
        self._path = path
        self._offset = 0
        self._pending = b""
        self.progress = progress
        self._callback = callback

    def poll(self) -> None:
        """Read what is new; call back once when anything changed."""
        try:
            with self._path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return
        self._offset += len(chunk)
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()  # a torn last line: wait for the rest
        changed = False
        for line in lines:
            changed = self._apply(line) or changed
        if changed:
            self._callback(self.progress)

    def _apply(self, line: bytes) -> bool:
        try:
            record = parse_record(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError, ContractError):
            return False  # the grader reports unreadable records when the judge is done
        if not isinstance(record, ProgressRecord):
            return False
        progress = self.progress
        if record.index is not None:
            progress.index = record.index
            progress.total = record.total or 0
            progress.check = record.check
            progress.estimate_s = record.estimate_s
            progress.note = ""
            progress.check_started = time.monotonic()
        elif record.text is not None:
            progress.note = record.text
        return True
