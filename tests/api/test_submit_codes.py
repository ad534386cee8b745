"""``cvgrade submit``'s exit codes follow ``cvgrade grade``'s: a pure function, a table."""

from __future__ import annotations

from typing import Any

import pytest

from api.submit import exit_code


@pytest.mark.parametrize("view, code", [
    ({"state": "done", "charged": True, "feedback": {"passed": True}}, 0),
    ({"state": "done", "charged": True, "feedback": {"passed": False}}, 1),
    ({"state": "done", "charged": True, "feedback": {"passed": None}}, 0),  # the team keeps the verdict
    ({"state": "done", "charged": True, "feedback": {}}, 0),
    ({"state": "failed", "charged": True, "feedback": None}, 2),  # the grader refused the file
    ({"state": "failed", "charged": False, "feedback": None}, 3),  # the service died grading it, too often
    ({"state": "not_gradable", "charged": False, "feedback": {"status": "error"}}, 3),
])
def test_exit_codes(view: dict[str, Any], code: int) -> None:
    assert exit_code(view) == code
