"""Candidate practice: copy a challenge's public parts to a folder, and find the solution in it.

``start`` copies the statement, the starter, the public checks and the assets
(the model, weights and data every worker sees: nothing secret by definition),
and never anything hidden: the hidden checks, the reference and the known-bad
solutions stay in the challenge folder.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from grader.challenge import Challenge
from grader.errors import BadSubmission

MARKER = ".cvgrade.toml"


def start_practice(challenge: Challenge, target: Path, *, force: bool = False) -> list[Path]:
    """Copy the public parts of ``challenge`` into ``target``; return what was written."""
    if target.exists() and any(target.iterdir()) and not force:
        raise BadSubmission(f"{target} is not empty; choose a new folder or pass --force")
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    shutil.copyfile(challenge.statement, target / "README.md")
    written.append(target / "README.md")
    for starter in sorted(challenge.starter_dir.iterdir()):
        if starter.is_file():
            shutil.copyfile(starter, target / starter.name)
            written.append(target / starter.name)
    if challenge.public_dir.is_dir():
        public = target / "public_tests"
        public.mkdir(exist_ok=True)
        for test in sorted(challenge.public_dir.glob("*.py")):
            shutil.copyfile(test, public / test.name)
            written.append(public / test.name)
    assets = challenge.assets_dir
    if assets is not None and assets.is_dir():
        # Candidates load these by path (``assets/model.py``) to practise on their own machine.
        shutil.copytree(assets, target / "assets", dirs_exist_ok=force,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        written += sorted(path for path in (target / "assets").rglob("*") if path.is_file())
    marker = target / MARKER
    marker.write_text(f'challenge = "{challenge.id}"\nversion = "{challenge.version}"\n')
    written.append(marker)
    return written


def practice_challenge_id(folder: Path) -> str | None:
    """The challenge id recorded by ``start`` in ``folder``, if any."""
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        value = tomllib.loads(marker.read_text(encoding="utf-8")).get("challenge")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def practice_submission(folder: Path) -> Path:
    """The file to test in a practice folder: solution.py, else solution.ipynb."""
    for name in ("solution.py", "solution.ipynb"):
        if (folder / name).is_file():
            return folder / name
    raise BadSubmission(f"{folder} has no solution.py or solution.ipynb; run `cvgrade start` first")
