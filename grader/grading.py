"""Grading one submission: workspace, judge, records, scores, result.

    submission --workspace--> sandboxed worker <--channel--> judge (pytest + hidden checks)
                                                               |
                                                      records (JSON lines)
                                                               |
                                                   scoring --> GradeResult

The judge runs as a separate trusted process so that a crash in it, or in a
hidden check, cannot take the grader down, and so that its module state is
fresh for every submission.

The judge handles what the candidate's worker sends, so it runs under limits
of its own: a cgroup of ``judge_memory_mb`` (the challenge's ``[limits]``) and
``JUDGE_CPUS`` CPUs' worth of time where one can be made, else soft rlimits
(data segment, CPU seconds). If the judge breaks its limit while a check runs,
that check's replies caused it (the reference's grading fits the same limit
with room to spare), so the breach is charged to the candidate: the check ends
``out_of_memory`` and the checks after it are recorded as not run, and the
grading is ``graded``, never "not gradable" (which would be a free attempt).
Outside any check a breach is ours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import shutil
import time
from collections.abc import Hashable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from grader import standby
from grader.calibration import calibration_dir
from grader.challenge import Challenge, CheckSpec
from grader.environment import PACKAGES, describe_environment
from grader.errors import InfrastructureError
from grader.judge.contracts import (
    ChallengeEntry,
    CheckRecord,
    FunctionEntry,
    JudgeSpec,
    NotebookCell,
    WorkerEntry,
    grading_spec_path,
    same_workers,
    write_judge_spec,
)
from grader.judge.forkserver import JUDGE_CPUS, shared_fork_server
from grader.judge.records import JudgeRecords, read_records
from grader.judge_process import (
    JUDGE_GRACE_S,
    JudgeRun,
    finish_judge,
    launch_judge,
    run_judge,
)
from grader.progress import Progress, ProgressCallback, ProgressTail
from grader.reference_use import checks_take_reference
from grader.results import GradeResult, build_result
from grader.scoring import score_checks
from grader.workspace import Workspace, prepare_workspace
from harness.backends import make_sandbox
from harness.leftovers import owned_folder
from harness.sandbox import GpuPolicy, Limits, SandboxConfig, SandboxDescription, SandboxUnavailable

# Packages the hidden checks use as oracles (pycocotools for detection_map): installed for the judge,
# never in the runtime image, and hidden from the local sandbox's view, so no submission imports them.
JUDGE_ONLY_DISTRIBUTIONS = ("pycocotools",)


@dataclass(frozen=True)
class GradeOptions:
    """How to grade: which sandbox backend (``auto``: Docker where it is ready, else local)."""

    backend: Literal["auto", "docker", "local"] = "auto"
    isolation: Literal["auto", "bwrap", "process"] = "auto"
    image: str | None = None
    # warm: a judge forked from this process's fork server (torch already imported; see
    # grader.judge.forkserver); cold: a fresh interpreter per grading (the benches' baseline).
    judge: Literal["warm", "cold"] = "warm"

    def sandbox_config(self, gpu: GpuPolicy = "off", cpu_threads: int = 1) -> SandboxConfig:
        return SandboxConfig(backend=self.backend, isolation=self.isolation, image=self.image, gpu=gpu,
                             judge_only=JUDGE_ONLY_DISTRIBUTIONS, cpu_threads=cpu_threads)


def warm_up_judges(options: GradeOptions | None = None, *, gradings: int | None = None) -> None:
    """Start this process's judge server now, so that its start overlaps with what the caller does next.

    ``gradings``: how many this process will grade, where known. For a single one the server starts
    light: its one judge imports torch while its workers start, rather than the workers waiting for
    the server to import it (``grader.judge.forkserver.main``). For more, it is made warm (a light one
    started early, by ``cli.main``, too). Unknown: a server starts warm, one running stays as it is.
    """
    if (options or GradeOptions()).judge != "warm":
        return
    server = shared_fork_server()
    if gradings is None:
        server.start()
    elif gradings == 1:
        server.start(warm=False)
    else:
        server.warm_up()


def grade_submission(
    submission: Path, challenge: Challenge, options: GradeOptions | None = None,
    progress: ProgressCallback | None = None,
) -> GradeResult:
    """Grade ``submission`` against the challenge's hidden checks.

    ``progress`` is called, from this thread, whenever the judge says how it is
    getting on (a check starting, a long check's own note); see ``grader.progress``.
    """
    return _grade(submission, challenge, options or GradeOptions(), hidden=True, progress=progress)


def run_public_checks(
    submission: Path, challenge: Challenge, options: GradeOptions | None = None,
    progress: ProgressCallback | None = None,
) -> GradeResult:
    """Run the challenge's public checks on ``submission`` (practice: no points, no hidden checks)."""
    return _grade(submission, challenge, options or GradeOptions(), hidden=False, progress=progress)


def _grade(
    submission: Path, challenge: Challenge, options: GradeOptions, *, hidden: bool,
    progress: ProgressCallback | None = None,
) -> GradeResult:
    started = time.monotonic()
    warm_up_judges(options)  # its imports overlap with the workspaces and the sandbox's description
    sandbox_config = options.sandbox_config(challenge.spec.limits.gpu, challenge.spec.limits.cpu_threads)
    sandbox_info = _describe_sandbox(sandbox_config)
    workspace = prepare_workspace(submission)
    waiting = standby.take(_standby_key(challenge, options, hidden=hidden)) if options.judge == "warm" else None
    reference: Workspace | None = waiting.reference if waiting is not None else None
    judge_dir = waiting.judge_dir if waiting is not None else owned_folder("judge")  # 0700, private; see janitor
    prestarted = False
    try:
        if hidden and reference is None:
            reference = prepare_workspace(challenge.reference_dir / "solution.py")
        records_path = judge_dir / "records.jsonl"
        # Pin the backend the grader saw, so the judge cannot quietly pick another one.
        sandbox_config = dataclasses.replace(sandbox_config, backend=sandbox_info["backend"])
        tail = ProgressTail(records_path, Progress(submission.name), progress) if progress is not None else None
        containers = sandbox_info["backend"] == "docker"
        limits = challenge.spec.limits
        spec = _judge_spec(challenge, workspace, reference, records_path, sandbox_config, hidden=hidden)
        if waiting is not None:
            judge, prestarted = _use_standby(waiting, spec, workspace, tail)
            if judge is None:  # it could not take this grading: ours from the start, in its folder
                judge = run_judge(spec, judge_dir, limits.run_timeout_s, containers=containers,
                                  memory_mb=limits.judge_memory_mb, tail=tail, warm=True)
        else:
            judge = run_judge(spec, judge_dir, limits.run_timeout_s, containers=containers,
                              memory_mb=limits.judge_memory_mb, tail=tail, warm=options.judge == "warm")
        records = read_records(records_path)
        judge_error = _charge_limit_breach(judge, records, spec.selection or [])
        if records.problem is not None:  # the judge wrote what we cannot read: our failure, never a verdict
            judge_error = "; ".join(filter(None, (judge_error, records.problem)))
    finally:
        workspace.cleanup()
        if waiting is not None:
            if not prestarted:  # not used (the grading failed before, or it could not be): its judge ends
                waiting.end()
            waiting.remove_folders()  # its folder, its slot and the reference's workspace
        else:
            if reference is not None:
                reference.cleanup()
            shutil.rmtree(judge_dir, ignore_errors=True)

    by_node = records.checks()
    session = records.session()
    checks = challenge.spec.checks if hidden else _public_checks(by_node)
    pass_mark = challenge.spec.challenge.pass_mark if hidden else 1.0
    verdict = score_checks(checks, by_node, pass_mark, judge_error=judge_error)
    metrics: dict[str, Any] = {}
    for item in verdict.checks:
        metrics.update(item.metrics)
    metrics["worker_starts"] = session.worker_starts if session is not None else 0
    environment = describe_environment()
    environment["sandbox"] = sandbox_info
    environment["runtime"] = _runtime_versions(sandbox_info)
    environment["judge"] = {**_judge_usage(judge, records), "workers_started_before_submission": prestarted}
    if session is not None and session.device:
        environment["device"] = session.device
    if session is not None and session.candidate_claims:
        environment["candidate_claims"] = session.candidate_claims
    if session is not None and session.calibration is not None:
        environment["calibration"] = session.calibration.model_dump(exclude_unset=True)  # as the judge wrote it
        for key, used in session.calibration.values.items():
            metrics[f"calibration.{key}"] = used.value
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
        charts=[{**chart, "check": check.name} for check in checks if check.test in by_node
                for chart in by_node[check.test].charts],
    )


