"""Standbys: a judge whose workers were started before the submission it will grade is known.

Most of a grading's start is the workers' (the sandbox, Python, ``import torch``), and none of
it depends on the submission. A grader that expects another grading of the same challenge (the
service and fleet workers between jobs) keeps a standby: a judge forked with a spec like the next
grading's, whose candidate worker loads its runtime and then waits, its workspace an empty
folder mounted read-only, and whose reference worker (when checks take it) is started in full.
The next grading of that challenge with those options takes it (``take``): it copies its
submission into that folder, writes its own spec where the judge reads it, and says go. Its
judge then hands the worker the entry (or notebook cells) and judges as any judge does.

    grader.grading.keep_standby --> Standby (waiting) --take--> the next grading of its key
                                                     --discard--> its judge and workers end

What keeps one grading's standby from ever serving another candidate or carrying anything
over (docs/sandbox.md):

- a standby is made for no submission, and is used by exactly one grading, or none: ``take``
  removes it from the waiting list; an unused one is discarded (another key came, this
  process ends), its judge reading the end of its stdin and killing its workers;
- its candidate worker has run nothing of anyone's before its submission arrives, in a folder
  made for it alone and never reused;
- its sandbox, limits, mounts and reference are those of a judge started for that grading:
  the judge checks the grading's spec against the standby's (``grader.judge.contracts.same_workers``)
  and starts fresh workers when anything differs.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from grader.judge.contracts import GO
from grader.judge_process import LaunchedJudge, finish_judge
from grader.workspace import Workspace

DISCARD_WAIT_S = 30.0  # for a discarded standby's judge to kill its workers and go, before it is killed


@dataclass
class Standby:
    """A waiting judge and what was made for it."""

    key: Hashable
    judge: LaunchedJudge
    judge_dir: Path
    slot: Path  # the candidate's workspace: empty until the grading that takes it copies its submission in
    reference: Workspace | None

    def go(self) -> bool:
        """Tell the judge its grading's spec is in place; False when it cannot hear it any more (it ended)."""
        stdin = self.judge.process.stdin
        if stdin is None or self.judge.process.poll() is not None:
            return False
        try:
            stdin.write(GO)
            stdin.flush()
        except OSError:
            return False
        return True

    def end(self) -> None:
        """End the judge and its workers, unused; its folders stay (``remove_folders``)."""
        stdin = self.judge.process.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()  # the judge reads the end of it: it kills its workers and exits
        with contextlib.suppress(Exception):
            finish_judge(self.judge, DISCARD_WAIT_S)

    def discard(self) -> None:
        """End the judge and its workers, unused, and remove everything made for it."""
        self.end()
        self.remove_folders()

    def remove_folders(self) -> None:
        shutil.rmtree(self.judge_dir, ignore_errors=True)
        shutil.rmtree(self.slot, ignore_errors=True)
        if self.reference is not None:
            self.reference.cleanup()


_WAITING: dict[Hashable, Standby] = {}
_LOCK = threading.Lock()


def waiting(key: Hashable) -> Standby | None:
    """The standby waiting for ``key``, if one is (it stays waiting)."""
    with _LOCK:
        return _WAITING.get(key)


def keep(standby: Standby) -> None:
    """Let ``standby`` wait for the next grading of its key. One waits at a time: any other is discarded."""
    with _LOCK:
        others = list(_WAITING.values())
        _WAITING.clear()
        _WAITING[standby.key] = standby
    for other in others:
        other.discard()


def take(key: Hashable) -> Standby | None:
    """The standby waiting for ``key``, now this caller's alone; None when none is, or its judge has ended."""
    with _LOCK:
        standby = _WAITING.pop(key, None)
    if standby is not None and standby.judge.process.poll() is not None:
        standby.discard()
        return None
    return standby


def discard_all() -> None:
    """Discard every waiting standby (this process is ending, or grades something else from now on)."""
    with _LOCK:
        standbys = list(_WAITING.values())
        _WAITING.clear()
    for standby in standbys:
        standby.discard()


atexit.register(discard_all)
