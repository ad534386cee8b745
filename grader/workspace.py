"""Workspaces: a submission turned into a fresh folder the sandbox mounts read-only.

``prepare_workspace`` accepts a ``.py`` file, a ``.ipynb`` notebook, a folder
or a ``.zip`` of a folder, and owns what every kind goes through: telling the
kinds apart, copying files and folders (no links or special files, names
checked, caps on files, bytes and depth), finding the file to grade, and the
``Workspace`` handed to the sandbox. Zip archives are checked and extracted by
``grader.archive``. Every refusal is one ``BadSubmission`` that says what to
fix, and a refused submission leaves nothing on disk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from grader.archive import (
    ACCEPTED,
    SKIPPED_DIRS,
    MiB,
    RelativePath,
    WorkspaceLimits,
    create_file,
    is_control,
    is_skipped_file,
    make_directory,
    shown,
    unpack_zip,
)
from grader.errors import BadSubmission
from grader.notebook import read_notebook
from harness.leftovers import owned_folder

__all__ = ["DEFAULT_LIMITS", "Kind", "MiB", "Workspace", "WorkspaceLimits", "prepare_workspace"]

_CHUNK_BYTES = MiB

Kind = Literal["py", "ipynb", "folder", "zip"]

DEFAULT_LIMITS = WorkspaceLimits()


@dataclass
class Workspace:
    """A submission laid out for the sandbox. Call ``cleanup()`` when grading is done.

    ``path`` holds the files (dirs 0o755, files 0o644: the sandbox runs as nobody).
    ``entry`` is ``"solution.py"`` for Python submissions and None for notebooks,
    whose code cells are in ``cells`` (``{"number": int, "source": str}``, numbered
    as Jupyter shows them). ``sha256`` and ``size_bytes`` describe the submission as
    given: the file's bytes, or for a folder a hash over its sorted paths and contents.
    """

    path: Path
    entry: str | None
    cells: list[dict[str, object]] | None
    kind: Kind
    warnings: list[str] = field(default_factory=list)
    sha256: str = ""
    size_bytes: int = 0

    def cleanup(self) -> None:
        """Remove ``path`` and everything in it; calling it again does nothing."""
        if self.path.exists():
            shutil.rmtree(self.path)


@dataclass(frozen=True)
class _PlannedFile:
    parts: RelativePath  # where it goes, relative to the workspace
    size_bytes: int  # as found by stat()
    source: Path


@dataclass
class _Plan:
    directories: list[RelativePath] = field(default_factory=list)
    files: list[_PlannedFile] = field(default_factory=list)


def prepare_workspace(
    submission: Path, *, work_root: Path | None = None, limits: WorkspaceLimits = DEFAULT_LIMITS
) -> Workspace:
    """Check ``submission`` and copy it into a fresh folder under ``work_root`` (default: this user's
    private folder for gradings, ``harness.leftovers.work_root()``, so no other user can read it).

    The submission path itself may be a link; nothing inside a folder or archive
    is ever followed. A folder or zip must hold ``solution.py``, else
    ``solution.ipynb``, else exactly one ``.ipynb`` at its top level; a zip whose
    entries all sit in one folder is graded from inside that folder. Raises
    ``BadSubmission`` for anything that cannot be graded as given, and then
    leaves nothing behind.
    """
    kind = _kind_of(submission)
    # Readable by the sandbox's user, inside a root only this user can enter (harness.leftovers).
    path = owned_folder("ws", work_root, mode=0o755)
    try:
        if kind == "py":
            sha256, size_bytes = _copy_file(submission, path / "solution.py", limits, follow=True)
            return Workspace(path, "solution.py", None, kind, [], sha256, size_bytes)
        if kind == "ipynb":
            notebook = read_notebook(submission)
            sha256, size_bytes = _copy_file(
                submission, path / "solution.ipynb", limits, follow=True
            )
            return Workspace(
                path, None, notebook.cells, kind, notebook.warnings, sha256, size_bytes
            )
        if kind == "folder":
            plan = _plan_folder(submission, limits)
            entry = _find_entry([planned.parts for planned in plan.files], submission.name)
            sha256, size_bytes = _copy_folder(plan, path, limits)
        else:
            sha256, size_bytes, entry = unpack_zip(submission, path, limits, _find_entry)
        if entry == "solution.py":
            return Workspace(path, entry, None, kind, [], sha256, size_bytes)
        notebook = read_notebook(path / entry)
        if not (path / "solution.ipynb").exists():  # the worker names the notebook module by it
            _copy_file(path / entry, path / "solution.ipynb", limits)
        return Workspace(path, None, notebook.cells, kind, notebook.warnings, sha256, size_bytes)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _kind_of(submission: Path) -> Kind:
    try:
        mode = submission.stat().st_mode
    except OSError:
        raise BadSubmission(
            f"{submission}: no such file or folder (or it cannot be read); submit {ACCEPTED}"
        ) from None
    if stat.S_ISDIR(mode):
        return "folder"
    suffix = submission.suffix.lower()
    if not stat.S_ISREG(mode):
        raise BadSubmission(f"{submission.name} is not a regular file or folder; submit {ACCEPTED}")
    if suffix == ".py":
        return "py"
    if suffix == ".ipynb":
        return "ipynb"
    if suffix == ".zip":
        return "zip"
    described = f"a '{shown(suffix)}' file" if suffix else "a file without a suffix"
    raise BadSubmission(f"{submission.name}: cvgrade cannot grade {described}; submit {ACCEPTED}")


def _copy_file(
    source: Path, target: Path, limits: WorkspaceLimits, *, follow: bool = False
) -> tuple[str, int]:
    """Copy one regular file with a hard byte cap; return its sha256 and size."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        source_fd = os.open(source, flags)
    except OSError as error:
        raise BadSubmission(
            f"{source.name} cannot be read ({error.strerror}); submit a folder of plain files"
        ) from None
    with os.fdopen(source_fd, "rb") as reader:
        if not stat.S_ISREG(os.fstat(source_fd).st_mode):
            raise BadSubmission(f"{source.name} is not a regular file; remove it and submit again")
        with create_file(target) as writer:
            return _stream(reader, writer, limits.max_file_bytes, limits.file_too_big(source.name))


