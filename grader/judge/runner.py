"""Entry point of the judge process: ``python -m grader.judge.runner SPEC.json``.

The grader starts this process with a spec it wrote to a private folder. The
judge starts the candidate's worker (and the reference's, when checks ask for
it) through the harness, runs pytest over the checks with ``JudgePlugin``, and
writes its record of each check to ``records_path``. Its exit code only says
whether the judge itself worked; verdicts live in the records.

The judge runs under limits of its own (see ``grader.grading``): a cgroup the
grader puts it in, or, without one, the soft rlimits in the spec, set here
first. It touches no GPU but the one its sandbox leased (``CUDA_VISIBLE_DEVICES``
names only that one, or none), and writes what it used, its peak memory and
its CPU time, as its last record.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

# Only light modules here: the workers are launched before torch and pytest are
# imported, so that their start-up overlaps with ours.
from grader.judge.contracts import (
    GO,
    ContractError,
    JudgeRlimits,
    JudgeSpec,
    JudgeUsageRecord,
    WorkerEntry,
    grading_spec_path,
    read_judge_spec,
    record_line,
    same_workers,
)
from harness.backends import make_sandbox
from harness.sandbox import Sandbox, WorkerCell, WorkerFunction, WorkerProcess, WorkerSpec

if TYPE_CHECKING:
    from grader.judge.plugin import CalibrationSettings

EXIT_OK = 0
EXIT_JUDGE_FAILED = 3


def worker_spec(entry: WorkerEntry, label: str, *, awaits_submission: bool = False) -> WorkerSpec:
    return WorkerSpec(
        workspace=entry.workspace,
        entry=entry.entry,
        cells=[WorkerCell(number=cell.number, source=cell.source) for cell in entry.cells]
        if entry.cells is not None else None,
        functions=[WorkerFunction(name=function.name, parameters=list(function.parameters))
                   for function in entry.functions],
        limits=entry.limits,
        label=label,
        assets=entry.assets,
        adapter=entry.adapter,
        awaits_submission=awaits_submission,
    )


@dataclass
class StartedWorkers:
    """The workers a judge started, and the sandbox that started them."""

    sandbox: Sandbox
    candidate: WorkerProcess
    reference: WorkerProcess | None
    before_submission: bool = False  # a standby's: the candidate's waits for its entry and cells

    def kill(self) -> None:
        for worker in (self.candidate, self.reference):
            if worker is not None:
                with contextlib.suppress(Exception):
                    worker.kill()


def start_workers(spec: JudgeSpec) -> StartedWorkers:
    """The candidate's worker, and the reference's when checks take it, started now (before our imports)."""
    sandbox = make_sandbox(spec.sandbox)
    candidate_spec = worker_spec(spec.candidate, "candidate", awaits_submission=spec.standby)
    launched_candidate = sandbox.start(candidate_spec)
    launched_reference = None
    if spec.reference is not None and spec.start_reference_early:
        try:
            launched_reference = sandbox.start(worker_spec(spec.reference, "reference"))
        except BaseException:
            launched_candidate.kill()
            raise
    return StartedWorkers(sandbox, launched_candidate, launched_reference, before_submission=spec.standby)


def run(spec: JudgeSpec, started_workers: StartedWorkers | None = None) -> int:
    """Judge the grading ``spec`` describes; ``started_workers``: a standby's, started for a spec like this one."""
    started = time.monotonic()
    workers = started_workers or start_workers(spec)
    sandbox = workers.sandbox
    candidate_spec = worker_spec(spec.candidate, "candidate")
    reference_spec = worker_spec(spec.reference, "reference") if spec.reference is not None else None
    launched_candidate, launched_reference = workers.candidate, workers.reference
    cuda_device = _own_gpu_only(sandbox)  # before anything here can start CUDA

    import pytest

    from grader.judge.plugin import JudgePlugin
    from grader.judge.timing import registered_judge
    from harness.session import CallFailure, WorkerSession

    candidate = WorkerSession(sandbox, candidate_spec, cuda_device=cuda_device)
    candidate.adopt(launched_candidate, hand_submission=workers.before_submission)
    reference = None
    if reference_spec is not None:
        reference = WorkerSession(sandbox, reference_spec, cuda_device=cuda_device)
        if launched_reference is not None:  # else it starts at its first call, if any
            reference.adopt(launched_reference)

    def stop(signum: int, frame: FrameType | None) -> None:
        candidate.close()
        if reference is not None:
            reference.close()
        raise SystemExit(EXIT_JUDGE_FAILED)

    signal.signal(signal.SIGTERM, stop)
    _stop_when_the_grader_is_gone([candidate, reference])
    # Take both greetings now, within their setup limits: a check may first call the reference
    # minutes later, long after its greeting came. An import failure is kept for the checks. A
    # reference not started early starts, and greets, at its first call.
    for session in (candidate, reference if launched_reference is not None else None):
        if session is not None:
            with contextlib.suppress(CallFailure):
                session.start()
    plugin = JudgePlugin(
        records_path=spec.records_path,
        timeouts_s=dict(spec.timeouts_s),
        default_timeout_s=spec.default_timeout_s,
        run_deadline=started + spec.run_timeout_s,
        hidden=spec.hidden,
        candidate=candidate,
        reference=reference,
        timed_tests=frozenset(spec.timed_tests),
        calibration=_calibration_settings(spec, candidate_spec),
        timing_resource=_timing_resource(sandbox),
        check_names=dict(spec.check_names),
        call_timeout_s=spec.call_timeout_s,
        max_reply_bytes=dict(spec.max_reply_bytes),
        default_max_reply_bytes=spec.default_max_reply_bytes,
        held_back_tests=frozenset(spec.held_back_tests),
        timed_cores=sandbox.timed_cores,
    )
    tests_dir = spec.tests_dir
    # The checks' own modules (an oracle, cases, a timing kit beside the tests in hidden/) import by
    # name, as under pytest's default import mode: the folder of the checks comes first on the path.
    sys.path.insert(0, str(tests_dir))
    ini = spec.records_path.parent / "judge-pytest.ini"
    ini.write_text("[pytest]\n")
    args = [
        "-c", str(ini), "--rootdir", str(tests_dir), "-p", "no:cacheprovider",
        "--import-mode=importlib", "-q", "--no-header", "-rN",
        "--assert=plain" if spec.hidden else "--assert=rewrite",
    ]
    selection = spec.selection
    args += [str(tests_dir / node) for node in selection] if selection else [str(tests_dir)]
    try:
        with registered_judge():
            code = pytest.main(args, plugins=[plugin])
    finally:
        candidate.close()
        if reference is not None:
            reference.close()
        _record_own_usage(spec.records_path)
    # pytest's own codes: 0 all passed, 1 some failed, 5 none collected; others are our problem.
    return EXIT_OK if code in (0, 1) else EXIT_JUDGE_FAILED


