"""Timed checks: kept apart from each other, and tried again when the machine was too busy.

A check marked ``timed`` in ``challenge.toml`` holds a machine-wide lock (an
``flock`` on a file in ``CVGRADE_LOCK_DIR``) while its body runs, so no two
timed checks on this host ever overlap. Every judge also registers itself
while it runs, so a timed check can record whether other gradings (untimed
work) shared the machine with it: the result says so.

A timed check that cannot decide (its noise gate says the machine was too busy)
raises ``TimingInconclusive``. The judge then tries it again, at most
``TIMING_TRIES`` times in all, waiting longer before each try (``backoff_s``)
and never past the check's or the run's limit; the result records every try
and the load the machine showed. Still inconclusive, the grading is not
gradable (status ``error``): never a silent pass or fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from harness.gpus import lock_dir
from harness.sandbox import SandboxUnavailable

TIMING_TRIES = 3
FIRST_BACKOFF_S = 5.0


class TimingInconclusive(SandboxUnavailable):
    """The machine was too busy to decide a timed check: not the candidate's failure.

    A subclass of ``SandboxUnavailable`` because the judge reports that as "not
    gradable, ours" (status ``error``, no score charged); the judge first tries the
    check again (see the module's docstring). The message says what was measured.
    """


def backoff_s(tries_done: int) -> float:
    """How long to wait before the next try: 5 s after the first, 10 s after the second, ..."""
    return FIRST_BACKOFF_S * 2.0 ** max(tries_done - 1, 0)


def load_average() -> str:
    """``/proc/loadavg``'s 1, 5 and 15 minute figures and the number of CPUs, for the result."""
    try:
        one, five, fifteen = Path("/proc/loadavg").read_text(encoding="ascii").split()[:3]
    except (OSError, ValueError):
        return "unknown"
    return f"{one} {five} {fifteen} on {os.cpu_count() or 1} CPUs"


@contextlib.contextmanager
def registered_judge() -> Iterator[None]:
    """Mark this judge as running (a locked file named by its pid) until the block ends."""
    path = lock_dir() / f"judge-{os.getpid()}"
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def other_judges_running() -> int:
    """How many other judges hold their registration lock right now."""
    count = 0
    for path in lock_dir().glob("judge-*"):
        if path.name == f"judge-{os.getpid()}":
            continue
        try:
            with path.open("r") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            count += 1  # locked: that judge is alive
        except OSError:
            continue
        else:
            path.unlink(missing_ok=True)  # a judge that died without cleaning up
    return count


def timing_lock_busy(resource: str = "cpu") -> bool:
    """Whether another judge holds the timing lock of ``resource`` right now (a glance, not a wait)."""
    try:
        with (lock_dir() / f"timing-{resource}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


@contextlib.contextmanager
def exclusive_timing(resource: str = "cpu") -> Iterator[None]:
    """Hold the machine-wide lock for timed work on ``resource`` (``cpu`` or ``gpu<N>``)."""
    with (lock_dir() / f"timing-{resource}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
