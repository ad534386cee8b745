"""Zip archives: a submitted ``.zip`` checked entry by entry, then extracted under hard caps.

``unpack_zip`` is the one entry point. Before ``ZipFile`` parses anything it caps
the archive's size and the size its central directory declares; then it checks
every entry without extracting (no links or special files, no names that climb
out, no odd methods or passwords, no zip bombs, caps on files, bytes and depth),
and only then writes each member with a byte counter that trusts no declared size.

It also owns what folder submissions share with archives, because
``grader.workspace`` imports this module and never the reverse: the limits
(``WorkspaceLimits``, which word their own refusals), the names left out of every
submission, safe file and folder creation, and ``shown`` for candidate text.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from grader.errors import BadSubmission

MiB = 1024 * 1024
ACCEPTED = "a .py file, a .ipynb notebook, a folder, or a .zip of your solution folder"
SKIPPED_DIRS = frozenset({"__pycache__", ".git", "__MACOSX", ".ipynb_checkpoints"})

_ZIP_ADVICE = "zip your solution folder without '..' or absolute paths"
_CHUNK_BYTES = MiB
_RATIO_CHECKED_ABOVE_BYTES = MiB  # small files may legitimately compress very well
_MAX_PATH_CHARS = 1024
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

RelativePath = tuple[str, ...]


@dataclass(frozen=True)
class WorkspaceLimits:
    """Caps on what a submission may unpack to. Ratios apply to entries above 1 MiB."""

    max_total_bytes: int = 100 * MiB
    max_files: int = 2000
    max_file_bytes: int = 50 * MiB
    max_compression_ratio: int = 200
    max_depth: int = 16

    def file_too_big(self, shown: str) -> BadSubmission:
        """The refusal for one file (``shown`` says which) over ``max_file_bytes``."""
        return BadSubmission(
            f"{shown} is larger than {_mib(self.max_file_bytes)}, the limit for one file; "
            "leave datasets, weights and outputs out of your submission"
        )

    def total_too_big(self, label: str) -> BadSubmission:
        """The refusal for a submission holding more than ``max_total_bytes``."""
        return BadSubmission(
            f"{label} holds more than {_mib(self.max_total_bytes)} in all, the limit; "
            "leave datasets, weights and outputs out of your submission"
        )

    def too_many_files(self, label: str) -> BadSubmission:
        """The refusal for a submission holding more than ``max_files``."""
        return BadSubmission(
            f"{label} holds more than {self.max_files} files, the limit; "
            "submit only your code (leave out environments, datasets and caches)"
        )

    def check_depth(self, parts: RelativePath, label: str) -> None:
        """Raise ``BadSubmission`` if ``parts`` is nested deeper than ``max_depth``."""
        if len(parts) > self.max_depth:
            raise BadSubmission(
                f"{label}: '{shown('/'.join(parts))}' is nested {len(parts)} levels deep, more "
                f"than the {self.max_depth} allowed; flatten your folders"
            )


@dataclass
class _ZipPlan:
    directories: list[RelativePath] = field(default_factory=list)
    files: list[tuple[RelativePath, zipfile.ZipInfo]] = field(default_factory=list)


def unpack_zip(
    archive_path: Path,
    target: Path,
    limits: WorkspaceLimits,
    choose_entry: Callable[[list[RelativePath], str], str],
) -> tuple[str, int, str]:
    """Validate every entry, then extract into ``target``; return sha256, size and entry file.

    ``sha256`` and ``size_bytes`` are the archive file's own. ``choose_entry`` gets the
    paths of the files to extract (relative to ``target``, a single top folder already
    stripped) and the archive's name; it returns the file to grade or raises, and runs
    before anything is written. Raises ``BadSubmission`` for anything refused; what was
    written by then is the caller's to remove.
    """
    label = archive_path.name
    with archive_path.open("rb") as stream:
        size_bytes = os.fstat(stream.fileno()).st_size
        if size_bytes > limits.max_total_bytes:
            raise limits.total_too_big(label)
        sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
        directory_bytes = _central_directory_bytes(stream)
        if directory_bytes is not None and directory_bytes > limits.max_files * 1024 + 64 * 1024:
            raise limits.too_many_files(label)
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
            entry = choose_entry([parts for parts, _ in plan.files], label)
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


def _plan_zip(archive: zipfile.ZipFile, label: str, limits: WorkspaceLimits) -> _ZipPlan:
    """Check every entry of the archive, without extracting, and decide where each goes."""
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise limits.too_many_files(label)
    seen: set[RelativePath] = set()
    kept: list[tuple[RelativePath, zipfile.ZipInfo, bool]] = []
    declared_bytes = 0
    for info in infos:
        parts = _zip_entry_parts(info.orig_filename, label)
        where = f"{label}: entry '{shown(info.orig_filename)}'"
        if parts in seen:
            raise BadSubmission(f"{where} appears twice; zip your solution folder again")
        seen.add(parts)
        is_directory = _check_zip_entry_type(info, where)
        if not is_directory:
            _check_zip_entry_size(info, where, limits)
            declared_bytes += info.file_size
            if declared_bytes > limits.max_total_bytes:
                raise limits.total_too_big(label)
        skipped = any(part in SKIPPED_DIRS for part in parts) or is_skipped_file(parts[-1])
        if not skipped:
            kept.append((parts, info, is_directory))

    tops = {parts[0] for parts, _, _ in kept}
    strip = len(tops) == 1 and all(len(parts) > 1 or is_dir for parts, _, is_dir in kept)
    plan = _ZipPlan()
    for parts, info, is_directory in kept:
        relative = parts[1:] if strip else parts
        if not relative:
            continue
        limits.check_depth(relative, label)
        if is_directory:
            plan.directories.append(relative)
        else:
            plan.files.append((relative, info))
    file_paths = {parts for parts, _ in plan.files}
    for parts, _ in plan.files:
        parents = {parts[:depth] for depth in range(1, len(parts))}
        clash = parents & file_paths
        if clash:
            raise BadSubmission(
                f"{label}: '{shown('/'.join(min(clash)))}' is both a file and a folder; "
                "zip your solution folder again"
            )
    return plan


def _zip_entry_parts(name: str, label: str) -> RelativePath:
    """Split an entry's name into safe path components, or refuse it."""
    where = f"{label}: entry '{shown(name)}'"
    if any(is_control(char) for char in name):
        raise BadSubmission(
            f"{where} has a NUL or control character in its name; rename the file and zip again"
        )
    if "\\" in name:
        raise BadSubmission(
            f"{where} uses backslashes in its path; zip your solution folder with a tool that "
            "writes '/' separators (such as 'python -m zipfile -c')"
        )
    if name.startswith("/") or _DRIVE_LETTER.match(name):
        raise BadSubmission(f"{where} has an absolute path; {_ZIP_ADVICE}")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise BadSubmission(f"{where} points outside the archive; {_ZIP_ADVICE}")
    if not parts:
        raise BadSubmission(f"{where} has an empty name; zip your solution folder again")
    if len(name) > _MAX_PATH_CHARS or any(len(part.encode()) > 255 for part in parts):
        raise BadSubmission(f"{where} has a path that is too long; use shorter names")
    return parts


