"""Receiving an upload: the request body streamed to a staging file, with a hard byte cap.

Two ways to send a file, both streamed (memory stays flat whatever the size):

- ``multipart/form-data`` with one file part named ``file`` (``curl -F file=@solution.py``);
- ``application/octet-stream`` with the file as the body and its name in the
  ``filename`` query parameter (``curl --data-binary @solution.py``).

A body over the cap is refused with 413 as soon as the cap is passed (at once
when ``Content-Length`` says so), and a refused upload leaves nothing behind.
The file name a client sends is only a label: it is reduced to a safe base
name (letters, digits, ``._-``) that keeps its suffix, which says the kind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import ApiError, PayloadTooLarge, UnsupportedMediaType

FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries, part headers, small fields
_MAX_FIELD_BYTES = 16 * 1024
_MAX_NAME_CHARS = 100


@dataclass
class ReceivedFile:
    """An upload on disk, in a folder of its own under the staging folder."""

    folder: Path
    path: Path
    filename: str
    sha256: str
    size_bytes: int

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def safe_filename(raw: str) -> str:
    """A base name that is safe on any file system and keeps the suffix (``../../a b.py`` -> ``a_b.py``)."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    if len(name) > _MAX_NAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        name = f"{stem[:_MAX_NAME_CHARS - len(suffix) - 1]}.{suffix}" if dot and len(suffix) < 10 else name[:100]
    return name or "submission"


def too_large(max_bytes: int, size_bytes: int | None = None) -> PayloadTooLarge:
    """The one 413 of uploads, whether the size was declared up front or found while streaming."""
    size = f" (this one is {size_bytes / 2**20:.1f} MiB)" if size_bytes is not None else ""
    return PayloadTooLarge(
        f"the upload is larger than {max_bytes / 2**20:g} MiB, the limit{size}; leave datasets, weights "
        "and outputs out of your submission"
    )


class _CappedFile:
    """A staging file that refuses to grow past ``max_bytes`` and hashes what it writes."""

    def __init__(self, folder: Path, filename: str, max_bytes: int) -> None:
        self.filename = safe_filename(filename)
        self.path = folder / self.filename
        self.max_bytes = max_bytes
        self.size_bytes = 0
        self.digest = hashlib.sha256()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.stream: BinaryIO = os.fdopen(descriptor, "wb")

    def write(self, chunk: bytes) -> None:
        self.size_bytes += len(chunk)
        if self.size_bytes > self.max_bytes:
            raise too_large(self.max_bytes)
        self.digest.update(chunk)
        self.stream.write(chunk)

    def close(self, folder: Path) -> ReceivedFile:
        self.stream.close()
        return ReceivedFile(folder, self.path, self.filename, self.digest.hexdigest(), self.size_bytes)


async def receive_upload(request: Request, staging_dir: Path, max_bytes: int) -> ReceivedFile:
    """Stream the request's file to a new folder under ``staging_dir``; raise ``ApiError`` (4xx) if refused."""
    content_type, parameters = parse_options_header(request.headers.get("content-type"))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD_BYTES:
        raise too_large(max_bytes, int(declared))
    if content_type not in (b"multipart/form-data", b"application/octet-stream"):
        shown = content_type.decode("latin-1") or "none"
        raise UnsupportedMediaType(
            f"an upload must be multipart/form-data (a part named 'file') or application/octet-stream "
            f"(the file as the body, its name in ?filename=), not {shown}"
        )
    staging_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=staging_dir))
    try:
        if content_type == b"application/octet-stream":
            return await _receive_body(request, folder, max_bytes)
        boundary = parameters.get(b"boundary")
        if not boundary:
            raise ApiError("the multipart/form-data Content-Type has no boundary; let your HTTP client set it")
        return await _receive_form(request, folder, max_bytes, boundary)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


async def _receive_body(request: Request, folder: Path, max_bytes: int) -> ReceivedFile:
    filename = request.query_params.get("filename")
    if not filename:
        raise ApiError("an application/octet-stream upload needs the file's name: add ?filename=solution.py")
    target = _CappedFile(folder, filename, max_bytes)
    try:
        async for chunk in request.stream():
            target.write(chunk)
    finally:
        target.stream.close()
    return target.close(folder)


class _FormReceiver:
    """Callbacks for python-multipart's streaming parser: the part named ``file`` goes to disk."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.headers: dict[bytes, bytes] = {}
        self.field, self.value = b"", b""
        self.target: _CappedFile | None = None
        self.received: ReceivedFile | None = None
        self.other_bytes = 0

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") != b"file":
            return
        if self.received is not None or self.target is not None:
            raise ApiError("send one file per upload, in the part named 'file'")
        filename = options.get(b"filename")
        if not filename:
            raise ApiError("the part named 'file' has no file name; send it as a file (curl -F file=@solution.py)")
        self.target = _CappedFile(self.folder, filename.decode("utf-8", "replace"), self.max_bytes)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.target is not None:
            self.target.write(data[start:end])
            return
        self.other_bytes += end - start
        if self.other_bytes > _MAX_FIELD_BYTES:
            raise ApiError("the form's other fields are too large; send only the part named 'file'")

    def on_part_end(self) -> None:
        if self.target is not None:
            self.received = self.target.close(self.folder)
            self.target = None

    def close(self) -> None:
        if self.target is not None:
            self.target.stream.close()


async def _receive_form(request: Request, folder: Path, max_bytes: int, boundary: bytes) -> ReceivedFile:
    receiver = _FormReceiver(folder, max_bytes)
    parser = MultipartParser(boundary, {
        "on_part_begin": receiver.on_part_begin,
        "on_header_field": receiver.on_header_field,
        "on_header_value": receiver.on_header_value,
        "on_header_end": receiver.on_header_end,
        "on_headers_finished": receiver.on_headers_finished,
        "on_part_data": receiver.on_part_data,
        "on_part_end": receiver.on_part_end,
    })
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as err:
        raise ApiError(f"the multipart/form-data body is malformed ({err}); let your HTTP client build it") from None
    finally:
        receiver.close()
    if receiver.received is None:
        raise ApiError("the form has no file: send it in a part named 'file' (curl -F file=@solution.py)")
    return receiver.received
