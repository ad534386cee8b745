"""A job's state: what the database stores and the JSON API shows, one enum for both."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class JobState(StrEnum):
    """Its values are the strings stored in ``jobs.state`` and shown by the API: never rename one."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"  # graded: the result is stored
    FAILED = "failed"  # the grader refused the submission, or we gave up on it (the reason says which)
    NOT_GRADABLE = "not_gradable"  # our side failed, or the challenge changed: not charged

    @property
    def finished(self) -> bool:
        return self in FINISHED


FinishedState = Literal[JobState.DONE, JobState.FAILED, JobState.NOT_GRADABLE]
FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.NOT_GRADABLE})
WAITING = frozenset({JobState.QUEUED, JobState.RUNNING})
