"""Workspaces: a submission turned into a fresh folder the sandbox mounts read-only.

``prepare_workspace`` accepts a ``.py`` file, a ``.ipynb`` notebook, a folder
or a ``.zip`` of a folder. Candidates' files are hostile, so everything is
checked before anything is written: no links or special files, no names that
climb out of the archive, no zip bombs, and caps on files, bytes and depth.
Archives are extracted member by member with a hard byte counter, never with
``extractall``. Every refusal is one ``BadSubmission`` that says what to fix,
and a refused submission leaves nothing on disk.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from grader.errors import BadSubmission
from grader.notebook import read_notebook

MiB = 1024 * 1024
ACCEPTED = "a .py file, a .ipynb notebook, a folder, or a .zip of your solution folder"
ZIP_ADVICE = "zip your solution folder without '..' or absolute paths"

_CHUNK_BYTES = MiB
_RATIO_CHECKED_ABOVE_BYTES = MiB  # small files may legitimately compress very well
_MAX_PATH_CHARS = 1024
_SKIPPED_DIRS = frozenset({"__pycache__", ".git", "__MACOSX", ".ipynb_checkpoints"})
_SKIPPED_FILES = frozenset({".DS_Store"})
_ZIP_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
# What reading a damaged member can raise: zipfile, zlib, bz2 (OSError) and lzma errors, and
# NotImplementedError or RuntimeError for features zipfile lacks (strong encryption, patches).
_CORRUPT_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
)

Kind = Literal["py", "ipynb", "folder", "zip"]
RelativePath = tuple[str, ...]


@dataclass(frozen=True)
class WorkspaceLimits:
    """Caps on what a submission may unpack to. Ratios apply to entries above 1 MiB."""

    max_total_bytes: int = 100 * MiB
    max_files: int = 2000
    max_file_bytes: int = 50 * MiB
    max_compression_ratio: int = 200
    max_depth: int = 16


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
    size_bytes: int  # as found by stat() or declared by the archive
    source: Path | zipfile.ZipInfo


@dataclass
class _Plan:
    directories: list[RelativePath] = field(default_factory=list)
    files: list[_PlannedFile] = field(default_factory=list)


def prepare_workspace(
    submission: Path, *, work_root: Path | None = None, limits: WorkspaceLimits = DEFAULT_LIMITS
) -> Workspace:
    """Check ``submission`` and copy it into a fresh folder under ``work_root``.

    The submission path itself may be a link; nothing inside a folder or archive
    is ever followed. A folder or zip must hold ``solution.py``, else
    ``solution.ipynb``, else exactly one ``.ipynb`` at its top level; a zip whose
    entries all sit in one folder is graded from inside that folder. Raises
    ``BadSubmission`` for anything that cannot be graded as given, and then
    leaves nothing behind.
    """
    kind = _kind_of(submission)
    path = Path(tempfile.mkdtemp(prefix="cvgrade-ws-", dir=work_root))
    try:
        path.chmod(0o755)
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
            entry = _find_entry(plan, submission.name)
            sha256, size_bytes = _copy_folder(plan, path, limits)
        else:
            sha256, size_bytes, entry = _unpack_zip(submission, path, limits)
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
    shown = f"a '{_shown(suffix)}' file" if suffix else "a file without a suffix"
    raise BadSubmission(f"{submission.name}: cvgrade cannot grade {shown}; submit {ACCEPTED}")


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
        with _create_file(target) as writer:
            return _stream(reader, writer, limits.max_file_bytes, _too_big(source.name, limits))


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
            shown = "/".join(relative)
            _check_name(entry.name, shown, root.name)
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise BadSubmission(
                    f"{root.name}: '{_shown(shown)}' is a symbolic link; cvgrade never follows "
                    "links: replace it with the file itself or remove it"
                )
            if stat.S_ISDIR(info.st_mode):
                if entry.name in _SKIPPED_DIRS:
                    continue
                _check_depth(relative, root.name, limits)
                plan.directories.append(relative)
                pending.append((Path(entry.path), relative))
            elif stat.S_ISREG(info.st_mode):
                if _is_skipped_file(entry.name):
                    continue
                _check_depth(relative, root.name, limits)
                if info.st_size > limits.max_file_bytes:
                    raise _too_big(f"{root.name}: '{_shown(shown)}'", limits)
                total_bytes += info.st_size
                plan.files.append(_PlannedFile(relative, info.st_size, Path(entry.path)))
                _check_totals(len(plan.files), total_bytes, root.name, limits)
            else:
                raise BadSubmission(
                    f"{root.name}: '{_shown(shown)}' is not a regular file (a pipe, socket or "
                    "device); remove it and submit again"
                )
    return plan


def _copy_folder(plan: _Plan, target: Path, limits: WorkspaceLimits) -> tuple[str, int]:
    """Copy a planned folder; return a hash over sorted (path, content) and the bytes copied."""
    for parts in sorted(plan.directories):
        _make_directory(target, parts)
    digests: list[tuple[RelativePath, str]] = []
    total_bytes = 0
    for planned in plan.files:
        assert isinstance(planned.source, Path)
        digest, size_bytes = _copy_file(planned.source, target.joinpath(*planned.parts), limits)
        total_bytes += size_bytes
        if total_bytes > limits.max_total_bytes:
            raise _too_big_total(planned.source.name, limits)
        digests.append((planned.parts, digest))
    folder_hash = hashlib.sha256()
    for parts, digest in sorted(digests):
        name = "/".join(parts).encode("utf-8", "surrogateescape")
        folder_hash.update(name + b"\0" + digest.encode() + b"\n")
    return folder_hash.hexdigest(), total_bytes


def _unpack_zip(archive_path: Path, target: Path, limits: WorkspaceLimits) -> tuple[str, int, str]:
    """Validate every entry, then extract; return the archive's sha256, size and entry file."""
    label = archive_path.name
    with archive_path.open("rb") as stream:
        size_bytes = os.fstat(stream.fileno()).st_size
        if size_bytes > limits.max_total_bytes:
            raise _too_big_total(label, limits)
        sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
        directory_bytes = _central_directory_bytes(stream)
        if directory_bytes is not None and directory_bytes > limits.max_files * 1024 + 64 * 1024:
            raise _too_many_files(label, limits)
        stream.seek(0)
        try:
            archive = zipfile.ZipFile(stream)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            OSError,
            ValueError,
            EOFError,
            NotImplementedError,
        ):
            raise BadSubmission(
                f"{label} is not a valid zip archive; create it again with your system's "
                f"'compress' or 'zip -r', or submit {ACCEPTED}"
            ) from None
        with archive:
            plan = _plan_zip(archive, label, limits)
            entry = _find_entry(plan, label)
            _extract(archive, plan, target, label, limits)
    return sha256, size_bytes, entry


