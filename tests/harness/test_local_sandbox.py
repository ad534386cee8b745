"""The local sandbox: every limit breach is a distinct outcome, and nothing outlives the session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from harness.local import LocalSandbox
from harness.sandbox import Limits, Outcome, WorkerSpec
from harness.session import CallFailure, WorkerSession
from tests.conftest import processes_with


def make_session(workspace: Path, isolation: str, **limits: object) -> WorkerSession:
    spec = WorkerSpec(
        workspace=workspace, entry="solution.py", cells=None,
        functions=[{"name": "add", "parameters": ["a", "b"]}],
        limits=Limits(**{"memory_mb": 1024, "max_output_bytes": 100_000, **limits}),  # type: ignore[arg-type]
    )
    return WorkerSession(LocalSandbox(isolation), spec)  # type: ignore[arg-type]


@pytest.fixture
def session(workspace: Path, isolation: str) -> Iterator[WorkerSession]:
    started = make_session(workspace, isolation)
    yield started
    started.close()


def failure_of(session: WorkerSession, function: str, *args: object, timeout_s: float = 20) -> CallFailure:
    with pytest.raises(CallFailure) as caught:
        session.call(function, list(args), {}, timeout_s)
    return caught.value


def test_a_call_returns_plain_data(session: WorkerSession) -> None:
    reply = session.call("add", [torch.ones(3), torch.ones(3)], {}, 20)
    assert torch.equal(reply.value, torch.full((3,), 2.0))
    assert reply.seconds > 0


def test_the_greeting_lists_missing_functions(workspace: Path, isolation: str) -> None:
    spec_session = make_session(workspace, isolation)
    spec_session._spec = WorkerSpec(  # a spec that asks for a function the solution lacks
        workspace=workspace, entry="solution.py", cells=None,
        functions=[{"name": "nms", "parameters": ["boxes", "scores", "iou_threshold"]},
                   {"name": "add", "parameters": ["a", "b", "c"]}],
        limits=Limits(),
    )
    try:
        hello = spec_session.start()
    finally:
        spec_session.close()
    assert "does not define nms(boxes, scores, iou_threshold)" in hello.problems["nms"]
    assert "cannot be called as add(a, b, c)" in hello.problems["add"]


def test_an_exception_is_reported_with_its_location(session: WorkerSession) -> None:
    failure = failure_of(session, "boom")
    assert failure.outcome is Outcome.RAISED
    assert "ValueError: nope" in failure.message and "line" in failure.message


def test_exiting_during_a_call_is_a_crash_with_its_exit_code(session: WorkerSession) -> None:
    failure = failure_of(session, "exit_quietly")
    assert failure.outcome is Outcome.CRASHED
    assert "exited with code 0" in failure.message
    # The next call gets a fresh worker.
    assert session.call("add", [1, 2], {}, 20).value == 3


def test_a_segfault_names_the_signal(session: WorkerSession) -> None:
    failure = failure_of(session, "segfault")
    assert failure.outcome is Outcome.CRASHED
    assert "SIGSEGV" in failure.message


def test_an_endless_call_times_out_and_the_worker_is_replaced(session: WorkerSession) -> None:
    failure = failure_of(session, "spin", timeout_s=1.0)
    assert failure.outcome is Outcome.TIMED_OUT
    assert "within 1 s" in failure.message
    assert session.call("add", [1, 2], {}, 20).value == 3
    assert session.stats.starts == 2


def test_an_output_flood_is_stopped_at_the_cap(session: WorkerSession) -> None:
    failure = failure_of(session, "flood")
    assert failure.outcome is Outcome.OUTPUT_LIMIT
    assert "printed more than 100000 bytes" in failure.message


def test_a_memory_hog_hits_the_memory_limit(session: WorkerSession) -> None:
    failure = failure_of(session, "hog", timeout_s=60)
    assert failure.outcome is Outcome.OUT_OF_MEMORY


def test_a_call_that_waits_on_a_child_killed_for_memory_is_out_of_memory_not_timed_out(
    session: WorkerSession,
) -> None:
    failure = failure_of(session, "hog_in_a_child_and_wait", timeout_s=15)
    assert failure.outcome is Outcome.OUT_OF_MEMORY
    assert "did not finish within 15 s" in failure.message and "more than 1024 MB" in failure.message
    assert session.call("add", [1, 2], {}, 20).value == 3  # and the next call gets a fresh worker


def test_rlimits_stop_a_memory_hog_without_cgroups(workspace: Path) -> None:
    spec = WorkerSpec(workspace=workspace, entry="solution.py", cells=None, functions=[],
                      limits=Limits(memory_mb=1024))
    session = WorkerSession(LocalSandbox("process", use_cgroups=False), spec)
    try:
        failure = failure_of(session, "hog", timeout_s=60)
    finally:
        session.close()
    assert failure.outcome is Outcome.OUT_OF_MEMORY


def test_a_fork_storm_is_capped_and_cleaned_up(session: WorkerSession) -> None:
    count = session.call("fork_storm", [], {}, 60).value
    assert count < 64
    session.close()
    assert processes_with("fork_storm") == []


def test_a_daemon_does_not_outlive_the_session(session: WorkerSession) -> None:
    marker = f"{os.getpid()}.{id(session)}"
    assert session.call("start_daemon", [marker], {}, 20).value is True
    session.close()
    assert processes_with(marker) == []


@pytest.mark.usefixtures("bwrap")
class TestBubblewrapView:
    """Under bubblewrap the submission sees only the runtime, its workspace and scratch."""

    @pytest.fixture
    def session(self, workspace: Path) -> Iterator[WorkerSession]:
        started = make_session(workspace, "bwrap")
        yield started
        started.close()

    def test_the_repository_and_home_are_not_visible(self, session: WorkerSession) -> None:
        repo = str(Path(__file__).resolve().parents[2])
        assert session.call("listdir", [repo + "/challenges"], {}, 20).value.startswith("error")
        assert session.call("read", ["/etc/passwd"], {}, 20).value.startswith("error")
        top_level = set(session.call("listdir", ["/"], {}, 20).value)
        runtime_roots = {Path(p).parts[1] for p in (sys.prefix, sys.base_prefix)}
        assert top_level <= {"bin", "cvgrade", "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr",
                             "workspace"} | runtime_roots
        assert session.call("listdir", ["/etc"], {}, 20).value == ["ld.so.cache"]  # the linker's cache only

    def test_only_the_sandbox_processes_are_visible(self, session: WorkerSession) -> None:
        pids = [name for name in session.call("listdir", ["/proc"], {}, 20).value if name.isdigit()]
        assert len(pids) <= 3

    def test_environment_holds_no_secrets(
        self, session: WorkerSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CVGRADE_API_SECRET_TOKEN", "do-not-leak")
        environment = session.call("environment", [], {}, 20).value
        assert "do-not-leak" not in environment.values()
        assert set(environment) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE",
                                    "PYTHONUNBUFFERED", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                    "OPENBLAS_NUM_THREADS", "LC_CTYPE", "PWD", "CUDA_VISIBLE_DEVICES"}

    def test_runs_as_an_unprivileged_user_without_network(self, session: WorkerSession) -> None:
        assert session.call("uid", [], {}, 20).value != 0
        assert session.call("interfaces", [], {}, 20).value == ["lo"]


@pytest.mark.gpu
def test_a_gpu_challenge_sees_exactly_one_cuda_device_inside_bubblewrap(workspace: Path, bwrap: None) -> None:
    if not Path("/dev/nvidiactl").exists():
        pytest.skip("no NVIDIA driver on this host (no GPU)")
    spec = WorkerSpec(workspace=workspace, entry="solution.py", cells=None, functions=[], limits=Limits())
    session = WorkerSession(LocalSandbox("bwrap", gpu="required"), spec)
    try:
        assert session.call("cuda_available", [], {}, 60).value is True
        assert session.start().device["type"] == "cuda"
    finally:
        session.close()


def test_a_cpu_challenge_hides_every_gpu(workspace: Path, isolation: str) -> None:
    session = make_session(workspace, isolation)
    try:
        assert session.call("cuda_available", [], {}, 60).value is False
        assert session.start().device["type"] == "cpu"
    finally:
        session.close()


def test_a_greeting_that_came_in_time_is_read_however_late_the_first_call(
    workspace: Path, isolation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker imported within its setup limit; the judge's first call comes after that limit
    (an earlier check used only the other solution). That is no import failure."""
    import select
    import time

    import harness.session

    monkeypatch.setattr(harness.session, "RUNTIME_START_S", 20.0)  # the limits short, so the wait is
    session = make_session(workspace, isolation, setup_timeout_s=10.0)
    worker = session._sandbox.start(session._spec)
    session.adopt(worker)
    try:
        ready, _, _ = select.select([worker.reply_fd], [], [], 30.0)
        if not ready:
            pytest.skip("the worker did not even greet within its setup limit on this machine now")
        time.sleep(max(session._setup_deadline - time.monotonic(), 0.0) + 1.0)  # the limit has passed
        reply = session.call("add", [1, 2], {}, 20)
        assert reply.value == 3
    finally:
        session.close()


