"""Folders a grading leaves on disk: private to this user, named after the process that owns them.

Every folder of a grading (the candidate's workspace, the judge's records, a worker's control
folder) is made by ``owned_folder`` inside a private root (0700, this user's: ``private_folder``),
and named ``<kind>-<pid>.<start>-<random>``, where ``pid`` and ``start`` (its start time in clock
ticks since boot) name the process that made it and removes it when done. A process killed
before it could clean up (SIGKILL, a crash, the machine's OOM killer) leaves its folders
behind; ``remove_leftovers`` removes those whose owner is no longer running, and only those:
a pid now used by a process that started later is not the owner.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from harness.sandbox import SandboxUnavailable

_OWNED = re.compile(r"^[a-z]+-(\d+)\.(\d+)-[A-Za-z0-9_]+$")


def private_folder(path: Path) -> Path:
    """Make ``path`` (0700), or take it as it is when it is already this user's own folder.

    In a world-writable parent, someone else may have made the name first: a link, or a
    folder of another user, is refused (SandboxUnavailable). The parent's sticky bit keeps
    others from swapping a folder of ours once it is there.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    found = path.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        raise SandboxUnavailable(f"{path} is not a folder of this user (uid {os.getuid()}): remove it")
    if stat.S_IMODE(found.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def work_root() -> Path:
    """This user's private folder for gradings in the temporary folder: ``$TMPDIR/cvgrade-<uid>`` (0700).

    What is inside may be readable by the sandbox's user (a workspace must be), but no other
    user of the machine can reach it: the root is closed to them.
    """
    return private_folder(Path(tempfile.gettempdir()) / f"cvgrade-{os.getuid()}")


def owner_token(pid: int | None = None) -> str:
    """``<pid>.<start>`` of a process (this one by default); ``<pid>.0`` where /proc cannot tell the start."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{_start_ticks(pid) or 0}"


def owned_folder(kind: str, root: Path | None = None, *, mode: int = 0o700) -> Path:
    """A fresh folder ``<kind>-<owner>-<random>`` in ``root`` (default ``work_root()``), owned by this process."""
    folder = Path(tempfile.mkdtemp(prefix=f"{kind}-{owner_token()}-", dir=root or work_root()))
    folder.chmod(mode)
    return folder


def owner_running(name: str) -> bool:
    """Whether the process that made the folder ``name`` is still running; True for names not made here."""
    match = _OWNED.match(name)
    if match is None:
        return True  # not ours to judge
    pid, start = int(match.group(1)), int(match.group(2))
    if not process_running(pid):
        return False
    return start == 0 or _start_ticks(pid) in (None, start)


def remove_leftovers(roots: Iterable[Path]) -> list[Path]:
    """Remove the folders in ``roots`` whose owner is no longer running; returns what was removed."""
    removed = []
    for root in roots:
        try:
            entries = list(root.iterdir())
        except OSError:
            continue  # no such root here: nothing was left
        for entry in entries:
            if entry.is_symlink() or not entry.is_dir() or owner_running(entry.name):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
    return removed


def process_running(pid: int) -> bool:
    """Whether ``pid`` is a live process of this host; a zombie (dead, not yet reaped) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's, and alive or a zombie: its state says which
    try:
        # /proc/PID/stat: "pid (comm) state ..."; comm may hold spaces and parentheses.
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc to ask: the signal said it exists
    return state not in ("Z", "X")


def _start_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[19])  # field 22 of stat, counted after "pid (comm)"
    except (OSError, IndexError, ValueError):
        return None