def _central_directory_bytes(stream: BinaryIO) -> int | None:
    """The size the archive declares for its central directory, read the way zipfile does.

    Checked before ``ZipFile`` parses it, because each entry it lists costs memory.
    """
    end = stream.seek(0, os.SEEK_END)
    tail_bytes = min(end, 22 + 65535)
    stream.seek(end - tail_bytes)
    tail = stream.read(tail_bytes)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    (size,) = struct.unpack_from("<I", tail, at + 12)
    zip64_at = at - 20 - 56
    locator, record = tail[at - 20 : at - 16], tail[zip64_at : zip64_at + 4]
    if zip64_at >= 0 and locator == b"PK\x06\x07" and record == b"PK\x06\x06":
        (size,) = struct.unpack_from("<Q", tail, zip64_at + 40)
    return int(size)


def _plan_zip(archive: zipfile.ZipFile, label: str, limits: WorkspaceLimits) -> _Plan:
    """Check every entry of the archive, without extracting, and decide where each goes."""
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise _too_many_files(label, limits)
    seen: set[RelativePath] = set()
    kept: list[tuple[RelativePath, zipfile.ZipInfo, bool]] = []
    declared_bytes = 0
    for info in infos:
        parts = _zip_entry_parts(info.orig_filename, label)
        shown = f"{label}: entry '{_shown(info.orig_filename)}'"
        if parts in seen:
            raise BadSubmission(f"{shown} appears twice; zip your solution folder again")
        seen.add(parts)
        is_directory = _check_zip_entry_type(info, shown)
        if not is_directory:
            _check_zip_entry_size(info, shown, limits)
            declared_bytes += info.file_size
            if declared_bytes > limits.max_total_bytes:
                raise _too_big_total(label, limits)
        skipped = any(part in _SKIPPED_DIRS for part in parts) or _is_skipped_file(parts[-1])
        if not skipped:
            kept.append((parts, info, is_directory))

    tops = {parts[0] for parts, _, _ in kept}
    strip = len(tops) == 1 and all(len(parts) > 1 or is_dir for parts, _, is_dir in kept)
    plan = _Plan()
    for parts, info, is_directory in kept:
        relative = parts[1:] if strip else parts
        if not relative:
            continue
        _check_depth(relative, label, limits)
        if is_directory:
            plan.directories.append(relative)
        else:
            plan.files.append(_PlannedFile(relative, info.file_size, info))
    file_paths = {planned.parts for planned in plan.files}
    for planned in plan.files:
        parents = {planned.parts[:depth] for depth in range(1, len(planned.parts))}
        clash = parents & file_paths
        if clash:
            raise BadSubmission(
                f"{label}: '{_shown('/'.join(min(clash)))}' is both a file and a folder; "
                "zip your solution folder again"
            )
    return plan


