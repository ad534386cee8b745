"""Fixtures of the harness tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A world-readable workspace holding ``hostile_solution.py`` as ``solution.py``."""
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "solution.py").write_text((Path(__file__).parent / "hostile_solution.py").read_text())
    tmp_path.chmod(0o755)
    folder.chmod(0o755)
    (folder / "solution.py").chmod(0o644)
    return folder
