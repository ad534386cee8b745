"""The judge process, seen from the grader: start it under its own limits, wait for it, clean up after it.

    launch_judge(spec) --> LaunchedJudge --finish_judge--> JudgeRun (how it ended, what its limits saw)

The judge runs under limits of its own: a cgroup of ``judge_memory_mb`` (the challenge's
``[limits]``) and ``JUDGE_CPUS`` CPUs' worth of time where one can be made, else soft
rlimits (data segment, CPU seconds) it sets on itself. Whatever happens, nothing the judge
started outlives it: its containers are removed here even when the judge itself had to be
killed. Nor does the judge outlive us: its stdin is a pipe only we hold open, and when it
reads the end of it (we exited, however: SIGKILL included) it stops itself and its workers
(``grader.judge.runner``).

A launch and its finish are apart so that a judge can be started before its grading is
known (``grader.standby``) and finished by the grading that takes it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from grader.judge.contracts import JudgeRlimits, JudgeSpec, write_judge_spec
from grader.judge.forkserver import JUDGE_CPUS, ForkedJudge, shared_fork_server
from grader.progress import ProgressTail
from harness import cgroups
from harness.sandbox import SandboxUnavailable

JUDGE_GRACE_S = 60.0  # on top of the challenge's run limit: judge start-up and clean-up
JUDGE_LOG_TAIL_CHARS = 3000
PROGRESS_POLL_S = 0.25
JUDGE_MAX_PROCESSES = 1024  # threads included: pytest, output readers, the workers' launchers
_ACTIVE_JUDGES: set[subprocess.Popen[bytes] | ForkedJudge] = set()
_ACTIVE_LOCK = threading.Lock()


def stop_all_judges() -> None:
    """Stop every judge this process started (Ctrl-C while several gradings run at once)."""
    with _ACTIVE_LOCK:
        judges = list(_ACTIVE_JUDGES)
    for judge in judges:
        _stop(judge)


@dataclass
class JudgeRun:
    """How the judge process ended, and what its limits saw."""

    error: str | None  # None: it worked (or its run limit was reached, which is the candidate's)
    returncode: int | None
    memory_limit_mb: int
    limits_enforced_by: str  # "cgroup v1", "cgroup v2" or "rlimits"
    out_of_memory: bool = False
    out_of_cpu: bool = False
    peak_memory_mb: float | None = None  # the cgroup's figure, where there is one


@dataclass
class LaunchedJudge:
    """A judge process started under its limits, not yet waited for."""

    process: subprocess.Popen[bytes] | ForkedJudge
    spec: JudgeSpec  # as written for it, its own rlimits included
    spec_path: Path
    group: cgroups.Cgroup | None
    log: IO[bytes]
    log_path: Path
    containers: bool
    run: JudgeRun


def launch_judge(
    spec: JudgeSpec, judge_dir: Path, run_timeout_s: float, *, containers: bool, memory_mb: int, warm: bool = True,
) -> LaunchedJudge:
    """Start the judge for ``spec`` in ``judge_dir`` under its own limits; ``warm``: forked from the fork server."""
    group = _judge_cgroup(memory_mb)
    if group is None:
        spec = spec.model_copy(update={"judge_rlimits": JudgeRlimits(
            RLIMIT_DATA=memory_mb * 1024 * 1024,
            RLIMIT_CPU=int((run_timeout_s + JUDGE_GRACE_S) * JUDGE_CPUS),
        )})
    run = JudgeRun(None, None, memory_mb, f"cgroup {group.version}" if group is not None else "rlimits")
    spec_path = judge_dir / "judge-spec.json"
    log_path = judge_dir / "judge.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(JUDGE_CPUS)  # no more threads than its CPU quota: bursts would be throttled
    log: IO[bytes] | None = None
    try:
        write_judge_spec(spec, spec_path)
        log = log_path.open("wb")
        process = _start_judge(spec_path, judge_dir, env, group, log, warm=warm)
    except BaseException:
        if log is not None:
            log.close()
        if group is not None:
            group.remove()
        raise
    with _ACTIVE_LOCK:
        _ACTIVE_JUDGES.add(process)
    return LaunchedJudge(process, spec, spec_path, group, log, log_path, containers, run)


def finish_judge(judge: LaunchedJudge, timeout_s: float, tail: ProgressTail | None = None) -> JudgeRun:
    """Wait for the judge up to ``timeout_s`` (stopping it then); remove what it left; say how it ended."""
    run = judge.run
    process = judge.process
    code: int | None = None
    try:
        try:
            code = _wait(process, timeout_s, tail)
        except subprocess.TimeoutExpired:
            _stop(process)
            return run  # checks without a record fail; the run limit is the candidate's
        except BaseException:
            _stop(process)  # Ctrl-C: take the judge and its workers down with us
            raise
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE_JUDGES.discard(process)
            if process.stdin is not None:
                process.stdin.close()
            if judge.containers:
                _remove_containers_of(process.pid)
            else:  # what a judge killed mid-check (a frozen worker included) could not remove
                cgroups.remove_worker_groups_of(process.pid)
            judge.log.close()
    finally:
        if judge.group is not None:
            run.out_of_memory = judge.group.oom_killed()
            peak = judge.group.peak_memory_bytes()
            run.peak_memory_mb = round(peak / 2**20, 1) if peak is not None else None
            judge.group.remove()
    run.returncode = code
    run.out_of_cpu = code == -signal.SIGXCPU  # RLIMIT_CPU; a cgroup's quota slows, never kills
    if code != 0:
        run.error = f"the judge failed with exit code {code}: {_log_tail(judge.log_path)}"
    return run


def run_judge(
    spec: JudgeSpec, judge_dir: Path, run_timeout_s: float, *, containers: bool, memory_mb: int,
    tail: ProgressTail | None = None, warm: bool = True,
) -> JudgeRun:
    """Run the judge process for ``spec`` under its own limits, to its end; say how it ended."""
    judge = launch_judge(spec, judge_dir, run_timeout_s, containers=containers, memory_mb=memory_mb, warm=warm)
    return finish_judge(judge, run_timeout_s + JUDGE_GRACE_S, tail)


def _start_judge(
    spec_path: Path, judge_dir: Path, env: dict[str, str], group: cgroups.Cgroup | None, log: IO[bytes],
    *, warm: bool,
) -> subprocess.Popen[bytes] | ForkedJudge:
    """The judge, in its own session and cgroup, stdin a pipe only we hold, output to ``log``."""
    procs_files = list(group.procs_files) if group is not None else []
    if warm:
        return shared_fork_server().fork(spec_path, judge_dir, env, procs_files, log)
    command = [sys.executable, "-I", "-m", "grader.judge.runner", str(spec_path)]
    if procs_files:  # joins its cgroup before Python starts, then becomes the judge (same pid)
        joins = " && ".join(f"echo $$ > {shlex.quote(str(path))}" for path in procs_files)
        command = ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *command]
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
        cwd=judge_dir, env=env, start_new_session=True,
    )


def _judge_cgroup(memory_mb: int) -> cgroups.Cgroup | None:
    """A cgroup for the judge, where this machine lets us make one."""
    version = cgroups.detect()
    if version is None:
        return None
    try:
        return cgroups.Cgroup(memory_mb, JUDGE_MAX_PROCESSES, version, cpu_threads=JUDGE_CPUS, prefix="judge")
    except OSError:
        return None


def _log_tail(log_path: Path) -> str:
    try:
        return log_path.read_text(encoding="utf-8", errors="replace")[-JUDGE_LOG_TAIL_CHARS:].strip()
    except OSError:
        return ""


def _wait(judge: subprocess.Popen[bytes] | ForkedJudge, timeout_s: float, tail: ProgressTail | None) -> int:
    """``judge.wait(timeout_s)``, reading its progress lines meanwhile when someone follows them."""
    if tail is None:
        return judge.wait(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            code = judge.wait(timeout=min(PROGRESS_POLL_S, max(deadline - time.monotonic(), 0.0)))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
            tail.poll()
            continue
        tail.poll()
        return code


def _remove_containers_of(judge_pid: int) -> None:
    from harness.containers import janitor, owner_id

    with contextlib.suppress(SandboxUnavailable):
        janitor(owner=owner_id(judge_pid))


def _stop(judge: subprocess.Popen[bytes] | ForkedJudge) -> None:
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
