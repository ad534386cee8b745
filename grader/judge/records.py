"""Reading the judge's records: the only source of verdicts.

Kept apart from the plugin so that the grader can read records without
importing pytest or torch. Each line is one ``grader.judge.contracts.JudgeRecord``;
a line that is not one (another version, another shape) is a problem of ours,
which the grader reports as "not gradable", never as a verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from grader.judge.contracts import (
    CheckRecord,
    ContractError,
    JudgeRecord,
    JudgeUsageRecord,
    SessionRecord,
    StartedRecord,
    parse_record,
)


@dataclass
class JudgeRecords:
    """What one judge run recorded, in order; ``problem`` says why a line could not be read, if one could not."""

    records: list[JudgeRecord] = field(default_factory=list)
    problem: str | None = None

    def add(self, record: JudgeRecord) -> None:
        self.records.append(record)

    def checks(self) -> dict[str, CheckRecord]:
        """Each check's record, by its pytest node."""
        return {record.nodeid: record for record in self.records if isinstance(record, CheckRecord)}

    def started(self) -> list[str]:
        """The nodes of the checks the judge started, in order."""
        return [record.nodeid for record in self.records if isinstance(record, StartedRecord)]

    def session(self) -> SessionRecord | None:
        return next((record for record in self.records if isinstance(record, SessionRecord)), None)

    def judge_usage(self) -> JudgeUsageRecord | None:
        return next((record for record in self.records if isinstance(record, JudgeUsageRecord)), None)


def read_records(path: Path) -> JudgeRecords:
    """Read the records a judge wrote (JSON lines; a torn last line, the judge killed mid-write, is ignored)."""
    read = JudgeRecords()
    if not path.exists():
        return read
    lines = path.read_bytes().split(b"\n")
    lines.pop()  # after the last newline: nothing, or a line the judge was killed writing
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            read.add(parse_record(json.loads(line)))
        except (ContractError, UnicodeDecodeError, json.JSONDecodeError) as err:
            if read.problem is None:
                read.problem = f"the judge wrote a record this grader cannot read (line {number} of {path.name}): {err}"
    return read
