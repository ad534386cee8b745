"""Shared fixtures. Under CI=true a missing sandbox tool fails the run instead of skipping."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHALLENGES = REPO / "challenges"


def require_bwrap() -> None:
    if shutil.which("bwrap") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("bubblewrap is required under CI=true (apt-get install bubblewrap)")
        pytest.skip("bubblewrap is not installed")


@pytest.fixture
def bwrap() -> None:
    require_bwrap()


@pytest.fixture(params=["bwrap", "process"])
def isolation(request: pytest.FixtureRequest) -> str:
    """Both local isolation levels; the bwrap one needs bubblewrap."""
    if request.param == "bwrap":
        require_bwrap()
    return str(request.param)
