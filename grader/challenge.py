"""Challenges: loading ``challenges/<id>/challenge.toml`` and checking it is well formed.

A challenge is data loaded by path. ``load_challenge`` validates the TOML with
pydantic and turns every problem into one ``ChallengeError`` line that names
the file, the field and what is wrong.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grader.errors import ChallengeError

Visibility = Literal["visible", "hidden", "after_due_date", "after_published"]
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChallengeInfo(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    title: Annotated[str, Field(min_length=1)]
    level: Literal["junior", "mid", "senior"]
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    pass_mark: Annotated[float, Field(ge=0.0, le=1.0)]
    summary: str = ""


class FunctionSpec(_Strict):
    name: Annotated[str, Field(pattern=_IDENTIFIER)]
    parameters: list[Annotated[str, Field(pattern=_IDENTIFIER)]]
    signature: str = ""


class ChallengeLimits(_Strict):
    run_timeout_s: Annotated[float, Field(gt=0, le=24 * 3600)] = 600
    check_timeout_s: Annotated[float, Field(gt=0)] = 60
    setup_timeout_s: Annotated[float, Field(gt=0)] = 60
    # A call's limit when the reference's own time for the function is not calibrated on this
    # machine (see grader.judge.proxy); None: only the check's limit.
    call_timeout_s: Annotated[float, Field(gt=0)] | None = None
    memory_mb: Annotated[int, Field(ge=64)] = 2048
    max_processes: Annotated[int, Field(ge=4)] = 64
    max_output_bytes: Annotated[int, Field(ge=1024)] = 1_000_000
    scratch_mb: Annotated[int, Field(ge=1)] = 256
    cpu_threads: Annotated[int, Field(ge=1, le=64)] = 1
    gpu: Literal["off", "optional", "required"] = "off"
    max_reply_mb: Annotated[float, Field(gt=0, le=1024)] = 16  # the most one reply of a worker may hold
    judge_memory_mb: Annotated[int, Field(ge=512)] = 2048  # the judge's own limit (pytest, checks, replies)


class ImageSpec(_Strict):
    """Extra Python packages the runtime image needs; installed when the image is built, never when grading."""

    packages: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*([<>=!~]=?[A-Za-z0-9.*+!-]+)?$")]] = []


class AssetsSpec(_Strict):
    """Non-secret files mounted read-only in every worker, and an adapter module that runs beside the submission."""

    folder: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")] = "assets"
    adapter: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.py$")] | None = None


class CheckSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    test: Annotated[str, Field(pattern=r"^test_[A-Za-z0-9_]*\.py::[A-Za-z_][A-Za-z0-9_\[\]-]*$")]
    points: Annotated[float, Field(gt=0)]
    gate: bool = False
    timed: bool = False  # holds the machine-wide timing lock: never overlaps another timed check
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    visibility: Visibility = "visible"
    description: str = ""
    max_reply_mb: Annotated[float, Field(gt=0, le=1024)] | None = None  # None: the challenge's [limits] figure
    # The check hands the solution held-back data (test images): from then on the candidate's
    # feedback shows the property that failed, never text the solution produced.
    held_back_data: bool = False


class KnownBad(_Strict):
    """A wrong solution: it must fail ``must_fail`` and still pass ``must_pass`` (partial credit)."""

    file: str
    must_fail: Annotated[list[str], Field(min_length=1)]
    must_pass: list[str] = []
    why: str = ""


class KnownGood(_Strict):
    """Another sound solution, written differently from the reference: it must pass."""

    file: str
    why: str = ""


class ChallengeFile(_Strict):
    challenge: ChallengeInfo
    functions: Annotated[list[FunctionSpec], Field(min_length=1)]
    limits: ChallengeLimits = ChallengeLimits()
    image: ImageSpec = ImageSpec()
    assets: AssetsSpec | None = None
    checks: Annotated[list[CheckSpec], Field(min_length=1)]
    known_bad: list[KnownBad] = []
    known_good: list[KnownGood] = []

    @field_validator("checks")
    @classmethod
    def _unique_checks(cls, checks: list[CheckSpec]) -> list[CheckSpec]:
        for attribute in ("name", "test"):
            seen: set[str] = set()
            for check in checks:
                value = getattr(check, attribute)
                if value in seen:
                    raise ValueError(f"two checks have the {attribute} {value!r}")
                seen.add(value)
        return checks

    @model_validator(mode="after")
    def _known_bad_names_checks(self) -> ChallengeFile:
        names = {check.name for check in self.checks}
        for index, entry in enumerate(self.known_bad):
            for field_name, listed in (("must_fail", entry.must_fail), ("must_pass", entry.must_pass)):
                for name in listed:
                    if name not in names:
                        raise ValueError(f"known_bad[{index}].{field_name} names no check: {name!r}")
            both = sorted(set(entry.must_fail) & set(entry.must_pass))
            if both:
                raise ValueError(f"known_bad[{index}]: {both} cannot be both in must_fail and in must_pass")
        return self


class Challenge:
    """A loaded, validated challenge and the paths of its parts."""

    def __init__(self, root: Path, spec: ChallengeFile) -> None:
        self.root = root
        self.spec = spec

    @property
    def id(self) -> str:
        return self.spec.challenge.id

    @property
    def version(self) -> str:
        return self.spec.challenge.version

    @property
    def statement(self) -> Path:
        return self.root / "README.md"

    @property
    def starter_dir(self) -> Path:
        return self.root / "starter"

    @property
    def public_dir(self) -> Path:
        return self.root / "public"

    @property
    def hidden_dir(self) -> Path:
        return self.root / "hidden"

    @property
    def reference_dir(self) -> Path:
        return self.root / "reference"

    @property
    def assets_dir(self) -> Path | None:
        """The folder every worker sees read-only (never hidden checks, references or held-back data)."""
        return self.root / self.spec.assets.folder if self.spec.assets is not None else None

    @property
    def max_score(self) -> float:
        return sum(check.points for check in self.spec.checks)

    def check_timeout_s(self, check: CheckSpec) -> float:
        return check.timeout_s if check.timeout_s is not None else self.spec.limits.check_timeout_s

    def max_reply_bytes(self, check: CheckSpec | None = None) -> int:
        """The most bytes one reply of a worker may hold during ``check`` (the challenge's figure without one)."""
        megabytes = check.max_reply_mb if check is not None and check.max_reply_mb is not None else None
        return int((megabytes or self.spec.limits.max_reply_mb) * (1 << 20))


def default_challenges_dir() -> Path:
    """``CVGRADE_CHALLENGES_DIR`` if set, else the ``challenges/`` folder beside the packages."""
    configured = os.environ.get("CVGRADE_CHALLENGES_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "challenges"


def load_challenge(challenge: str | Path, challenges_dir: Path | None = None) -> Challenge:
    """Load a challenge by id (from ``challenges_dir``) or by the path of its folder."""
    root = Path(challenge)
    if not (root / "challenge.toml").is_file():
        base = challenges_dir or default_challenges_dir()
        root = base / str(challenge)
        if not (root / "challenge.toml").is_file():
            known = ", ".join(list_challenge_ids(base)) or "none"
            raise ChallengeError(f"no challenge {str(challenge)!r} in {base} (known: {known})")
    root = root.resolve()  # the judge runs in another folder: a relative path would point elsewhere there
    path = root / "challenge.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ChallengeError(f"{path}: not valid TOML: {err}") from None
    try:
        spec = ChallengeFile.model_validate(data)
    except ValidationError as err:
        raise ChallengeError("\n".join(_describe_errors(path, err))) from None
    if spec.challenge.id != root.name:
        raise ChallengeError(
            f"{path}: challenge.id: is {spec.challenge.id!r} but the folder is named {root.name!r}"
        )
    loaded = Challenge(root, spec)
    _check_files(path, loaded)
    return loaded


def _describe_errors(path: Path, err: ValidationError) -> list[str]:
    lines = []
    for error in err.errors():
        field = ""
        for part in error["loc"]:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (check its spelling in challenges/README.md)"
        lines.append(f"{path}: {field or '(top level)'}: {message}")
    return lines


def _check_files(path: Path, challenge: Challenge) -> None:
    problems = []
    required = [
        challenge.statement,
        challenge.starter_dir / "solution.py",
        challenge.reference_dir / "solution.py",
    ]
    problems += [f"{path}: missing {p.relative_to(challenge.root)}" for p in required if not p.is_file()]
    for check in challenge.spec.checks:
        test_file = challenge.hidden_dir / check.test.split("::")[0]
        if not test_file.is_file():
            problems.append(f"{path}: checks '{check.name}'.test: no file hidden/{test_file.name}")
    problems += _asset_problems(path, challenge)
    for kind, entries in (("known_bad", challenge.spec.known_bad), ("known_good", challenge.spec.known_good)):
        for entry in entries:
            if not (challenge.root / entry.file).is_file():
                problems.append(f"{path}: {kind} '{entry.file}'.file: no such file")
    if problems:
        raise ChallengeError("\n".join(problems))


_NEVER_IN_ASSETS = ("hidden", "reference", "known_bad", "known_good")


def _asset_problems(path: Path, challenge: Challenge) -> list[str]:
    """The assets folder must exist, hold the adapter, and share nothing with the secret parts."""
    assets = challenge.assets_dir
    if assets is None or challenge.spec.assets is None:
        return []
    if not assets.is_dir():
        return [f"{path}: assets.folder: no folder {assets.name}/ in the challenge"]
    problems = []
    if assets.name in _NEVER_IN_ASSETS:
        problems.append(f"{path}: assets.folder: {assets.name}/ is secret and must never reach a worker")
    for item in assets.rglob("*"):
        if item.is_symlink():
            problems.append(f"{path}: assets.folder: {item.relative_to(challenge.root)} is a symbolic link; "
                            "copy the file instead (a link could expose files outside the assets)")
    adapter = challenge.spec.assets.adapter
    if adapter is not None and not (assets / adapter).is_file():
        problems.append(f"{path}: assets.adapter: no file {assets.name}/{adapter}")
    return problems


def list_challenge_ids(challenges_dir: Path | None = None) -> list[str]:
    base = challenges_dir or default_challenges_dir()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "challenge.toml").is_file())
