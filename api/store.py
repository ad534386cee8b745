"""Where submission files live: a content-addressed store behind a small protocol.

``UploadStore`` is what the service needs: take ownership of a file that was
received and checked (``put``), and give a local path to grade it from
(``local_path``). ``FileUploadStore`` keeps files on disk under the data folder
at ``uploads/<sha256[:2]>/<sha256>``; the same bytes uploaded twice are stored
once. Another store (object storage, say) implements the same three methods.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UploadStore(Protocol):
    def put(self, staged: Path, sha256: str) -> str:
        """Take ``staged`` (moved, not copied), whose content hashes to ``sha256``; return its key."""
        ...

    def local_path(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """A local, readable path to the file stored under ``key``, valid inside the ``with`` block."""
        ...

    def exists(self, key: str) -> bool: ...


class FileUploadStore:
    """Files on the local disk, named by their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _SHA256.match(key):  # keys come from our database, but never let one climb out
            raise ValueError(f"not a store key: {key!r}")
        return self.root / key[:2] / key

    def put(self, staged: Path, sha256: str) -> str:
        target = self._path(sha256)
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            staged.unlink()  # the same bytes are already stored
        else:
            staged.chmod(0o444)
            staged.replace(target)  # atomic: a reader sees the whole file or none
        return sha256

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        yield self._path(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def count(self) -> int:
        """How many files are stored (for tests and the operator)."""
        return sum(1 for path in self.root.glob("*/*") if path.is_file())
