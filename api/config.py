"""The service's settings: command-line flags over ``CVGRADE_*`` environment over defaults.

Nothing is read at import time: ``resolve_settings`` is called once, when the
service (or an admin command) starts, and everything after that gets the
resulting frozen ``Settings``.

==========================  =====================================================
environment                 meaning (default)
==========================  =====================================================
``CVGRADE_DATA``            data folder: SQLite file, uploads (``~/.local/share/cvgrade``)
``CVGRADE_DATABASE_URL``    SQLAlchemy URL; ``postgresql://...`` uses psycopg 3 (SQLite in the data folder)
``CVGRADE_JOBS``            gradings run at once (1)
``CVGRADE_BACKEND``         sandbox backend: auto, docker or local (auto)
``CVGRADE_MAX_UPLOAD_MB``   largest accepted upload, in MiB (50)
``CVGRADE_JOB_HEARTBEAT_S`` how often a running job says it is alive (5)
``CVGRADE_JOB_STALE_S``     a running job silent this long is taken back (60)
``CVGRADE_JOB_MAX_RUNS``    times a job may be started before it is failed (3)
``CVGRADE_CHALLENGES_DIR``  the challenges (the ``challenges/`` folder beside the packages)
``CVGRADE_BROKER_URL``      grade on a fleet of ``cvgrade worker`` hosts through this broker (none: in-process)
``CVGRADE_NO_WORKER_S``     a job no connected worker can run is failed after this long (600)
``CVGRADE_SECRET_KEY``      signs webhook secrets (a key made once in ``<data>/secret_key``)
``CVGRADE_WEBHOOK_BACKOFF_S`` first wait before a failed webhook delivery is sent again; doubles (10)
``CVGRADE_WEBHOOK_MAX_ATTEMPTS`` sends of one delivery before it is given up (8)
``CVGRADE_WEBHOOK_ALLOW_PRIVATE`` ``1``: webhooks may POST to loopback and private addresses (off)
``CVGRADE_PUBLIC_URL``      the address people and webhooks reach the service at, for links (``serve``: its own)
==========================  =====================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, cast

from grader.errors import CvgradeError, ExitCode

MiB = 1024 * 1024
Backend = Literal["auto", "docker", "local"]
Isolation = Literal["auto", "bwrap", "process"]


class SettingsError(CvgradeError):
    """A setting has a value the service cannot use (exit code 2)."""

    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to know, resolved once at start."""

    data_dir: Path
    database_url: str
    jobs: int = 1
    backend: Backend = "auto"
    isolation: Isolation = "auto"
    challenges_dir: Path | None = None
    max_upload_bytes: int = 50 * MiB
    max_json_bytes: int = 1 * MiB
    heartbeat_s: float = 5.0
    stale_after_s: float = 60.0
    max_job_runs: int = 3
    poll_s: float = 1.0
    broker_url: str | None = None  # None: grade in this process; else hand jobs to `cvgrade worker`s
    no_worker_timeout_s: float = 600.0
    secret_key: str | None = None  # None: the key file in the data folder
    webhook_backoff_s: float = 10.0
    webhook_max_attempts: int = 8
    webhook_timeout_s: float = 10.0
    webhook_allow_private: bool = False
    public_url: str | None = None  # https://grader.example.com; None: links use the address the request came to
    # Refuse code Python cannot parse at upload (api.syntax). Always on in the service; tests whose fake grader
    # reads directives rather than Python ("pass:all") turn it off.
    parse_check: bool = True

    def base_url(self, request_base: str | None = None) -> str:
        """The address links start with: the configured public URL, else the request's, else loopback."""
        return (self.public_url or request_base or "http://127.0.0.1:8000").rstrip("/")

    @property
    def uploads_dir(self) -> Path:
        """Where the content-addressed submission files live."""
        return self.data_dir / "uploads"

    @property
    def staging_dir(self) -> Path:
        """Uploads being received; on the same file system as ``uploads_dir`` so a move is a rename."""
        return self.data_dir / "staging"


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "cvgrade"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'cvgrade.db'}"