def _check_zip_entry_type(info: zipfile.ZipInfo, where: str) -> bool:
    """Refuse links, special files, encryption and odd methods; return whether it is a folder."""
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise BadSubmission(
            f"{where} is a symbolic link; cvgrade never follows links: replace it with the "
            "file itself (zip without --symlinks) or remove it"
        )
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise BadSubmission(
            f"{where} is not a regular file (a pipe, socket or device); remove it and zip again"
        )
    if info.flag_bits & 0x1:
        raise BadSubmission(f"{where} is password-protected; zip your folder without a password")
    if info.compress_type not in _ZIP_METHODS:
        raise BadSubmission(
            f"{where} uses compression method {info.compress_type}, which cvgrade cannot read; "
            "zip your folder again with the standard (deflate) method"
        )
    return info.filename.endswith("/") or file_type == stat.S_IFDIR


def _check_zip_entry_size(info: zipfile.ZipInfo, where: str, limits: WorkspaceLimits) -> None:
    if info.file_size > limits.max_file_bytes:
        raise limits.file_too_big(where)
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_CHECKED_ABOVE_BYTES and ratio > limits.max_compression_ratio:
        raise BadSubmission(
            f"{where} expands {ratio:.0f} times (from {info.compress_size} to {info.file_size} "
            f"bytes), more than the {limits.max_compression_ratio} allowed: it looks like a zip "
            "bomb; leave generated or padding files out of your submission"
        )


