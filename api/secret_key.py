"""The server's secret key: what webhook signing secrets are derived from.

``CVGRADE_SECRET_KEY`` when set (several services on several hosts sharing one
PostgreSQL database set the same value), else a random key made once in the
data folder (``secret_key``, mode 0600) and read from there after. The key is
never in the repository nor in the database: a copy of the database alone
cannot forge a webhook's signature. Replacing the key changes every webhook's
secret (teams must register their webhooks again).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from api.config import Settings, SettingsError

KEY_FILE = "secret_key"
_KEY_BYTES = 32


def load_secret_key(settings: Settings) -> bytes:
    """The key as bytes; made (atomically, once) on first use when none is configured."""
    if settings.secret_key is not None:
        return settings.secret_key.encode()
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        _create(path)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 2 * _KEY_BYTES:
        raise SettingsError(f"{path} holds no usable key; delete it to have a new one made "
                            "(every webhook secret changes), or set CVGRADE_SECRET_KEY")
    return key.encode()


def _create(path: Path) -> None:
    """Write the key to a private temporary file, then link it into place: two services starting at
    once agree on one key (the second link fails and that service reads the first's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as stream:
            stream.write(secrets.token_hex(_KEY_BYTES) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