def keep_standby(
    challenge: Challenge, options: GradeOptions | None = None, *, hidden: bool = True,
) -> standby.Standby | None:
    """Start a judge, with its workers, for the next grading of ``challenge`` with ``options``, before its
    submission is known (``grader.standby``); the one waiting for it now, or None where none can.

    For a grader that expects another such grading (the service and fleet workers between jobs), after a
    grading has ended: never beside a running one's timed checks. Only warm judges whose
    sandbox computes on the CPU stand by (a standby's GPU lease would hold a GPU for nobody).
    It waits until a grading of the same challenge, version, checks and options takes it, and
    is discarded when this process grades something else or ends.
    """
    options = options or GradeOptions()
    key = _standby_key(challenge, options, hidden=hidden)
    if options.judge != "warm":
        return None
    already = standby.waiting(key)
    if already is not None:
        return already
    try:
        sandbox_config = options.sandbox_config(challenge.spec.limits.gpu, challenge.spec.limits.cpu_threads)
        sandbox_info = _describe_sandbox(sandbox_config)
    except InfrastructureError:
        return None  # the grading itself will say so
    if sandbox_info.get("device") == "gpu":
        return None  # it would lease a GPU for nobody while it waits
    backend = sandbox_info["backend"]
    sandbox_config = dataclasses.replace(sandbox_config, backend=backend)
    slot = owned_folder("ws", mode=0o755)  # as prepare_workspace makes one: read by the sandbox's user
    judge_dir = owned_folder("judge")
    reference: Workspace | None = None
    try:
        reference = prepare_workspace(challenge.reference_dir / "solution.py") if hidden else None
        empty = Workspace(slot, None, None, "py")
        spec = _judge_spec(challenge, empty, reference, judge_dir / "records.jsonl", sandbox_config, hidden=hidden)
        limits = challenge.spec.limits
        judge = launch_judge(spec.model_copy(update={"standby": True}), judge_dir, limits.run_timeout_s,
                             containers=backend == "docker", memory_mb=limits.judge_memory_mb, warm=True)
    except BaseException:
        shutil.rmtree(slot, ignore_errors=True)
        shutil.rmtree(judge_dir, ignore_errors=True)
        if reference is not None:
            reference.cleanup()
        raise
    kept = standby.Standby(key, judge, judge_dir, slot, reference)
    standby.keep(kept)
    return kept