def _extract(
    archive: zipfile.ZipFile, plan: _ZipPlan, target: Path, label: str, limits: WorkspaceLimits
) -> None:
    """Write each planned member, trusting no declared size: a counter stops at the cap."""
    for parts in plan.directories:
        make_directory(target, parts)
    total_bytes = 0
    for parts, info in plan.files:
        where = f"{label}: entry '{shown(info.orig_filename)}'"
        cap_bytes = min(info.file_size, limits.max_file_bytes)
        make_directory(target, parts[:-1])
        try:
            reader = archive.open(info)  # checks the member's local header against the directory
        except _CORRUPT_MEMBER_ERRORS as error:
            raise _corrupt(where, error) from None
        with reader, create_file(target.joinpath(*parts)) as writer:
            size_bytes = 0
            while True:
                try:
                    chunk = reader.read(_CHUNK_BYTES)
                except _CORRUPT_MEMBER_ERRORS as error:
                    raise _corrupt(where, error) from None
                if not chunk:
                    break
                size_bytes += len(chunk)
                if size_bytes > cap_bytes:
                    raise BadSubmission(
                        f"{where} holds more bytes than it declares; the archive is corrupt or "
                        "crafted: zip your solution folder again"
                    )
                writer.write(chunk)
        total_bytes += size_bytes
        if total_bytes > limits.max_total_bytes:
            raise limits.total_too_big(label)


def _corrupt(where: str, error: BaseException) -> BadSubmission:
    reason = shown(str(error) or type(error).__name__, 80)
    if isinstance(error, NotImplementedError | RuntimeError):
        return BadSubmission(
            f"{where} uses a zip feature cvgrade cannot read ({reason}); "
            "zip your solution folder again with a standard tool, without a password"
        )
    return BadSubmission(f"{where} is corrupt ({reason}); zip your solution folder again")


def create_file(path: Path) -> BinaryIO:
    """A new world-readable file; never overwrites and never follows a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    os.fchmod(fd, 0o644)  # the umask may have taken bits off
    return os.fdopen(fd, "wb")


def make_directory(root: Path, parts: RelativePath) -> None:
    """Create ``root/parts...`` one level at a time, each folder 0o755."""
    for depth in range(1, len(parts) + 1):
        directory = root.joinpath(*parts[:depth])
        if not directory.is_dir():
            directory.mkdir(mode=0o755)
            directory.chmod(0o755)


def is_skipped_file(name: str) -> bool:
    """Whether a file is left out of every workspace (caches, Finder litter)."""
    return name in _SKIPPED_FILES or name.endswith(".pyc")


def is_control(char: str) -> bool:
    """Whether ``char`` is an ASCII or C1 control character."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def shown(text: str, limit: int = 120) -> str:
    """Candidate text made safe to show: printable, one line, bounded."""
    printable = "".join(char if char.isprintable() else "?" for char in text)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."


def _mib(size_bytes: int) -> str:
    return f"{size_bytes / MiB:g} MiB" if size_bytes >= MiB else f"{size_bytes} bytes"
