"""What crosses between the grader and its judge process: the judge spec and the judge's records.

    grader.grading --JudgeSpec (judge-spec.json)--> grader.judge.runner
    grader.judge.plugin --JudgeRecord lines (records.jsonl)--> grader.judge.records --> grading, scoring, progress

Both sides are ours, but they are separate processes that may come from different
installs (a grader upgraded under a running service), so each document carries a
version and is read strictly: a spec or record of another version, with a field
missing, unknown or of the wrong type, is refused with a message that says so,
never half-read. The grader turns an unreadable record into "not gradable" (our
failure), never into a verdict. Values a check or the candidate's worker chose
(metrics, charts, the worker's claims about itself) are typed as JSON, not
checked further: their content must never make a record unreadable, or a
submission could buy itself a free attempt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
)

from harness.sandbox import Limits, SandboxConfig

JUDGE_SPEC_VERSION = 1
RECORDS_VERSION = 1


class ContractError(ValueError):
    """A spec or record that this side cannot read: another version, or not the agreed shape."""


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _refuse_other_versions(data: object, expected: int, what: str) -> None:
    """Checked before the shape, so that another version's document is named as such."""
    version = data.get("version") if isinstance(data, dict) else None
    if version != expected:
        raise ValueError(
            f"{what} of version {version!r}, and this cvgrade reads version {expected}: the grader and the "
            "judge come from different cvgrade installs; reinstall so that both run the same version"
        )


# ---------------------------------------------------------------------- the judge spec


class FunctionEntry(_Contract):
    """A function the worker must find in the submission, and its parameters' names."""

    name: str
    parameters: list[str]


class NotebookCell(_Contract):
    number: int
    source: str


class WorkerEntry(_Contract):
    """One worker the judge starts: the candidate's, or the reference's."""

    workspace: Path
    entry: str | None  # a .py file inside the workspace; None for notebook cells
    cells: list[NotebookCell] | None
    functions: list[FunctionEntry]
    limits: Limits
    assets: Path | None = None
    adapter: str | None = None


class ChallengeEntry(_Contract):
    id: str
    version: str


class JudgeRlimits(_Contract):
    """Soft limits the judge sets on itself where no cgroup could be made for it."""

    RLIMIT_DATA: int
    RLIMIT_CPU: int


class JudgeSpec(_Contract):
    """Everything the judge needs for one grading; written by ``grader.grading``, read by ``grader.judge.runner``."""

    version: int = JUDGE_SPEC_VERSION
    tests_dir: Path
    selection: list[str] | None  # the checks' pytest nodes (hidden runs); None: every check in tests_dir
    timeouts_s: dict[str, float]
    check_names: dict[str, str]
    call_timeout_s: float | None
    timed_tests: list[str]
    default_timeout_s: float
    run_timeout_s: float
    records_path: Path
    challenge: ChallengeEntry
    calibration_dir: Path
    calibration_writable: bool  # only a run grading the reference itself may store figures
    hidden: bool
    sandbox: SandboxConfig
    candidate: WorkerEntry
    reference: WorkerEntry | None
    # Start the reference's worker with the candidate's, before the judge's imports; False when no check
    # can take it (``grader.reference_use``): it then starts only if a check calls it after all.
    start_reference_early: bool = True
    max_reply_bytes: dict[str, int]
    default_max_reply_bytes: int
    held_back_tests: list[str]
    judge_rlimits: JudgeRlimits | None = None
    # A standby (``grader.standby``): start the workers, the candidate's without its entry and cells,
    # then wait for the grader's word on stdin and read the grading's own spec (``grading_spec_path``).
    standby: bool = False


GO = b"g"  # the grader to a standby judge, on its stdin: the grading's own spec is in place


def grading_spec_path(standby_spec_path: Path) -> Path:
    """Where the grader puts the spec of the grading that takes a standby, beside the standby's own.

    A file of its own: the standby's judge may still be reading its spec when the grading comes.
    """
    return standby_spec_path.with_name("grading-spec.json")


def same_workers(standby: JudgeSpec, spec: JudgeSpec) -> bool:
    """Whether the grading ``spec`` needs exactly the workers the standby started (its candidate's entry aside)."""
    unknown = {"entry": None, "cells": None}
    return (spec.sandbox == standby.sandbox
            and spec.candidate.model_copy(update=unknown) == standby.candidate
            and spec.reference == standby.reference
            and spec.start_reference_early == standby.start_reference_early
            and spec.judge_rlimits == standby.judge_rlimits)


