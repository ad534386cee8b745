"""Passing validations, remembered by the content of everything that decides them.

``cvgrade validate --reuse-passed`` (and the shipped-challenge test, as CI runs it)
looks a challenge's validation up by a key: the SHA-256 of

- every file of the challenge's folder (hidden checks, ``hidden/thresholds.toml``, held-back
  data, solutions, ``challenge.toml``); bytecode (``__pycache__``, ``*.pyc``) is left out;
- every file that ships in the ``harness`` package (``harness/worker`` included): the sandboxes
  and the worker; and every file of the ``grader`` package but the modules no grading of the
  challenge can import (its reports, pages and review tools; ``grader.grading_modules`` reads
  which from the code): the judge, the scoring, the calibration;
- every installed distribution and its version (torch, torchvision, numpy, pytest, pycocotools
  and the rest: the judge and the local sandbox's worker import them), and the Python version;
- the sandbox as it resolves here: backend, isolation, seccomp, how limits are enforced, the
  device, the core plan, and for Docker the engine's version and the runtime image's id;
- the machine: architecture, CPU model, usable cores, GPUs.

How many gradings run at once (``--jobs``) is not in it: it changes how long a validation
takes, never its verdict. Nor are this machine's calibration figures (``$CVGRADE_CACHE/calibration``):
every grading of the reference measures and stores them afresh (its slowest calls, its checks'
durations), a validation's included, so they would change the key on every run; they are
measurements of this machine by this code, and both are in the key.

A hit is a record of a real, passing validation of exactly these inputs: its report (every
line) is given back with its key and date. A miss validates for real; only a passing
validation is stored, so a failing one always runs again. Records are JSON files in
``$CVGRADE_CACHE/validations/<challenge>/<key>.json`` (never pickle); one that does not
read back is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import grader
import harness
from grader.calibration import cpu_model
from grader.challenge import Challenge
from grader.environment import detect_gpus
from grader.errors import InfrastructureError
from grader.grading import GradeOptions
from grader.grading_modules import module_files, modules_a_grading_can_run
from grader.progress import ProgressCallback
from grader.validate import Follow, ValidationReport, validate_challenge
from harness.backends import make_sandbox
from harness.cache import cache_dir
from harness.sandbox import SandboxUnavailable

RECORD_FORMAT = 1
_DERIVED_FOLDERS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})


@dataclass(frozen=True)
class Validation:
    """A validation's report, and whether it was reused from an earlier run of the same inputs."""

    report: ValidationReport
    key: str
    reused: bool
    validated_at: datetime  # when the report was really produced (earlier than now on a reuse)
    stored: bool = False  # a fresh, passing report that was written to the cache


@contextlib.contextmanager
def _unfollowed(label: str) -> Iterator[ProgressCallback | None]:
    yield None


def validations_dir() -> Path:
    """``$CVGRADE_CACHE/validations``."""
    return cache_dir() / "validations"


