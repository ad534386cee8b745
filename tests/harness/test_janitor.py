"""``clean_up_after_crashed_graders``: what ``cvgrade grade``, ``serve`` and ``worker`` run first, and
``cvgrade janitor`` on demand. A dead grader's folder goes; a running one's stays."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from harness.janitor import Removed, clean_up_after_crashed_graders
from harness.leftovers import owned_folder, work_root


def a_dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # work_root() is $TMPDIR/cvgrade-<uid>
    return work_root()


def test_a_dead_graders_folder_is_removed_and_a_running_ones_kept(private_tmp: Path) -> None:
    dead = private_tmp / f"ws-{a_dead_pid()}.0-abc123"
    dead.mkdir()
    running = owned_folder("ws")  # this process's own: it is still running
    removed = clean_up_after_crashed_graders(containers=False)
    assert dead in removed.folders and not dead.exists()
    assert running.is_dir() and running not in removed.folders
    # Other dead graders' folders (in /tmp/cvgrade-ctl-<uid>, shared by this user's gradings) may go too.
    assert f"note: removed {len(removed.folders)} folder(s) left by a grader that died" in removed.notes()
    assert removed.containers == []


def test_nothing_removed_is_no_note() -> None:
    assert Removed().notes() == []


def test_cvgrade_janitor_lists_the_folders_it_removed(private_tmp: Path) -> None:
    dead = private_tmp / f"judge-{a_dead_pid()}.0-xyz789"
    dead.mkdir()
    result = CliRunner().invoke(app, ["janitor"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert output.startswith("removed ") and str(dead) in output and "container(s)" in output
    assert not dead.exists()