def _zip_entry_parts(name: str, label: str) -> RelativePath:
    """Split an entry's name into safe path components, or refuse it."""
    shown = f"{label}: entry '{_shown(name)}'"
    if any(_is_control(char) for char in name):
        raise BadSubmission(
            f"{shown} has a NUL or control character in its name; rename the file and zip again"
        )
    if "\\" in name:
        raise BadSubmission(
            f"{shown} uses backslashes in its path; zip your solution folder with a tool that "
            "writes '/' separators (such as 'python -m zipfile -c')"
        )
    if name.startswith("/") or _DRIVE_LETTER.match(name):
        raise BadSubmission(f"{shown} has an absolute path; {ZIP_ADVICE}")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise BadSubmission(f"{shown} points outside the archive; {ZIP_ADVICE}")
    if not parts:
        raise BadSubmission(f"{shown} has an empty name; zip your solution folder again")
    if len(name) > _MAX_PATH_CHARS or any(len(part.encode()) > 255 for part in parts):
        raise BadSubmission(f"{shown} has a path that is too long; use shorter names")
    return parts


def _check_zip_entry_type(info: zipfile.ZipInfo, shown: str) -> bool:
    """Refuse links, special files, encryption and odd methods; return whether it is a folder."""
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise BadSubmission(
            f"{shown} is a symbolic link; cvgrade never follows links: replace it with the "
            "file itself (zip without --symlinks) or remove it"
        )
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise BadSubmission(
            f"{shown} is not a regular file (a pipe, socket or device); remove it and zip again"
        )
    if info.flag_bits & 0x1:
        raise BadSubmission(f"{shown} is password-protected; zip your folder without a password")
    if info.compress_type not in _ZIP_METHODS:
        raise BadSubmission(
            f"{shown} uses compression method {info.compress_type}, which cvgrade cannot read; "
            "zip your folder again with the standard (deflate) method"
        )
    return info.filename.endswith("/") or file_type == stat.S_IFDIR


def _check_zip_entry_size(info: zipfile.ZipInfo, shown: str, limits: WorkspaceLimits) -> None:
    if info.file_size > limits.max_file_bytes:
        raise _too_big(shown, limits)
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_CHECKED_ABOVE_BYTES and ratio > limits.max_compression_ratio:
        raise BadSubmission(
            f"{shown} expands {ratio:.0f} times (from {info.compress_size} to {info.file_size} "
            f"bytes), more than the {limits.max_compression_ratio} allowed: it looks like a zip "
            "bomb; leave generated or padding files out of your submission"
        )


def _extract(
    archive: zipfile.ZipFile, plan: _Plan, target: Path, label: str, limits: WorkspaceLimits
) -> None:
    """Write each planned member, trusting no declared size: a counter stops at the cap."""
    for parts in plan.directories:
        _make_directory(target, parts)
    total_bytes = 0
    for planned in plan.files:
        assert isinstance(planned.source, zipfile.ZipInfo)
        info = planned.source
        shown = f"{label}: entry '{_shown(info.orig_filename)}'"
        cap_bytes = min(info.file_size, limits.max_file_bytes)
        _make_directory(target, planned.parts[:-1])
        try:
            reader = archive.open(info)  # checks the member's local header against the directory
        except _CORRUPT_MEMBER_ERRORS as error:
            raise _corrupt(shown, error) from None
        with reader, _create_file(target.joinpath(*planned.parts)) as writer:
            size_bytes = 0
            while True:
                try:
                    chunk = reader.read(_CHUNK_BYTES)
                except _CORRUPT_MEMBER_ERRORS as error:
                    raise _corrupt(shown, error) from None
                if not chunk:
                    break
                size_bytes += len(chunk)
                if size_bytes > cap_bytes:
                    raise BadSubmission(
                        f"{shown} holds more bytes than it declares; the archive is corrupt or "
                        "crafted: zip your solution folder again"
                    )
                writer.write(chunk)
        total_bytes += size_bytes
        if total_bytes > limits.max_total_bytes:
            raise _too_big_total(label, limits)


