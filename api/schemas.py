"""What the API reads and writes, named by role: ``...Create`` comes in, ``...Public`` goes out to
the team, ``Candidate...`` goes out to a candidate. OpenAPI's schema is built from these.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from api.jobs.state import JobState


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _a_number(value: Any) -> Any:
    """JSON's integers (``3``, and ``3.0``, which JSON Schema counts as one), never a string or a boolean."""
    if isinstance(value, str | bool):
        raise ValueError("must be a number, not a string or true/false")
    return value


def _in_utc(value: datetime) -> datetime:
    """A time that exists in UTC (``0001-01-01T00:00:00+14:00`` does not: it falls before year 1)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range: give a time between the years 1 and 9999 in UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong, as a sentence a person understands.")


class GradingHealth(BaseModel):
    backend: str = Field(description="The sandbox backend configured: auto, docker, local, or fleet (workers grade).")
    chosen: str | None = Field(description="The backend that grades here (auto's choice); none when none can.")
    ready: bool
    problem: str | None = Field(description="Why grading is not possible now, in a sentence; the log has the detail.")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description=(
        "degraded: the service answers and keeps uploads, but cannot grade them now (see grading.problem)."))
    version: str
    database: str
    grading: GradingHealth


class TeamPublic(BaseModel):
    id: int
    name: str
    candidates_see_scores: bool


class TeamUpdate(_In):
    candidates_see_scores: StrictBool = Field(description=(
        "Whether candidates invited from now on see their score, points and verdict (each invitation keeps the "
        "setting it was made with, or its own)."))


class CheckPublic(BaseModel):
    name: str
    points: float
    gate: bool
    timed: bool
    visibility: str
    description: str


class FunctionPublic(BaseModel):
    name: str
    parameters: list[str]
    signature: str


class ChallengePublic(BaseModel):
    id: str
    version: str
    title: str
    level: str
    summary: str
    pass_mark: float
    max_score: float
    functions: list[FunctionPublic]
    checks: list[CheckPublic]


class ChallengeDetail(ChallengePublic):
    statement: str = Field(description="The statement (README.md) as Markdown.")


class InvitationCreate(_In):
    challenge_id: Annotated[str, Field(min_length=1, max_length=100)]
    candidate: Annotated[str, Field(min_length=1, max_length=320, description="An email address or a label.")]
    deadline: UtcDatetime = Field(description=(
        "Uploads close at this time (ISO 8601 with a time zone; at most ten years ahead)."))
    max_attempts: Annotated[int, Field(ge=1, le=100), BeforeValidator(_a_number)] = 3
    expires_at: UtcDatetime | None = Field(
        default=None, description="The token stops working at this time; default: 30 days after the deadline."
    )
    time_limit_minutes: Annotated[int | None, Field(ge=1, le=7 * 24 * 60, description=(
        "A time box: uploads close this many minutes after the candidate first opens the page (or fetches the "
        "statement or starter kit), or at the deadline if that is sooner. None: no time box.")),
        BeforeValidator(_a_number)] = None
    candidates_see_scores: StrictBool | None = Field(default=None, description=(
        "Whether this candidate sees their score, points and verdict; default: the team's setting now."))


class InvitationUpdate(_In):
    deadline: UtcDatetime | None = Field(default=None, description=(
        "A new time at which uploads close (in the future). The token then works at least 30 days after it."))
    max_attempts: Annotated[int | None, Field(ge=1, le=100, description="A new attempt budget."),
                            BeforeValidator(_a_number)] = None


class InvitationPublic(BaseModel):
    id: int
    challenge_id: str
    challenge_version: str
    candidate: str
    deadline: datetime
    expires_at: datetime
    max_attempts: int
    attempts_used: int
    revoked: bool
    created_at: datetime
    time_limit_minutes: int | None = Field(default=None, description="The time box, if any.")
    started_at: datetime | None = Field(default=None, description=(
        "When the candidate first opened the page (or fetched the statement or starter kit); a time box "
        "counts from it."))
    uploads_close_at: datetime = Field(description=(
        "When uploads close for this candidate: the deadline, or the end of their time box if sooner."))
    candidates_see_scores: bool = Field(description="Whether this candidate sees their score and verdict.")
    candidate_url: str | None = Field(default=None, description=(
        "The candidate's page: the link to send them. It holds their token; None for invitations made before "
        "links existed or under another server key."))
    same_candidate_as: list[int] = Field(default_factory=list, description=(
        "Other invitations of yours to the same challenge for the same candidate (the address compared "
        "without case, +tags or Gmail's dots): a person invited twice gets twice the attempts."))


class InvitationCreated(InvitationPublic):
    token: str = Field(description="The candidate's token. Shown this once: only its hash is stored.")


class SubmissionPublic(BaseModel):
    id: int
    invitation_id: int
    candidate: str
    challenge_id: str
    challenge_version: str
    filename: str
    kind: str
    size_bytes: int
    sha256: str
    created_at: datetime
    state: JobState
    charged: bool = Field(description="Whether it counts against the invitation's attempt budget.")
    score: float | None
    max_score: float | None
    passed: bool | None
    error: str | None = Field(description="Why grading failed or was not possible, when it was.")
    note: str | None = Field(default=None, description=(
        "While the job waits or runs: what it waits for (no worker that can run it is connected) or why it "
        "was queued again."))


class SimilarToPublic(BaseModel):
    """Another candidate whose code this candidate's resembles (any of their submissions)."""

    candidate: str
    invitation_id: int
    submission_id: int = Field(description="This candidate's submission that matched.")
    other_submission_id: int
    share: float = Field(description="The share of the smaller submission's code the other holds too, 0 to 1.")
    identical: bool
    same_code: bool


