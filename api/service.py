"""What every part of the running service shares: settings, database, upload store, clock, job runner."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from api.config import Settings
from api.db import Database
from api.errors import NotFound
from api.store import UploadStore
from grader.challenge import Challenge, default_challenges_dir, list_challenge_ids, load_challenge
from grader.errors import ChallengeError

if TYPE_CHECKING:
    from api.backend_check import BackendMonitor
    from api.jobs.runner import JobRunner

Clock = Callable[[], datetime]
_CHALLENGE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Service:
    settings: Settings
    db: Database
    store: UploadStore
    clock: Clock = utc_now
    runner: JobRunner | None = field(default=None)

    @functools.cached_property
    def secret_key(self) -> bytes:
        """The server's secret key (``api.secret_key``), read once."""
        from api.secret_key import load_secret_key

        return load_secret_key(self.settings)

    @functools.cached_property
    def backend_monitor(self) -> BackendMonitor:
        """Whether the sandbox backend can grade (``/health``), checked now and then."""
        from api.backend_check import BackendMonitor

        return BackendMonitor(self.settings)

    def notify_runner(self) -> None:
        """A job was queued: have the runner claim it now rather than at its next poll."""
        if self.runner is not None:
            self.runner.notify()

    def challenge(self, challenge_id: str) -> Challenge:
        """The challenge with this id, or 404. Only plain ids: never a path on the server."""
        if not _CHALLENGE_ID.match(challenge_id):
            raise NotFound(f"there is no challenge {challenge_id[:100]!r}; GET /api/v1/challenges lists them")
        base = self.settings.challenges_dir or default_challenges_dir()
        try:
            return load_challenge(base / challenge_id)
        except ChallengeError:
            known = ", ".join(list_challenge_ids(self.settings.challenges_dir)) or "none"
            raise NotFound(f"there is no challenge {challenge_id!r} (known: {known})") from None

    def challenges(self) -> list[Challenge]:
        """Every challenge that loads; a malformed one is left out (``cvgrade validate`` names its problem)."""
        base = self.settings.challenges_dir or default_challenges_dir()
        loaded = []
        for challenge_id in list_challenge_ids(base):
            try:
                loaded.append(load_challenge(base / challenge_id))
            except ChallengeError:
                continue
        return loaded