def write_judge_spec(spec: JudgeSpec, path: Path) -> None:
    path.write_text(spec.model_dump_json(), encoding="utf-8")


def read_judge_spec(path: Path) -> JudgeSpec:
    """The spec at ``path``; ``ContractError`` saying what is wrong when it is not one this judge reads."""
    try:
        data = json.loads(path.read_bytes())
        _refuse_other_versions(data, JUDGE_SPEC_VERSION, "a judge spec")
        return JudgeSpec.model_validate_json(path.read_bytes())
    except (ValueError, OSError) as err:  # ValidationError and JSONDecodeError are ValueErrors
        problem = _first_problem(err) if isinstance(err, ValidationError) else str(err)
        raise ContractError(f"the judge cannot read its spec {path}: {problem}") from None


# ---------------------------------------------------------------------- the judge's records


class _Record(_Contract):
    version: int = RECORDS_VERSION


class CheckRecord(_Record):
    """How one check ended: the only source of its verdict."""

    kind: Literal["check"] = "check"
    nodeid: str
    passed: bool
    outcome: str = "failed"
    message: str = ""
    detail: str = ""
    infrastructure: bool = False  # our failure, not the candidate's: the grading is not gradable
    duration_s: float = 0.0
    metrics: dict[str, JsonValue] = Field(default_factory=dict)
    charts: list[dict[str, JsonValue]] = Field(default_factory=list)
    saw_held_back_data: bool = False  # the worker had been handed held-back data by then


class StartedRecord(_Record):
    """A check is starting: if the judge dies, the grader knows which check was running."""

    kind: Literal["started"] = "started"
    nodeid: str


class ProgressRecord(_Record):
    """For the terminal only: a check starting (``index`` of ``total``), or a running check's note (``text``)."""

    kind: Literal["progress"] = "progress"
    check: str
    index: int | None = None
    total: int | None = None
    estimate_s: float | None = None
    text: str | None = None


class CalibrationUse(_Contract):
    """One calibrated figure a run used: measured (with what the candidate's worker did meanwhile) or cached."""

    value: float
    source: str
    candidate_during_measurement: str | None = None  # only a measured figure has one

    @model_serializer(mode="wrap")
    def _without_an_absent_candidate(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        if data.get("candidate_during_measurement") is None:
            data.pop("candidate_during_measurement", None)
        return data


class CalibrationRecord(_Contract):
    machine: dict[str, JsonValue]
    values: dict[str, CalibrationUse]
    stored: dict[str, float]


class SessionRecord(_Record):
    """What the judge learnt over the whole run, written when pytest ends."""

    kind: Literal["session"] = "session"
    candidate_claims: dict[str, JsonValue]  # the candidate's worker about itself: a claim, never a fact
    worker_starts: int
    reference_worker_starts: int = 0
    failures: dict[str, int]
    # as the reference's worker (ours) saw it; harness.sandbox.CPU_DEVICE when no GPU was leased and that
    # worker never started
    device: dict[str, str | int]
    calibration: CalibrationRecord | None


class JudgeUsageRecord(_Record):
    """The judge's own peak memory and CPU time: its last record."""

    kind: Literal["judge"] = "judge"
    peak_memory_mb: float
    cpu_s: float


JudgeRecord = Annotated[
    CheckRecord | StartedRecord | ProgressRecord | SessionRecord | JudgeUsageRecord, Field(discriminator="kind")
]
_RECORD = TypeAdapter[JudgeRecord](JudgeRecord)


def parse_record(data: object) -> JudgeRecord:
    """One decoded JSON line as a record; ``ContractError`` saying what is wrong when it is not one."""
    try:
        _refuse_other_versions(data, RECORDS_VERSION, "a judge record")
        return _RECORD.validate_python(data)
    except ValueError as err:  # ValidationError is one
        problem = _first_problem(err) if isinstance(err, ValidationError) else str(err)
        raise ContractError(problem) from None


def record_line(record: JudgeRecord) -> str:
    """The line the judge writes for ``record`` (plain ``json``: a metric may be NaN)."""
    return json.dumps(record.model_dump(mode="python")) + "\n"


def _first_problem(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the document"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}{more}"
