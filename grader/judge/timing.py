"""Keeping timed checks apart when several gradings run on one machine.

A check marked ``timed`` in ``challenge.toml`` holds a machine-wide lock (an
``flock`` on a file in ``CVGRADE_LOCK_DIR``) for the whole of its body, so no
two timed checks on this host ever overlap. Every judge also registers itself
while it runs, so a timed check can record whether other gradings (untimed
work) shared the machine with it: the result says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from harness.gpus import lock_dir


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


@contextlib.contextmanager
def exclusive_timing(resource: str = "cpu") -> Iterator[None]:
    """Hold the machine-wide lock for timed work on ``resource`` (``cpu`` or ``gpu<N>``)."""
    with (lock_dir() / f"timing-{resource}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
