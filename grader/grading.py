"""Grading one submission: workspace, judge, records, scores, result.

    submission --workspace--> sandboxed worker <--channel--> judge (pytest + hidden checks)
                                                               |
                                                      records (JSON lines)
                                                               |
                                                   scoring --> GradeResult

The judge runs as a separate trusted process so that a crash in it, or in a
hidden check, cannot take the grader down, and so that its module state is
fresh for every submission.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grader.calibration import calibration_dir
from grader.challenge import Challenge, CheckSpec
from grader.environment import describe_environment
from grader.errors import InfrastructureError
from grader.judge.records import iter_records
from grader.results import GradeResult, build_result
from grader.scoring import score_checks
from grader.workspace import Workspace, prepare_workspace
from harness.backends import make_sandbox
from harness.sandbox import Limits, SandboxUnavailable

# Packages the hidden checks use as oracles (pycocotools for detection_map): installed for the judge,
# never in the runtime image, and hidden from the local sandbox's view, so no submission imports them.
JUDGE_ONLY_DISTRIBUTIONS = ("pycocotools",)
JUDGE_GRACE_S = 60.0  # on top of the challenge's run limit: judge start-up and clean-up
JUDGE_LOG_TAIL_CHARS = 3000
_ACTIVE_JUDGES: set[subprocess.Popen[bytes]] = set()
_ACTIVE_LOCK = threading.Lock()


def stop_all_judges() -> None:
    """Stop every judge this process started (Ctrl-C while several gradings run at once)."""
    with _ACTIVE_LOCK:
        judges = list(_ACTIVE_JUDGES)
    for judge in judges:
        _stop(judge)


@dataclass(frozen=True)
class GradeOptions:
    """How to grade: which sandbox backend (``auto``: Docker where it is ready, else local)."""

    backend: Literal["auto", "docker", "local"] = "auto"
    isolation: Literal["auto", "bwrap", "process"] = "auto"
    image: str | None = None

    def sandbox_config(self, gpu: str = "off") -> dict[str, Any]:
        return {"backend": self.backend, "isolation": self.isolation, "image": self.image, "gpu": gpu,
                "judge_only": list(JUDGE_ONLY_DISTRIBUTIONS)}


def grade_submission(
    submission: Path, challenge: Challenge, options: GradeOptions | None = None
) -> GradeResult:
    """Grade ``submission`` against the challenge's hidden checks."""
    return _grade(submission, challenge, options or GradeOptions(), hidden=True)


def run_public_checks(
    submission: Path, challenge: Challenge, options: GradeOptions | None = None
) -> GradeResult:
    """Run the challenge's public checks on ``submission`` (practice: no points, no hidden checks)."""
    return _grade(submission, challenge, options or GradeOptions(), hidden=False)


def _grade(submission: Path, challenge: Challenge, options: GradeOptions, *, hidden: bool) -> GradeResult:
    started = time.monotonic()
    sandbox_config = options.sandbox_config(challenge.spec.limits.gpu)
    sandbox_info = _describe_sandbox(sandbox_config)
    workspace = prepare_workspace(submission)
    reference: Workspace | None = None
    judge_dir = Path(tempfile.mkdtemp(prefix="cvgrade-judge-"))
    try:
        if hidden:
            reference = prepare_workspace(challenge.reference_dir / "solution.py")
        records_path = judge_dir / "records.jsonl"
        # Pin the backend the grader saw, so the judge cannot quietly pick another one.
        sandbox_config["backend"] = sandbox_info["backend"]
        spec = _judge_spec(challenge, workspace, reference, records_path, sandbox_config, hidden=hidden)
        judge_error = _run_judge(spec, judge_dir, challenge.spec.limits.run_timeout_s,
                                 containers=sandbox_info["backend"] == "docker")
        records = list(iter_records(records_path))
    finally:
        workspace.cleanup()
        if reference is not None:
            reference.cleanup()
        shutil.rmtree(judge_dir, ignore_errors=True)

    by_node = {r["nodeid"]: r for r in records if r.get("kind") == "check"}
    session = next((r for r in records if r.get("kind") == "session"), {})
    checks = challenge.spec.checks if hidden else _public_checks(by_node)
    pass_mark = challenge.spec.challenge.pass_mark if hidden else 1.0
    verdict = score_checks(checks, by_node, pass_mark, judge_error=judge_error)
    metrics: dict[str, Any] = {}
    for item in verdict.checks:
        metrics.update(item.metrics)
    metrics["worker_starts"] = session.get("worker_starts", 0)
    environment = describe_environment()
    environment["sandbox"] = sandbox_info
    environment["candidate_runtime"] = session.get("candidate_versions", {})
    if session.get("device"):
        environment["device"] = session["device"]
    if session.get("calibration"):
        environment["calibration"] = session["calibration"]
        for key, used in session["calibration"].get("values", {}).items():
            metrics[f"calibration.{key}"] = used.get("value")
    return build_result(
        verdict,
        metrics=metrics,
        limits=challenge.spec.limits.model_dump(),
        environment=environment,
        challenge={"id": challenge.id, "version": challenge.version,
                   "title": challenge.spec.challenge.title, "checks": "hidden" if hidden else "public"},
        submission={"name": submission.name, "kind": workspace.kind,
                    "sha256": workspace.sha256, "size_bytes": workspace.size_bytes},
        feedback=list(workspace.warnings) + _sandbox_feedback(sandbox_info),
        duration_s=time.monotonic() - started,
        charts=[{**chart, "check": check.name} for check in checks
                for chart in by_node.get(check.test, {}).get("charts", []) if isinstance(chart, dict)],
    )