class ComparisonRow(BaseModel):
    rank: int
    invitation_id: int
    candidate: str
    submission_id: int = Field(description="The submission the candidate is ranked by (their best, or latest).")
    latest_submission_id: int
    graded_submissions: int
    score: float | None
    max_score: float
    passed: bool
    failed_gates: list[str]
    checks: dict[str, Literal["passed", "failed"]]
    metrics: dict[str, Any]
    timed_alongside_other_gradings: int = Field(description=(
        "How many other gradings ran on the machine during the timed checks (0: it had the machine alone); "
        "timed figures taken while others ran may be slower than the code is."))
    decision: Literal["advance", "hold", "reject"] | None = Field(description="The team's current decision.")
    similar_to: list[SimilarToPublic] = Field(description="Candidates whose code is flagged as similar.")


class Comparison(BaseModel):
    challenge_id: str
    rank_by: Literal["best", "latest"] = Field(description=(
        "best: each candidate's best graded submission (passed, then score, then earliest); latest: their latest."))
    checks: list[str]
    timed_checks: list[str] = Field(description="Checks that measure time.")
    metric_labels: dict[str, str] = Field(description="Each metric's name in plain words.")
    rows: list[ComparisonRow] = Field(
        description="One row per candidate with a graded submission, best first: passed, then score, then earliest."
    )


class AuditEventPublic(BaseModel):
    id: int
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    created_at: datetime


class CandidateChallenge(BaseModel):
    id: str
    version: str
    title: str
    summary: str
    functions: list[FunctionPublic]


class CandidateInvitation(BaseModel):
    challenge: CandidateChallenge
    statement: str = Field(description="The statement (README.md) as Markdown.")
    starter: dict[str, str] = Field(description="The starter files, by name.")
    deadline: datetime
    max_attempts: int
    attempts_used: int
    attempts_left: int
    submissions_open: bool
    time_limit_minutes: int | None = Field(default=None, description="Your time box, if the team set one.")
    started_at: datetime | None = Field(default=None, description="When you first opened the challenge.")
    uploads_close_at: datetime = Field(description=(
        "When uploads close for you: the deadline, or the end of your time box if sooner."))
    closed_reason: str | None = Field(default=None, description="Why uploads are closed, when they are.")


class CandidateCheck(BaseModel):
    name: str
    status: Literal["passed", "failed"]
    message: str = Field(description="For hidden checks, only what kind of failure it was.")
    description: str | None = Field(description="What the check checks; absent for hidden checks.")
    score: float | None = None
    max_score: float | None = None


class CandidateFeedback(BaseModel):
    status: Literal["graded", "error"]
    summary: str
    score: float | None = None
    max_score: float | None = None
    passed: bool | None = None
    checks: list[CandidateCheck]
    notes: list[str]


class CandidateSubmission(BaseModel):
    id: int
    filename: str
    kind: str
    size_bytes: int
    sha256: str
    created_at: datetime
    state: JobState
    charged: bool
    attempts_left: int
    message: str = Field(description="Where the submission stands, in a sentence.")
    feedback: CandidateFeedback | None = None


class WebhookCreate(_In):
    url: Annotated[str, Field(min_length=8, max_length=2000, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://", description=(
        "Where to POST: http:// or https://. Each request is signed (X-Cvgrade-Signature); see the docs."))]
    description: Annotated[str, Field(max_length=200, description="What it is for.")] = ""


class WebhookPublic(BaseModel):
    id: int
    url: str
    description: str
    created_at: datetime
    pending: int = Field(description="Deliveries not yet made (waiting or being retried).")
    delivered: int
    failed: int = Field(description="Deliveries given up after every attempt failed.")


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="The signing secret (whsec_...). Shown this once.")


class WebhookAttemptPublic(BaseModel):
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None = Field(description="The receiver's HTTP status; none when no answer came.")
    error: str | None


class WebhookDeliveryPublic(BaseModel):
    id: int
    event: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is sent next, while pending.")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The event as sent (the body also carries delivery_id).")
    log: list[WebhookAttemptPublic]
