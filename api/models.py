"""The service's tables, as SQLAlchemy 2 typed models. The schema itself is made by Alembic
(``api/migrations``); ``tests/api/test_storage.py`` checks that the two agree.

::

    teams ─┬─ api_keys                 (hashed; revocable)
           ├─ invitations ─┬─ submissions ─┬─ jobs      (one per submission: the queue)
           │  (hashed token) │               └─ results   (the grader's full JSON)
           │                 └─ candidate_sessions   (hashed; the candidate page's cookie)
           ├─ audit_events
           ├─ dashboard_sessions       (hashed; the dashboard's login cookie)
           ├─ webhooks ── webhook_deliveries ── webhook_attempts
           │    (secret derived, not stored)   (the outbox, retried)   (the delivery log)
           └─ known_solutions          (a team's corpus of public solutions, per challenge)

    submissions ─┬─ result_versions           (results replaced by a re-grade, kept)
                 ├─ submission_fingerprints   (for the similarity check)
                 └─ review_notes
    invitations ─┬─ review_decisions          (advance / hold / reject; the newest counts)
                 └─ similarity_matches        (two candidates' closest submissions, or one and a known solution)

Tokens and keys are never stored, only the SHA-256 of a 32-byte random token
(``api.tokens``). Times are timezone-aware UTC in Python, whatever the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from api.jobs.state import JobState

DECISIONS = ("advance", "hold", "reject")


class JobStateColumn(TypeDecorator[JobState]):
    """A ``JobState`` stored as its string: a state the enum does not know is refused before the database."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: JobState | str | None, dialect: Dialect) -> str | None:
        return None if value is None else JobState(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> JobState | None:
        return None if value is None else JobState(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite keeps no zone), always handed back timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("times stored by cvgrade must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    candidates_see_scores: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to recognise it in lists
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    team: Mapped[Team] = relationship()


class Invitation(Base):
    __tablename__ = "invitations"
    __table_args__ = (Index(None, "team_id", "candidate_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    challenge_id: Mapped[str] = mapped_column(String(100), index=True)
    challenge_version: Mapped[str] = mapped_column(String(32))
    candidate: Mapped[str] = mapped_column(String(320))  # an email address or a label
    # The candidate normalised (``api.invitations.candidate_key``): the same person invited twice has one key.
    candidate_key: Mapped[str] = mapped_column(String(320), default="")
    deadline: Mapped[datetime]  # uploads close
    expires_at: Mapped[datetime]  # the token stops working
    max_attempts: Mapped[int]
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # The token is derived from the server's key and this salt (``api.candidate_access``), so the team's pages
    # can show the candidate's link again; None for invitations made before links existed.
    token_salt: Mapped[str | None] = mapped_column(String(64))
    time_limit_minutes: Mapped[int | None]  # a time box: uploads close this long after started_at
    started_at: Mapped[datetime | None]  # the candidate first opened the page (or read the statement by API)
    candidates_see_scores: Mapped[bool] = mapped_column(default=False)  # the team's setting when invited, or chosen
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    team: Mapped[Team] = relationship()


class CandidateSession(Base):
    """The candidate page's login: the invitation token, exchanged on the first visit for a cookie that holds
    a random token; the table keeps its SHA-256. Revoking the invitation ends it."""

    __tablename__ = "candidate_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("invitation_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)  # denormalised: every query filters by it
    challenge_id: Mapped[str] = mapped_column(String(100), index=True)
    challenge_version: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))  # py | ipynb | zip
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    store_key: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    charged: Mapped[bool] = mapped_column(default=True)  # counts against the attempt budget
    created_at: Mapped[datetime]

    invitation: Mapped[Invitation] = relationship()
    job: Mapped[Job] = relationship(back_populates="submission")
    result: Mapped[Result | None] = relationship(back_populates="submission")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"state IN ({', '.join(repr(state.value) for state in JobState)})", name="state"),
        Index(None, "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    state: Mapped[JobState] = mapped_column(JobStateColumn(), default=JobState.QUEUED)
    runs: Mapped[int] = mapped_column(default=0)  # times a worker claimed it
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]

    submission: Mapped[Submission] = relationship(back_populates="job")