def _standby_key(challenge: Challenge, options: GradeOptions, *, hidden: bool) -> Hashable:
    return (str(challenge.root.resolve()), challenge.id, challenge.version, hidden, options)


def _use_standby(
    waiting: standby.Standby, spec: JudgeSpec, workspace: Workspace, tail: ProgressTail | None,
) -> tuple[JudgeRun | None, bool]:
    """Judge ``spec`` with the standby's judge and workers; (None, False) when it cannot be used.

    A standby that cannot be used is ended; its folders (the grading's judge folder now, and
    the reference's workspace) stay for the grading, which starts a judge of its own in them.

    The submission is copied into the standby's empty workspace folder, which its candidate
    worker has mounted read-only since it started; the spec names that folder, and carries the
    judge's own limits as the standby's were written.
    """
    limits_of_standby = waiting.judge.spec.judge_rlimits
    spec = spec.model_copy(update={
        "candidate": spec.candidate.model_copy(update={"workspace": waiting.slot}),
        "judge_rlimits": limits_of_standby,
    })
    standby_spec = waiting.judge.spec.model_copy(update={"standby": False})
    if not same_workers(standby_spec, spec):
        waiting.end()
        return None, False
    try:
        shutil.copytree(workspace.path, waiting.slot, symlinks=True, dirs_exist_ok=True)
        write_judge_spec(spec, grading_spec_path(waiting.judge.spec_path))
    except OSError:
        waiting.end()
        return None, False
    if not waiting.go():
        waiting.end()
        return None, False
    return finish_judge(waiting.judge, spec.run_timeout_s + JUDGE_GRACE_S, tail), True


def _describe_sandbox(config: SandboxConfig) -> SandboxDescription:
    try:
        return make_sandbox(config).describe()
    except SandboxUnavailable as err:
        raise InfrastructureError(str(err)) from err


def _sandbox_feedback(info: SandboxDescription) -> list[str]:
    return [f"sandbox: {info['note']}"] if info.get("note") else []


def _public_checks(by_node: dict[str, CheckRecord]) -> list[CheckSpec]:
    return [
        CheckSpec(name=node.split("::", 1)[1], test=node, points=1.0, visibility="visible")
        for node in by_node
    ]


def _worker_limits(challenge: Challenge) -> Limits:
    limits = challenge.spec.limits
    return Limits(
        memory_mb=limits.memory_mb,
        max_processes=limits.max_processes,
        max_output_bytes=limits.max_output_bytes,
        scratch_mb=limits.scratch_mb,
        cpu_threads=limits.cpu_threads,
        setup_timeout_s=limits.setup_timeout_s,
    )


def _worker_entry(workspace: Workspace, challenge: Challenge) -> WorkerEntry:
    return WorkerEntry(
        workspace=workspace.path,
        entry=workspace.entry,
        cells=[NotebookCell.model_validate(cell) for cell in workspace.cells] if workspace.cells is not None else None,
        functions=[FunctionEntry(name=f.name, parameters=list(f.parameters)) for f in challenge.spec.functions],
        limits=_worker_limits(challenge),
        assets=challenge.assets_dir.resolve() if challenge.assets_dir is not None else None,
        adapter=challenge.spec.assets.adapter if challenge.spec.assets is not None else None,
    )


