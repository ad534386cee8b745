"""Reading the judge's records: the only source of verdicts.

Kept apart from the plugin so that the grader can read records without
importing pytest or torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Read the records a judge wrote (trusted JSON lines; a torn last line is ignored)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record