def _corrupt(shown: str, error: BaseException) -> BadSubmission:
    reason = _shown(str(error) or type(error).__name__, 80)
    if isinstance(error, NotImplementedError | RuntimeError):
        return BadSubmission(
            f"{shown} uses a zip feature cvgrade cannot read ({reason}); "
            "zip your solution folder again with a standard tool, without a password"
        )
    return BadSubmission(f"{shown} is corrupt ({reason}); zip your solution folder again")


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


def _create_file(path: Path) -> BinaryIO:
    """A new world-readable file; never overwrites and never follows a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    os.fchmod(fd, 0o644)  # the umask may have taken bits off
    return os.fdopen(fd, "wb")


def _make_directory(root: Path, parts: RelativePath) -> None:
    for depth in range(1, len(parts) + 1):
        directory = root.joinpath(*parts[:depth])
        if not directory.is_dir():
            directory.mkdir(mode=0o755)
            directory.chmod(0o755)


def _find_entry(plan: _Plan, label: str) -> str:
    """The file to grade: solution.py, else solution.ipynb, else the one top-level notebook."""
    top_files = sorted(planned.parts[0] for planned in plan.files if len(planned.parts) == 1)
    for name in ("solution.py", "solution.ipynb"):
        if name in top_files:
            return name
    notebooks = [name for name in top_files if name.lower().endswith(".ipynb")]
    if len(notebooks) == 1:
        return notebooks[0]
    if notebooks:
        listed = ", ".join(_shown(name) for name in notebooks[:5])
        raise BadSubmission(
            f"{label} holds several notebooks ({listed}) and no solution.py; "
            "name the one to grade solution.ipynb"
        )
    found = ", ".join(_shown(name) for name in top_files[:5]) or "no files"
    raise BadSubmission(
        f"{label} has no solution.py or solution.ipynb at its top level (found: {found}); "
        "put your code in solution.py, or your notebook in solution.ipynb, at the top of the folder"
    )


def _check_name(name: str, shown: str, label: str) -> None:
    if any(0xD800 <= ord(char) <= 0xDFFF for char in name):
        raise BadSubmission(f"{label}: '{_shown(shown)}' has a name that is not UTF-8; rename it")
    if any(_is_control(char) for char in name):
        raise BadSubmission(
            f"{label}: '{_shown(shown)}' has a control character in its name; rename it"
        )


def _check_depth(parts: RelativePath, label: str, limits: WorkspaceLimits) -> None:
    if len(parts) > limits.max_depth:
        raise BadSubmission(
            f"{label}: '{_shown('/'.join(parts))}' is nested {len(parts)} levels deep, more "
            f"than the {limits.max_depth} allowed; flatten your folders"
        )


def _check_totals(files: int, total_bytes: int, label: str, limits: WorkspaceLimits) -> None:
    if files > limits.max_files:
        raise _too_many_files(label, limits)
    if total_bytes > limits.max_total_bytes:
        raise _too_big_total(label, limits)


def _too_big(shown: str, limits: WorkspaceLimits) -> BadSubmission:
    return BadSubmission(
        f"{shown} is larger than {_mib(limits.max_file_bytes)}, the limit for one file; "
        "leave datasets, weights and outputs out of your submission"
    )


def _too_big_total(label: str, limits: WorkspaceLimits) -> BadSubmission:
    return BadSubmission(
        f"{label} holds more than {_mib(limits.max_total_bytes)} in all, the limit; "
        "leave datasets, weights and outputs out of your submission"
    )


def _too_many_files(label: str, limits: WorkspaceLimits) -> BadSubmission:
    return BadSubmission(
        f"{label} holds more than {limits.max_files} files, the limit; "
        "submit only your code (leave out environments, datasets and caches)"
    )


def _is_skipped_file(name: str) -> bool:
    return name in _SKIPPED_FILES or name.endswith(".pyc")


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _mib(size_bytes: int) -> str:
    return f"{size_bytes / MiB:g} MiB" if size_bytes >= MiB else f"{size_bytes} bytes"


def _shown(text: str, limit: int = 120) -> str:
    """Candidate text made safe to show: printable, one line, bounded."""
    printable = "".join(char if char.isprintable() else "?" for char in text)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."