def _plan_folder(root: Path, limits: WorkspaceLimits) -> _Plan:
    """List what a folder submission holds, refusing links, special files and oversize."""
    plan, total_bytes = _Plan(), 0
    pending: list[tuple[Path, RelativePath]] = [(root, ())]
    while pending:
        directory, parts = pending.pop()
        with os.scandir(directory) as entries:
            found = sorted(entries, key=lambda entry: entry.name)
        for entry in found:
            relative = (*parts, entry.name)
            joined = "/".join(relative)
            _check_name(entry.name, joined, root.name)
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise BadSubmission(
                    f"{root.name}: '{shown(joined)}' is a symbolic link; cvgrade never follows "
                    "links: replace it with the file itself or remove it"
                )
            if stat.S_ISDIR(info.st_mode):
                if entry.name in SKIPPED_DIRS:
                    continue
                limits.check_depth(relative, root.name)
                plan.directories.append(relative)
                pending.append((Path(entry.path), relative))
            elif stat.S_ISREG(info.st_mode):
                if is_skipped_file(entry.name):
                    continue
                limits.check_depth(relative, root.name)
                if info.st_size > limits.max_file_bytes:
                    raise limits.file_too_big(f"{root.name}: '{shown(joined)}'")
                total_bytes += info.st_size
                plan.files.append(_PlannedFile(relative, info.st_size, Path(entry.path)))
                _check_totals(len(plan.files), total_bytes, root.name, limits)
            else:
                raise BadSubmission(
                    f"{root.name}: '{shown(joined)}' is not a regular file (a pipe, socket or "
                    "device); remove it and submit again"
                )
    return plan


def _copy_folder(plan: _Plan, target: Path, limits: WorkspaceLimits) -> tuple[str, int]:
    """Copy a planned folder; return a hash over sorted (path, content) and the bytes copied."""
    for parts in sorted(plan.directories):
        make_directory(target, parts)
    digests: list[tuple[RelativePath, str]] = []
    total_bytes = 0
    for planned in plan.files:
        digest, size_bytes = _copy_file(planned.source, target.joinpath(*planned.parts), limits)
        total_bytes += size_bytes
        if total_bytes > limits.max_total_bytes:
            raise limits.total_too_big(planned.source.name)
        digests.append((planned.parts, digest))
    folder_hash = hashlib.sha256()
    for parts, digest in sorted(digests):
        name = "/".join(parts).encode("utf-8", "surrogateescape")
        folder_hash.update(name + b"\0" + digest.encode() + b"\n")
    return folder_hash.hexdigest(), total_bytes


def _stream(
    reader: BinaryIO, writer: BinaryIO, cap_bytes: int, over_cap: BadSubmission
) -> tuple[str, int]:
    """Copy reader to writer, raising ``over_cap`` past ``cap_bytes``; return sha256 and size."""
    digest, size_bytes = hashlib.sha256(), 0
    while chunk := reader.read(_CHUNK_BYTES):
        size_bytes += len(chunk)
        if size_bytes > cap_bytes:
            raise over_cap
        digest.update(chunk)
        writer.write(chunk)
    return digest.hexdigest(), size_bytes


def _find_entry(files: Iterable[RelativePath], label: str) -> str:
    """The file to grade: solution.py, else solution.ipynb, else the one top-level notebook."""
    top_files = sorted(parts[0] for parts in files if len(parts) == 1)
    for name in ("solution.py", "solution.ipynb"):
        if name in top_files:
            return name
    notebooks = [name for name in top_files if name.lower().endswith(".ipynb")]
    if len(notebooks) == 1:
        return notebooks[0]
    if notebooks:
        listed = ", ".join(shown(name) for name in notebooks[:5])
        raise BadSubmission(
            f"{label} holds several notebooks ({listed}) and no solution.py; "
            "name the one to grade solution.ipynb"
        )
    found = ", ".join(shown(name) for name in top_files[:5]) or "no files"
    raise BadSubmission(
        f"{label} has no solution.py or solution.ipynb at its top level (found: {found}); "
        "put your code in solution.py, or your notebook in solution.ipynb, at the top of the folder"
    )


def _check_name(name: str, joined: str, label: str) -> None:
    if any(0xD800 <= ord(char) <= 0xDFFF for char in name):
        raise BadSubmission(f"{label}: '{shown(joined)}' has a name that is not UTF-8; rename it")
    if any(is_control(char) for char in name):
        raise BadSubmission(
            f"{label}: '{shown(joined)}' has a control character in its name; rename it"
        )


def _check_totals(files: int, total_bytes: int, label: str, limits: WorkspaceLimits) -> None:
    if files > limits.max_files:
        raise limits.too_many_files(label)
    if total_bytes > limits.max_total_bytes:
        raise limits.total_too_big(label)