class Result(Base):
    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # the grader's: graded | error
    score: Mapped[float | None]
    max_score: Mapped[float]
    passed: Mapped[bool]
    body: Mapped[dict[str, Any]]  # the full GradeResult, as ``cvgrade grade --json`` prints it
    created_at: Mapped[datetime]

    submission: Mapped[Submission] = relationship(back_populates="result")


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))  # "admin", "api key 3", "candidate of invitation 7", "worker ..."
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class DashboardSession(Base):
    """A login to the dashboard: the cookie holds a random token, the table its SHA-256."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)  # revoking the key ends it
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Webhook(Base):
    """A URL the service POSTs to when a team's job finishes. Its signing secret is derived from the
    server's secret key and ``secret_salt`` (``api.webhooks.webhook_secret``), never stored."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    secret_salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]  # kept, with its log, for the record; nothing more is sent


class WebhookDelivery(Base):
    """One event for one webhook: written in the transaction that finished the job (an outbox), then
    sent, and sent again with back-off until it is delivered or its attempts are spent."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state"),
        Index(None, "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(200))  # the sender that holds it, until locked_until
    locked_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One POST of a delivery: when, how long, and what the receiver answered."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    number: Mapped[int]
    started_at: Mapped[datetime]
    duration_ms: Mapped[float]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)


class ResultVersion(Base):
    """A result a re-grade replaced: the ``results`` row as it was, kept for the record. The current
    result is version ``1 + the number of these`` for its submission."""

    __tablename__ = "result_versions"
    __table_args__ = (UniqueConstraint("submission_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    version: Mapped[int]
    challenge_version: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None]
    max_score: Mapped[float]
    passed: Mapped[bool]
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]  # when it was graded
    superseded_at: Mapped[datetime]
    superseded_by: Mapped[str] = mapped_column(String(200))  # who asked for the re-grade


class SubmissionFingerprint(Base):
    """A submission's winnowed fingerprints (``grader.similarity``), the starter's taken out."""

    __tablename__ = "submission_fingerprints"
    __table_args__ = (Index(None, "team_id", "challenge_id"),)

    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    challenge_id: Mapped[str] = mapped_column(String(100))
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"))
    hashes: Mapped[bytes] = mapped_column(LargeBinary)  # 8 bytes each, sorted
    fingerprints: Mapped[int]
    tokens: Mapped[int]
    normalised_sha256: Mapped[str] = mapped_column(String(64))
    reference_shared: Mapped[int]  # fingerprints shared with the challenge's reference solution
    reference_share: Mapped[float]
    created_at: Mapped[datetime]


class KnownSolution(Base):
    """A solution a team knows to be public (a blog post, a repository), to flag submissions copied from it."""

    __tablename__ = "known_solutions"
    __table_args__ = (Index(None, "team_id", "challenge_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    challenge_id: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200))
    source_url: Mapped[str] = mapped_column(String(2000), default="")
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    store_key: Mapped[str] = mapped_column(String(200))
    hashes: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprints: Mapped[int]
    normalised_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class SimilarityMatch(Base):
    """How much two candidates' code (two invitations to one challenge) shares, by their closest pair of
    submissions (``invitation_id`` < ``other_invitation_id``); or a candidate's and a known solution's.
    One row per pair of candidates, whatever the number of attempts: a round of 100 candidates has at
    most 4,950. Only pairs worth a look are kept (``api.similarity.KEPT_SHARE``)."""

    __tablename__ = "similarity_matches"
    __table_args__ = (
        UniqueConstraint("invitation_id", "other_invitation_id"),
        UniqueConstraint("invitation_id", "known_solution_id"),
        Index(None, "team_id", "challenge_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    challenge_id: Mapped[str] = mapped_column(String(100))
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"))
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    other_invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id"), index=True)
    other_submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"), index=True)
    known_solution_id: Mapped[int | None] = mapped_column(ForeignKey("known_solutions.id"), index=True)
    shared: Mapped[int]
    share: Mapped[float]  # of the smaller one's fingerprints, the share the other holds too
    identical: Mapped[bool]  # the same bytes
    same_code: Mapped[bool]  # the same tokens once names, layout and comments are normalised
    flagged: Mapped[bool]
    created_at: Mapped[datetime]


class ReviewNote(Base):
    __tablename__ = "review_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), index=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ReviewDecision(Base):
    """A decision on a candidate (their invitation); every one is kept, the newest counts."""

    __tablename__ = "review_decisions"
    __table_args__ = (CheckConstraint("decision IN ('advance', 'hold', 'reject')", name="decision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