def resolve_settings(
    *,
    data_dir: Path | None = None,
    database_url: str | None = None,
    jobs: int | None = None,
    backend: str | None = None,
    isolation: str | None = None,
    challenges_dir: Path | None = None,
    max_upload_mb: int | None = None,
    broker_url: str | None = None,
    public_url: str | None = None,
) -> Settings:
    """Settings from the flags given (None: not given), then ``CVGRADE_*``, then defaults."""
    env = os.environ
    folder = data_dir or (Path(env["CVGRADE_DATA"]) if env.get("CVGRADE_DATA") else default_data_dir())
    folder = folder.expanduser().resolve()
    url = database_url or env.get("CVGRADE_DATABASE_URL") or sqlite_url(folder)
    chosen_backend = backend or env.get("CVGRADE_BACKEND") or "auto"
    if chosen_backend not in ("auto", "docker", "local"):
        raise SettingsError(f"the sandbox backend must be auto, docker or local, not {chosen_backend!r}")
    chosen_isolation = isolation or "auto"
    if chosen_isolation not in ("auto", "bwrap", "process"):
        raise SettingsError(f"the isolation must be auto, bwrap or process, not {chosen_isolation!r}")
    configured_dir = env.get("CVGRADE_CHALLENGES_DIR")
    settings = Settings(
        data_dir=folder,
        database_url=url,
        jobs=jobs if jobs is not None else _number(env, "CVGRADE_JOBS", 1, int),
        backend=cast(Backend, chosen_backend),
        isolation=cast(Isolation, chosen_isolation),
        challenges_dir=challenges_dir or (Path(configured_dir) if configured_dir else None),
        max_upload_bytes=(max_upload_mb if max_upload_mb is not None
                          else _number(env, "CVGRADE_MAX_UPLOAD_MB", 50, int)) * MiB,
        heartbeat_s=_number(env, "CVGRADE_JOB_HEARTBEAT_S", 5.0, float),
        stale_after_s=_number(env, "CVGRADE_JOB_STALE_S", 60.0, float),
        max_job_runs=_number(env, "CVGRADE_JOB_MAX_RUNS", 3, int),
        broker_url=broker_url or env.get("CVGRADE_BROKER_URL") or None,
        no_worker_timeout_s=_number(env, "CVGRADE_NO_WORKER_S", 600.0, float),
        secret_key=env.get("CVGRADE_SECRET_KEY") or None,
        webhook_backoff_s=_number(env, "CVGRADE_WEBHOOK_BACKOFF_S", 10.0, float),
        webhook_max_attempts=_number(env, "CVGRADE_WEBHOOK_MAX_ATTEMPTS", 8, int),
        webhook_allow_private=env.get("CVGRADE_WEBHOOK_ALLOW_PRIVATE", "") in ("1", "true", "yes"),
        public_url=_public_url(public_url or env.get("CVGRADE_PUBLIC_URL") or None),
    )
    _check(settings)
    return settings


_Number = TypeVar("_Number", int, float)


def _public_url(raw: str | None) -> str | None:
    if raw is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(raw.strip())
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and not (parts.query or parts.fragment)
    except ValueError:
        valid = False
    if not valid or any(character.isspace() for character in raw.strip()):
        raise SettingsError(f"the public URL (--public-url, CVGRADE_PUBLIC_URL) must be an http:// or https:// "
                            f"address such as https://grader.example.com, not {raw!r}")
    return raw.strip().rstrip("/")


def _number(env: Mapping[str, str], name: str, default: _Number, kind: type[_Number]) -> _Number:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a {'whole number' if kind is int else 'number'}, not {raw!r}") from None


def _check(settings: Settings) -> None:
    if not 1 <= settings.jobs <= 64:
        raise SettingsError(f"the number of gradings at once (--jobs) must be 1 to 64, not {settings.jobs}")
    if settings.max_upload_bytes < 1:
        raise SettingsError("the upload limit must be at least 1 MiB")
    if settings.heartbeat_s <= 0 or settings.stale_after_s < 2 * settings.heartbeat_s:
        raise SettingsError(
            f"a job's stale time ({settings.stale_after_s:g} s) must be at least twice its heartbeat "
            f"({settings.heartbeat_s:g} s), else live jobs would be taken back"
        )
    if settings.max_job_runs < 1:
        raise SettingsError("CVGRADE_JOB_MAX_RUNS must be at least 1")
    if settings.webhook_backoff_s <= 0 or settings.webhook_max_attempts < 1:
        raise SettingsError("CVGRADE_WEBHOOK_BACKOFF_S must be above 0 and CVGRADE_WEBHOOK_MAX_ATTEMPTS at least 1")
    if settings.secret_key is not None and len(settings.secret_key) < 32:
        raise SettingsError("CVGRADE_SECRET_KEY must be at least 32 characters (a random string)")
