"""What the service writes to its log beyond the framework's: one structured line per grading event, and
never a candidate's token.

Grading events are ``logfmt`` lines on the ``cvgrade.api.gradings`` logger,
easy to read and to parse::

    grading started job=12 submission=34 challenge=iou worker=host:77:ab12/worker-1 backend=auto
    grading ended job=12 submission=34 challenge=iou state=done score=90 duration_s=41.2 backend=docker chosen_by=auto
    grading failed job=12 submission=34 challenge=iou state=not_gradable duration_s=0.3 backend=docker error="..."

The candidate's link carries their invitation token (``/c/cvgi_...``) on the
first visit; ``TokenMask`` rewrites it as ``cvgi_***`` in uvicorn's access log
(and in any record of ours that holds one), so the log never keeps a token.
"""

from __future__ import annotations

import logging
import re
from typing import Any

gradings = logging.getLogger("cvgrade.api.gradings")
_TOKEN = re.compile(r"(cvg[iks])_[A-Za-z0-9_-]{8,}")


def mask_tokens(text: str) -> str:
    """``text`` with every token of ours (invitation, API key, session) cut to its prefix."""
    return _TOKEN.sub(r"\1_***", text)


class TokenMask(logging.Filter):
    """A logging filter that masks tokens in a record's message and arguments (it never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask_tokens(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: mask_tokens(value) if isinstance(value, str) else value
                           for key, value in record.args.items()}
        return True


def install_token_mask() -> None:
    """Mask tokens in uvicorn's access and error logs and in the service's own error log (idempotent; a
    logger's filters see only the records logged on it, not on its children)."""
    for name in ("uvicorn.access", "uvicorn.error", "cvgrade.api"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, TokenMask) for existing in logger.filters):
            logger.addFilter(TokenMask())


def logfmt(**fields: Any) -> str:
    """``key=value`` pairs, quoting values with spaces, quotes or ``=`` (None values are left out)."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
        if not text or any(character in text for character in ' "=\n'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def grading_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One line on the gradings logger: ``grading <event> key=value ...``."""
    gradings.log(level, "grading %s %s", event, logfmt(**fields))