def _own_gpu_only(sandbox: Sandbox) -> str | None:
    """Let this process see only the GPU its sandbox leased (none without a lease); its device name, or None.

    A reply that names ``cuda:N`` then lands on this grading's own GPU (see ``harness.wire``),
    and a check's ``.cuda()`` too: never on a GPU another grading leased.
    """
    index = sandbox.gpu_index
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index) if index is not None else ""
    return "cuda" if index is not None else None


def _apply_own_limits(rlimits: JudgeRlimits | None) -> None:
    """Soft limits only: the workers this process starts locally set their own, which may be higher."""
    if rlimits is None:
        return
    for name, value in rlimits.model_dump().items():
        number = getattr(resource, name)
        _, hard = resource.getrlimit(number)
        resource.setrlimit(number, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))


def _record_own_usage(records_path: Path) -> None:
    """The judge's peak resident memory and CPU time, as its last record (the grader reports them)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = JudgeUsageRecord(peak_memory_mb=round(usage.ru_maxrss / 1024, 1),
                              cpu_s=round(usage.ru_utime + usage.ru_stime, 2))
    with records_path.open("a", encoding="utf-8") as records:
        records.write(record_line(record))


def _stop_when_the_grader_is_gone(sessions: list[Any]) -> None:
    """When our stdin is a pipe from the grader, its end means the grader is gone: stop at once.

    The grader holds the only write end and never writes; the kernel closes it however the
    grader ends, SIGKILL included. Then this judge kills its workers and exits, from this
    thread, whatever the main thread is doing: a judge never grades on for nobody. (Its
    bubblewrap workers would die with it anyway; containers are removed here. The sessions are
    shut for good first, so the main thread, seeing its worker die, starts no new one for the
    next check; a start already under way is waited for and its container removed too.)
    """
    if not stat.S_ISFIFO(os.fstat(0).st_mode):
        return  # started by hand or by a test with another stdin: nobody to watch

    stopping, stopped = threading.Event(), threading.Event()

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        stopping.set()
        for session in sessions:
            if session is not None:
                with contextlib.suppress(Exception):
                    session.shut_down()  # no worker starts again, not even for the next check
        stopped.set()
        os._exit(EXIT_JUDGE_FAILED)

    def let_the_watch_finish() -> None:
        # The main thread may end first (a start refused mid-greeting raises): this process must
        # not exit while the watch is still removing workers.
        if stopping.is_set():
            stopped.wait(60)

    atexit.register(let_the_watch_finish)
    threading.Thread(target=watch, name="grader-watch", daemon=True).start()


def _timing_resource(sandbox: Sandbox) -> str:
    """Timed checks lock the GPU this grading leased, or the host's CPUs when it has none."""
    index = sandbox.gpu_index
    return f"gpu{index}" if index is not None else "cpu"


