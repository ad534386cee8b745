"""Inviting many candidates at once, from a CSV file (a spreadsheet's "Save as CSV").

One row per candidate, with a header row. Columns (any order, case and spaces
ignored): ``candidate`` (or ``email``), and optionally ``challenge_id``,
``deadline`` (ISO 8601 with a time zone), ``max_attempts``, ``expires_at``,
``time_limit_minutes`` (a time box).
A column that is missing or a cell that is empty takes the default given with
the request. Every row is checked before anything is stored: one bad row
refuses the whole file with each problem's line number, so a file is never
half imported.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import ValidationError

from api.errors import ApiError
from api.schemas import InvitationCreate

MAX_ROWS = 1000
COLUMNS = ("candidate", "challenge_id", "deadline", "max_attempts", "expires_at", "time_limit_minutes")
_ALIASES = {"email": "candidate", "e-mail": "candidate", "challenge": "challenge_id", "attempts": "max_attempts"}


class InvalidCsv(ApiError):
    status = 422


def parse_invitations(text: str, defaults: dict[str, Any]) -> list[InvitationCreate]:
    """The invitations a CSV text asks for, each checked as ``POST /invitations`` checks one."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))  # Excel writes a byte-order mark
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidCsv("the CSV is empty; give a header row (candidate,challenge_id,deadline,max_attempts) "
                         "and one row per candidate")
    header = [_ALIASES.get(cell.strip().lower(), cell.strip().lower()) for cell in rows[0]]
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise InvalidCsv(f"the CSV has columns cvgrade does not know ({', '.join(repr(u[:40]) for u in unknown[:5])});"
                         f" the columns are {', '.join(COLUMNS)} (candidate is required)")
    if "candidate" not in header:
        raise InvalidCsv("the CSV's header row needs a 'candidate' (or 'email') column")
    body = rows[1:]
    if not body:
        raise InvalidCsv("the CSV has a header row but no candidates")
    if len(body) > MAX_ROWS:
        raise InvalidCsv(f"the CSV has {len(body)} candidates; at most {MAX_ROWS} at once, split the file")
    invitations, problems = [], []
    for line, row in enumerate(body, start=2):
        if len(row) > len(header):
            problems.append(f"line {line}: {len(row)} cells for {len(header)} columns")
            continue
        fields = {**{k: v for k, v in defaults.items() if v is not None},
                  **{name: cell.strip() for name, cell in zip(header, row, strict=False) if cell.strip()}}
        for number in ("max_attempts", "time_limit_minutes"):
            if number in fields and isinstance(fields[number], str):
                fields[number] = _integer(fields[number])
        try:
            invitations.append(InvitationCreate.model_validate(fields))
        except ValidationError as err:
            problems.append(f"line {line}: " + "; ".join(_problem(error) for error in err.errors()[:3]))
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise InvalidCsv("nothing was imported: " + "; ".join(problems[:10]) + more)
    return invitations


def _integer(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text  # refused by the model with its own message


def _problem(error: Any) -> str:
    field = ".".join(str(part) for part in error.get("loc", ())) or "row"
    if error.get("type") == "missing":
        return f"{field} is missing (give the column, or a default)"
    message = str(error.get("msg", "is not valid"))
    return f"{field}: {message[0].lower()}{message[1:]}"