def _judge_spec(
    challenge: Challenge,
    workspace: Workspace,
    reference: Workspace | None,
    records_path: Path,
    sandbox_config: SandboxConfig,
    *,
    hidden: bool,
) -> JudgeSpec:
    checks = challenge.spec.checks
    return JudgeSpec(
        tests_dir=challenge.hidden_dir if hidden else challenge.public_dir,
        selection=[check.test for check in checks] if hidden else None,
        timeouts_s={check.test: challenge.check_timeout_s(check) for check in checks},
        check_names={check.test: check.name for check in checks},
        call_timeout_s=challenge.spec.limits.call_timeout_s,
        timed_tests=[check.test for check in checks if check.timed],
        default_timeout_s=challenge.spec.limits.check_timeout_s,
        run_timeout_s=challenge.spec.limits.run_timeout_s,
        records_path=records_path,
        challenge=ChallengeEntry(id=challenge.id, version=challenge.version),
        calibration_dir=calibration_dir(),
        # Grading the reference itself (validate, calibrate) is the only run that may store figures.
        calibration_writable=reference is not None and workspace.sha256 == reference.sha256,
        hidden=hidden,
        sandbox=sandbox_config,
        candidate=_worker_entry(workspace, challenge),
        reference=_worker_entry(reference, challenge) if reference is not None else None,
        start_reference_early=reference is not None and checks_take_reference(challenge.hidden_dir),
        max_reply_bytes={check.test: challenge.max_reply_bytes(check) for check in checks},
        default_max_reply_bytes=challenge.max_reply_bytes(),
        held_back_tests=[check.test for check in checks if check.held_back_data] if hidden else [],
    )


def _charge_limit_breach(judge: JudgeRun, records: JudgeRecords, selection: list[str]) -> str | None:
    """When the judge broke its own limit during a check, charge that check; return what is left of the error.

    Adds the records of the check that was running (``out_of_memory``, naming the judge's
    limit) and of the selected checks after it (not run) to ``records``.
    """
    if judge.error is None or not (judge.out_of_memory or judge.out_of_cpu):
        return judge.error
    finished = set(records.checks())
    running = next((node for node in reversed(records.started()) if node not in finished), None)
    if running is None:
        return judge.error  # no check was running: the judge's own failure, ours
    limit = (f"the judge's memory limit of {judge.memory_limit_mb} MB" if judge.out_of_memory
             else "the judge's CPU time limit")
    records.add(_not_passed(running, f"the judge exceeded {limit} handling what the solution returned "
                                        "in this check: return less data"))
    after = selection[selection.index(running) + 1:] if running in selection else []
    for node in after:
        if node not in finished:
            records.add(_not_passed(node, f"not run: the judge stopped at {running.split('::')[-1]}, where the "
                                          f"solution's replies made it exceed {limit}"))
    return None


def _not_passed(nodeid: str, message: str) -> CheckRecord:
    return CheckRecord(nodeid=nodeid, passed=False, outcome="out_of_memory", message=message)


def _judge_usage(judge: JudgeRun, records: JudgeRecords) -> dict[str, Any]:
    """What the judge used and was allowed: its own figures, or its cgroup's when it was killed."""
    own = records.judge_usage()
    session = records.session()
    return {
        "peak_memory_mb": own.peak_memory_mb if own is not None else judge.peak_memory_mb,
        "cpu_s": own.cpu_s if own is not None else None,
        "memory_limit_mb": judge.memory_limit_mb,
        "cpus": JUDGE_CPUS,
        "limits_enforced_by": judge.limits_enforced_by,
        # 0 when no check took the reference (its worker is then not started: grader.reference_use).
        "reference_worker_starts": session.reference_worker_starts if session is not None else 0,
    }


def _runtime_versions(sandbox_info: SandboxDescription) -> dict[str, str]:
    """The candidate's runtime, from where the candidate cannot write: the image, or this interpreter.

    Docker: ``/opt/cvgrade/versions.json`` read from the runtime image by the engine. Local: the
    workers run this very interpreter and its packages.
    """
    if sandbox_info.get("backend") == "docker":
        from harness.containers import docker_client
        from harness.images import image_versions

        try:
            return image_versions(docker_client(), str(sandbox_info.get("image_id") or sandbox_info["image"]))
        except Exception:  # the engine went away: the result says it does not know
            return {}
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        if package not in ("cvgrade", "pytest"):
            with contextlib.suppress(metadata.PackageNotFoundError):
                versions[package] = metadata.version(package)
    return versions
