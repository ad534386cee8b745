"""What the service asks of whatever grades its jobs: the in-process ``GradingPool`` or the fleet's
``CeleryDispatcher``."""

from __future__ import annotations

from typing import Protocol

from api.jobs.queue import ClaimedJob


class JobRunner(Protocol):
    def start(self) -> None:
        """Take back or adopt what a previous run of the service left, then start claiming jobs."""

    def notify(self) -> None:
        """A job was queued: claim it now rather than at the next poll."""

    def running(self) -> list[ClaimedJob]:
        """The jobs this runner holds now."""

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop claiming; a job cut short is never stored as the candidate's result."""