def test_an_import_failure_reported_before_the_worker_exits_is_read_not_retried(
    workspace: Path, isolation: str
) -> None:
    """The worker reports the import failure and exits; the judge asks only later (a busy machine).
    The report waiting in the channel is the answer: the submission is not imported a second time."""
    import time

    (workspace / "solution.py").write_text("x = 1\ny = 1 / 0\n")
    session = make_session(workspace, isolation, setup_timeout_s=60.0)
    worker = session._sandbox.start(session._spec)
    session.adopt(worker)
    try:
        deadline = time.monotonic() + 60
        while worker.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not worker.alive(), "the worker should exit after reporting its import failure"
        with pytest.raises(CallFailure, match="could not be imported: ZeroDivisionError"):
            session.start()
        assert session.stats.starts == 1
    finally:
        session.close()


def test_a_lost_worker_is_replaced_before_the_next_call_and_only_then(session: WorkerSession) -> None:
    """The judge replaces a lost worker between checks (``replace_lost_worker``), not at the next call."""
    assert not session.replace_lost_worker(), "a session that never started a worker starts none"
    assert session.call("add", [1, 2], {}, 20).value == 3
    assert not session.replace_lost_worker(), "a live worker is not replaced"
    assert failure_of(session, "exit_quietly").outcome is Outcome.CRASHED
    assert session.replace_lost_worker(), "the lost worker was not replaced"
    assert session.running and session.starting and session.stats.starts == 2
    assert not session.replace_lost_worker(), "a second replacement was started beside the first"
    session.settle()  # what a timed check does first: the start-up ends before anything is timed
    assert not session.starting and session.hello is not None
    assert session.call("add", [2, 3], {}, 20).value == 5
    assert session.stats.starts == 2, "the call started yet another worker"
    session.close()  # on purpose: a check that stops the worker wants nothing of it running
    assert not session.replace_lost_worker() and not session.running


def test_no_replacement_starts_for_a_submission_that_cannot_be_imported_or_a_session_shut_down(
    workspace: Path, isolation: str
) -> None:
    (workspace / "solution.py").write_text("y = 1 / 0\n")
    broken = make_session(workspace, isolation)
    try:
        with pytest.raises(CallFailure, match="could not be imported"):
            broken.start()
        assert not broken.replace_lost_worker()
        broken.restart()
        assert not broken.running and broken.stats.starts == 1
    finally:
        broken.close()
    (workspace / "solution.py").write_text("def add(a, b):\n    return a + b\n")
    shut = make_session(workspace, isolation)
    shut.start()
    shut.shut_down()
    assert not shut.replace_lost_worker() and not shut.running