def _calibration_settings(spec: JudgeSpec, candidate: WorkerSpec) -> CalibrationSettings | None:
    """Hidden runs get a calibration cache; only a run grading the reference itself may write it."""
    if not spec.hidden:
        return None
    from grader.judge.plugin import CalibrationSettings

    return CalibrationSettings(
        root=spec.calibration_dir,
        challenge_id=spec.challenge.id,
        version=spec.challenge.version,
        cpu_threads=candidate.limits.cpu_threads,
        backend=spec.sandbox.backend,
        writable=spec.calibration_writable,
    )


def judge_main(spec_path: Path) -> int:
    """Read the spec, take on its limits, judge: the judge's exit code (a cold start or a fork of the warm one)."""
    try:
        spec = read_judge_spec(spec_path)
    except ContractError as err:
        print(f"cvgrade judge: {err}", file=sys.stderr, flush=True)
        return EXIT_JUDGE_FAILED
    _apply_own_limits(spec.judge_rlimits)
    if spec.standby:
        return stand_by(spec_path, spec)
    return run(spec)


def stand_by(spec_path: Path, standby: JudgeSpec) -> int:
    """A judge started before its submission was known (``grader.standby``).

    Starts the workers ``standby`` describes (the candidate's loads its runtime, then waits for
    its entry and cells; its workspace is still empty), then waits for the grader: ``GO`` on
    stdin means the grading's own spec is in place (``grading_spec_path``); the end of stdin (or SIGTERM)
    means this standby will not be used, and its workers are killed. The grading is judged
    with these workers only if it needs exactly them (same sandbox, limits, functions, assets,
    reference); else they are killed and the grading starts its own, as any judge does.
    """
    workers = start_workers(standby)

    def stop(signum: int, frame: FrameType | None) -> None:
        workers.kill()
        raise SystemExit(EXIT_OK)

    signal.signal(signal.SIGTERM, stop)
    _own_gpu_only(workers.sandbox)
    import pytest  # noqa: F401 - imported while the workers load theirs, as a judge does

    import grader.judge.plugin  # noqa: F401
    try:
        word = os.read(0, 1)
    except OSError:
        word = b""
    if word != GO:
        workers.kill()
        return EXIT_OK
    try:
        spec = read_judge_spec(grading_spec_path(spec_path))
    except ContractError as err:
        workers.kill()
        print(f"cvgrade judge: {err}", file=sys.stderr, flush=True)
        return EXIT_JUDGE_FAILED
    if spec.standby or not same_workers(standby, spec):
        workers.kill()
        _apply_own_limits(spec.judge_rlimits)
        return run(spec)
    return run(spec, workers)


def main() -> None:
    sys.exit(judge_main(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
