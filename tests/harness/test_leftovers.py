"""Folders of a grading: private to the grading user, named after their owner, removed when it is gone."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.leftovers import owned_folder, owner_running, owner_token, private_folder, remove_leftovers
from harness.sandbox import SandboxUnavailable


def dead_process() -> tuple[int, str]:
    """A pid that was a process of ours and no longer runs, and the token it had."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        token = owner_token(child.pid)
    finally:
        child.kill()
        child.wait()
    return child.pid, token


def test_an_owned_folder_names_this_process_and_is_private_unless_asked(tmp_path: Path) -> None:
    private = owned_folder("judge", tmp_path)
    shared = owned_folder("ws", tmp_path, mode=0o755)
    assert private.name.startswith(f"judge-{os.getpid()}.") and shared.name.startswith(f"ws-{owner_token()}-")
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert owner_running(private.name) and owner_running(shared.name)


def test_the_janitor_removes_the_folders_of_owners_gone_and_only_those(tmp_path: Path) -> None:
    _, dead = dead_process()
    left = [tmp_path / f"ws-{dead}-abc123", tmp_path / f"judge-{dead}-def456"]
    for folder in left:
        (folder / "inside").mkdir(parents=True)
    mine = owned_folder("ws", tmp_path)
    reused = tmp_path / f"ws-{os.getpid()}.1-ghi789"  # our pid, but another start time: a pid reused
    not_ours = tmp_path / "cvgrade-ws-old"  # a name the janitor did not make: never touched
    reused.mkdir()
    not_ours.mkdir()

    removed = remove_leftovers([tmp_path, tmp_path / "missing"])

    assert sorted(removed) == sorted([*left, reused])
    assert sorted(tmp_path.iterdir()) == sorted([mine, not_ours])


def test_a_private_root_planted_by_someone_else_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "planted"
    link.symlink_to(tmp_path)
    with pytest.raises(SandboxUnavailable, match="not a folder of this user"):
        private_folder(link)
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    assert private_folder(loose) == loose and stat.S_IMODE(loose.stat().st_mode) == 0o700
