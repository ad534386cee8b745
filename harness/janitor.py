"""What graders that died left behind, removed: their folders, and their worker containers.

A grader killed before it could clean up (SIGKILL, a crash, the OOM killer) leaves folders
(``harness.leftovers``) and, with the Docker backend, containers labelled with its pid
(``harness.containers.janitor``). Whatever starts gradings (``cvgrade grade``, ``cvgrade serve``,
``cvgrade worker``) calls ``clean_up_after_crashed_graders`` first; ``cvgrade janitor`` does the
same on demand and reports what it could not check.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.sandbox import SandboxUnavailable


@dataclass(frozen=True)
class Removed:
    """What one clean-up removed."""

    folders: list[Path] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One line per kind of thing removed, for the operator's terminal (none when nothing was)."""
        lines = []
        if self.folders:
            lines.append(f"note: removed {len(self.folders)} folder(s) left by a grader that died")
        if self.containers:
            lines.append(f"note: removed {len(self.containers)} container(s) left by a grader that died")
        return lines


def clean_up_after_crashed_graders(*, containers: bool = True) -> Removed:
    """Remove the folders, and with ``containers`` the containers, whose grader is no longer running.

    Quiet about what cannot be checked (no private folder to look in, no Docker engine): a
    grading about to start finds out itself, with a better message.
    """
    from harness.containers import control_root
    from harness.containers import janitor as remove_containers
    from harness.leftovers import remove_leftovers, work_root

    folders: list[Path] = []
    removed: list[str] = []
    with contextlib.suppress(SandboxUnavailable):
        folders = remove_leftovers([work_root(), control_root()])
    if containers:
        with contextlib.suppress(SandboxUnavailable):
            removed = remove_containers()
    return Removed(folders=folders, containers=removed)