def _describe_sandbox(config: dict[str, Any]) -> dict[str, Any]:
    try:
        return make_sandbox(config).describe()
    except SandboxUnavailable as err:
        raise InfrastructureError(str(err)) from err


def _sandbox_feedback(info: dict[str, Any]) -> list[str]:
    return [f"sandbox: {info['note']}"] if info.get("note") else []


def _public_checks(by_node: dict[str, dict[str, Any]]) -> list[CheckSpec]:
    return [
        CheckSpec(name=node.split("::", 1)[1], test=node, points=1.0, visibility="visible")
        for node in by_node
    ]


def _worker_limits(challenge: Challenge) -> dict[str, Any]:
    limits = challenge.spec.limits
    return Limits(
        memory_mb=limits.memory_mb,
        max_processes=limits.max_processes,
        max_output_bytes=limits.max_output_bytes,
        scratch_mb=limits.scratch_mb,
        cpu_threads=limits.cpu_threads,
        setup_timeout_s=limits.setup_timeout_s,
    ).as_dict()


def _worker_entry(workspace: Workspace, challenge: Challenge) -> dict[str, Any]:
    return {
        "workspace": str(workspace.path),
        "entry": workspace.entry,
        "cells": workspace.cells,
        "functions": [f.model_dump(include={"name", "parameters"}) for f in challenge.spec.functions],
        "limits": _worker_limits(challenge),
        "assets": str(challenge.assets_dir.resolve()) if challenge.assets_dir is not None else None,
        "adapter": challenge.spec.assets.adapter if challenge.spec.assets is not None else None,
    }


def _judge_spec(
    challenge: Challenge,
    workspace: Workspace,
    reference: Workspace | None,
    records_path: Path,
    sandbox_config: dict[str, Any],
    *,
    hidden: bool,
) -> dict[str, Any]:
    checks = challenge.spec.checks
    return {
        "tests_dir": str(challenge.hidden_dir if hidden else challenge.public_dir),
        "selection": [check.test for check in checks] if hidden else None,
        "timeouts_s": {check.test: challenge.check_timeout_s(check) for check in checks},
        "timed_tests": [check.test for check in checks if check.timed],
        "default_timeout_s": challenge.spec.limits.check_timeout_s,
        "run_timeout_s": challenge.spec.limits.run_timeout_s,
        "records_path": str(records_path),
        "challenge": {"id": challenge.id, "version": challenge.version},
        "calibration_dir": str(calibration_dir()),
        # Grading the reference itself (validate, calibrate) is the only run that may store figures.
        "calibration_writable": reference is not None and workspace.sha256 == reference.sha256,
        "hidden": hidden,
        "sandbox": sandbox_config,
        "candidate": _worker_entry(workspace, challenge),
        "reference": _worker_entry(reference, challenge) if reference is not None else None,
    }


def _run_judge(spec: dict[str, Any], judge_dir: Path, run_timeout_s: float, *, containers: bool) -> str | None:
    """Run the judge process; return None when it worked, else why it did not.

    Whatever happens, nothing the judge started outlives it: its containers are
    removed here even when the judge itself had to be killed.
    """
    spec_path = judge_dir / "judge-spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    log_path = judge_dir / "judge.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    with log_path.open("wb") as log:
        judge = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-I", "-m", "grader.judge.runner", str(spec_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=judge_dir, env=env, start_new_session=True,
        )
        with _ACTIVE_LOCK:
            _ACTIVE_JUDGES.add(judge)
        try:
            code = judge.wait(timeout=run_timeout_s + JUDGE_GRACE_S)
        except subprocess.TimeoutExpired:
            _stop(judge)
            return None  # checks without a record fail; the run limit is the candidate's
        except BaseException:
            _stop(judge)  # Ctrl-C: take the judge and its workers down with us
            raise
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE_JUDGES.discard(judge)
            if containers:
                _remove_containers_of(judge.pid)
    if code == 0:
        return None
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-JUDGE_LOG_TAIL_CHARS:]
    return f"the judge failed with exit code {code}: {tail.strip()}"


def _remove_containers_of(judge_pid: int) -> None:
    from harness.containers import janitor, owner_id

    with contextlib.suppress(SandboxUnavailable):
        janitor(owner=owner_id(judge_pid))


def _stop(judge: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets the judge kill its workers; SIGKILL if it does not go. Idempotent."""
    if judge.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(judge.pid, signal.SIGTERM)
    try:
        judge.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(judge.pid, signal.SIGKILL)
        judge.wait()