def _tree_digest(root: Path, leave_out: frozenset[Path] = frozenset()) -> str:
    """SHA-256 over every file under ``root`` but ``leave_out``: its path relative to ``root`` and its content."""
    digest = hashlib.sha256()
    if not root.is_dir():
        return digest.hexdigest()
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if name not in _DERIVED_FOLDERS)
        files += [Path(folder) / name for name in names
                  if not name.endswith((".pyc", ".pyo")) and Path(folder) / name not in leave_out]
    for path in sorted(files, key=lambda path: path.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _grader_digest(challenge: Challenge) -> str:
    """The digest of ``grader/`` without the modules no grading of ``challenge`` can run (its reports,
    pages and review tools: ``grader.grading_modules``); every other file of it counts, templates included."""
    root = Path(grader.__file__).resolve().parent
    modules = module_files(root)
    can_run = modules_a_grading_can_run(modules, challenge.root)
    return _tree_digest(root, frozenset(path for name, path in modules.items() if name not in can_run))


def _distributions() -> list[str]:
    return sorted({f"{dist.metadata['Name']}=={dist.version}" for dist in metadata.distributions()
                   if dist.metadata["Name"]})


def _sandbox(challenge: Challenge, options: GradeOptions) -> dict[str, Any]:
    """The sandbox a grading of this challenge gets here, without what changes from one grading to the next."""
    config = options.sandbox_config(challenge.spec.limits.gpu, challenge.spec.limits.cpu_threads)
    try:
        described = make_sandbox(config).describe()
    except SandboxUnavailable as err:
        raise InfrastructureError(str(err)) from err
    return {key: value for key, value in described.items() if key not in ("gpu_index", "note")}


def validation_inputs(challenge: Challenge, options: GradeOptions) -> dict[str, Any]:
    """Everything a validation's verdict depends on, as JSON-ready values (the key is their hash)."""
    return {
        "format": RECORD_FORMAT,
        "challenge": {"id": challenge.id, "version": challenge.version, "files": _tree_digest(challenge.root)},
        "grader": _grader_digest(challenge),
        "harness": _tree_digest(Path(harness.__file__).resolve().parent),
        "python": f"{platform.python_implementation()} {sys.version}",
        "torch": _version("torch"),
        "torchvision": _version("torchvision"),
        "distributions": _distributions(),
        "sandbox": _sandbox(challenge, options),
        "machine": {"arch": platform.machine(), "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
                    "gpus": [gpu["name"] for gpu in detect_gpus()]},
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def validation_key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _record_path(root: Path, challenge_id: str, key: str) -> Path:
    return root / challenge_id / f"{key}.json"


def read_passed(challenge_id: str, key: str, root: Path | None = None) -> Validation | None:
    """The stored passing validation of ``key``; None when there is none or it does not read back."""
    path = _record_path(root or validations_dir(), challenge_id, key)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        report = record["report"]
        stored = ValidationReport(challenge=str(report["challenge"]), problems=[str(p) for p in report["problems"]],
                                  lines=[str(line) for line in report["lines"]])
        validated_at = datetime.fromisoformat(record["validated_at"])
        valid = record["format"] == RECORD_FORMAT and record["key"] == key and stored.ok
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Validation(stored, key, reused=True, validated_at=validated_at) if valid else None


def store_passed(validation: Validation, inputs: dict[str, Any], root: Path | None = None) -> Path:
    """Write a passing validation's record (atomically: a reader sees the whole record or none)."""
    if not validation.report.ok:
        raise ValueError("only a passing validation is stored: a failing one must always run again")
    path = _record_path(root or validations_dir(), validation.report.challenge, validation.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": RECORD_FORMAT, "key": validation.key, "validated_at": validation.validated_at.isoformat(),
        "report": {"challenge": validation.report.challenge, "problems": validation.report.problems,
                   "lines": validation.report.lines},
        "inputs": inputs,
    }
    with _replacing(path) as partial:
        partial.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return path


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def validate_reusing_passed(
    challenge: Challenge,
    options: GradeOptions | None = None,
    progress: Callable[[str], None] = lambda line: None,
    follow: Follow = _unfollowed,
    jobs: int = 1,
    root: Path | None = None,
) -> Validation:
    """The stored passing validation of these exact inputs, else a real one (stored when it passes).

    On a hit ``progress`` gets a line saying so (date and key), then the stored report's lines.
    A passing run is stored only when its inputs are the same after it as before (no file of the
    challenge or of the grader was edited while it ran).
    """
    options = options or GradeOptions()
    before = validation_inputs(challenge, options)
    key = validation_key(before)
    found = read_passed(challenge.id, key, root)
    if found is not None:
        progress(f"reused the passing validation of {found.validated_at:%Y-%m-%d %H:%M} UTC (key {key[:16]}): "
                 "nothing it depends on has changed")
        for line in found.report.lines:
            progress(line)
        return found
    validated_at = datetime.now(UTC)
    report = validate_challenge(challenge, options, progress=progress, follow=follow, jobs=jobs)
    if not report.ok:
        return Validation(report, key, reused=False, validated_at=validated_at)
    if validation_inputs(challenge, options) != before:
        progress("not remembered: the challenge, the grader or the environment changed while it was validated")
        return Validation(report, key, reused=False, validated_at=validated_at)
    validation = Validation(report, key, reused=False, validated_at=validated_at, stored=True)
    store_passed(validation, before, root)
    progress(f"remembered as passed (key {validation.key[:16]})")
    return validation
