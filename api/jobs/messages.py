"""What crosses the broker between the service and a fleet grader: one payload, one reply, both versioned.

Both travel as JSON (Celery's JSON serializer; never a pickle). The service builds a
``GradeJobPayload`` and sends ``model_dump(mode="json")``; the fleet grader validates it before it
grades, and answers with a ``GradeJobReply``, which the service validates before it stores anything.
A field added later gets a default, so a grader and a service one version apart still understand each
other; a change that cannot be read the old way raises ``MESSAGE_VERSION``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.jobs.queue import JobOutcome
from api.jobs.state import FinishedState
from grader.challenge import Challenge
from grader.results import GradeResult

MESSAGE_VERSION: Final = 1
MAX_ERROR_CHARS = 2000


class GradeJobPayload(BaseModel):
    """What a fleet grader needs to grade one job: the submission's bytes in base64, and their hash."""

    model_config = ConfigDict(frozen=True)

    version: Literal[1] = MESSAGE_VERSION
    job_id: int
    run: int
    challenge_id: str
    challenge_version: str
    filename: str
    sha256: str
    content_b64: str

    @classmethod
    def for_job(cls, *, job_id: int, run: int, challenge: Challenge, filename: str,
                content: bytes) -> GradeJobPayload:
        return cls(job_id=job_id, run=run, challenge_id=challenge.id, challenge_version=challenge.version,
                   filename=filename, sha256=hashlib.sha256(content).hexdigest(),
                   content_b64=base64.b64encode(content).decode("ascii"))

    def content(self) -> bytes | None:
        """The submission's bytes, or None when they do not match the hash (damaged on the way)."""
        try:
            content = base64.b64decode(self.content_b64, validate=True)
        except ValueError:
            return None
        return content if hashlib.sha256(content).hexdigest() == self.sha256 else None


class GradeJobReply(BaseModel):
    """A fleet grader's answer: a finished state, the grader's result if there is one, and who graded."""

    model_config = ConfigDict(frozen=True)

    version: Literal[1] = MESSAGE_VERSION
    state: FinishedState
    result: GradeResult | None
    error: str | None = Field(default=None)
    charged: bool = True
    worker: str  # the fleet grader's name, as `cvgrade fleet` shows it

    @classmethod
    def of(cls, outcome: JobOutcome, *, worker: str) -> GradeJobReply:
        return cls(state=outcome.state, result=outcome.result, error=outcome.error, charged=outcome.charged,
                   worker=worker)

    def outcome(self) -> JobOutcome:
        error = self.error[:MAX_ERROR_CHARS] if self.error else None
        return JobOutcome(self.state, self.result, error, charged=self.charged)
