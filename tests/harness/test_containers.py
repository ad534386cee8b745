"""The Docker backend: a locked-down container per worker, killed and removed whatever happens."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from harness.containers import (
    LABEL,
    OWNER_LABEL,
    DockerSandbox,
    control_root,
    docker_client,
    janitor,
    owner_id,
    private_folder,
)
from harness.sandbox import Limits, Outcome, SandboxUnavailable, WorkerSpec
from harness.session import CallFailure, WorkerSession

pytestmark = pytest.mark.usefixtures("docker")


def our_containers() -> list[str]:
    client = docker_client()
    return [
        c.short_id for c in client.containers.list(all=True, filters={"label": LABEL})
        if c.labels.get("org.cvgrade.owner") == owner_id()
    ]


def worker_spec(workspace: Path) -> WorkerSpec:
    return WorkerSpec(workspace=workspace, entry="solution.py", cells=None,
                      functions=[{"name": "add", "parameters": ["a", "b"]}],
                      limits=Limits(memory_mb=1024, max_output_bytes=100_000, scratch_mb=64))


@pytest.fixture
def session(workspace: Path) -> Iterator[WorkerSession]:
    started = WorkerSession(DockerSandbox(), worker_spec(workspace))
    yield started
    started.close()
    assert our_containers() == [], "a worker container outlived its session"


def call(session: WorkerSession, function: str, *args: object, timeout_s: float = 30) -> object:
    return session.call(function, list(args), {}, timeout_s).value


def failure_of(session: WorkerSession, function: str, *args: object, timeout_s: float = 30) -> CallFailure:
    with pytest.raises(CallFailure) as caught:
        session.call(function, list(args), {}, timeout_s)
    return caught.value


def test_a_call_crosses_the_socket_as_plain_data(session: WorkerSession) -> None:
    assert torch.equal(call(session, "add", torch.ones(3), torch.ones(3)), torch.full((3,), 2.0))  # type: ignore[arg-type]


def test_the_root_file_system_and_workspace_are_read_only(session: WorkerSession) -> None:
    assert call(session, "write_file", "/etc/cvgrade-was-here") == "error: OSError"
    assert call(session, "write_file", "/workspace/planted.py") == "error: OSError"
    assert call(session, "write_file", "/tmp/scratch.txt") == "ok"


def test_filling_the_scratch_tmpfs_stops_at_its_size(session: WorkerSession) -> None:
    outcome = call(session, "fill_scratch", "/tmp/fill.bin", timeout_s=60)
    assert isinstance(outcome, str) and outcome.startswith("OSError after")
    written = int(outcome.split()[2])
    assert written <= 64 * 1024 * 1024


def test_only_the_containers_own_processes_and_no_network(session: WorkerSession) -> None:
    pids = [name for name in call(session, "listdir", "/proc") if name.isdigit()]  # type: ignore[attr-defined]
    assert len(pids) <= 3  # init, the worker, maybe a thread's view
    assert call(session, "interfaces") == ["lo"]
    assert call(session, "read", "/var/run/docker.sock").startswith("error")  # type: ignore[union-attr]


def test_runs_unprivileged_under_seccomp(session: WorkerSession) -> None:
    assert call(session, "uid") == 65534
    status = call(session, "status")
    assert status == {"CapEff": "0000000000000000", "CapBnd": "0000000000000000",
                      "NoNewPrivs": "1", "Seccomp": "2"}


def test_limit_breaches_are_distinct_outcomes(session: WorkerSession) -> None:
    assert failure_of(session, "boom").outcome is Outcome.RAISED
    exited = failure_of(session, "exit_quietly")
    assert exited.outcome is Outcome.CRASHED and "exited with code 0" in exited.message
    assert failure_of(session, "hog", timeout_s=60).outcome is Outcome.OUT_OF_MEMORY
    assert failure_of(session, "flood").outcome is Outcome.OUTPUT_LIMIT
    assert call(session, "add", 1, 2) == 3  # a fresh container after each breach


def test_a_call_that_waits_on_a_child_killed_for_memory_is_out_of_memory_not_timed_out(
    session: WorkerSession,
) -> None:
    failure = failure_of(session, "hog_in_a_child_and_wait", timeout_s=20)
    assert failure.outcome is Outcome.OUT_OF_MEMORY
    assert "did not finish within 20 s" in failure.message
    assert call(session, "add", 1, 2) == 3


def test_a_worker_that_ignores_sigterm_is_killed_at_the_deadline(session: WorkerSession) -> None:
    failure = failure_of(session, "ignore_sigterm_and_spin", timeout_s=2)
    assert failure.outcome is Outcome.TIMED_OUT
    assert our_containers() == []


def test_a_fork_storm_is_capped_by_the_pids_limit(session: WorkerSession) -> None:
    assert call(session, "fork_storm", timeout_s=60) < 64  # type: ignore[operator]


def test_the_janitor_removes_containers_of_a_grader_that_died(workspace: Path) -> None:
    client = docker_client()
    leftover = client.containers.create(
        DockerSandbox().image, command=["sleep", "600"], labels={LABEL: "1", "org.cvgrade.owner": owner_id(999_999_999)}
    )
    assert leftover.short_id in janitor()
    assert leftover.short_id not in [c.short_id for c in client.containers.list(all=True)]


def test_a_janitor_is_not_thrown_by_another_gradings_containers_going_away_meanwhile(workspace: Path) -> None:
    # Two gradings at once (`--jobs 2`): each one's janitor lists every worker container, while the other grading
    # removes its own. A container listed and then gone is none of this janitor's business, never its error.
    client = docker_client()
    theirs = [
        client.containers.create(DockerSandbox().image, command=["sleep", "600"],
                                 labels={LABEL: "1", OWNER_LABEL: owner_id()})
        for _ in range(12)
    ]
    removing = threading.Thread(target=lambda: [container.remove(force=True) for container in theirs])
    removing.start()
    sweeps = []
    try:
        while removing.is_alive():
            sweeps.append(janitor(owner="a grading that left nothing behind"))
    finally:
        removing.join()
    assert sweeps and all(removed == [] for removed in sweeps)


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_the_janitor_takes_a_zombie_owner_for_a_dead_one(workspace: Path) -> None:
    owner = subprocess.Popen(["true"])  # ends at once, and stays a zombie until it is waited for
    try:
        deadline = time.monotonic() + 60
        while process_state(owner.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_state(owner.pid) == "Z"
        client = docker_client()
        leftover = client.containers.create(
            DockerSandbox().image, command=["sleep", "600"],
            labels={LABEL: "1", "org.cvgrade.owner": owner_id(owner.pid)},
        )
        assert leftover.short_id in janitor()
    finally:
        owner.wait()


def test_a_long_tmpdir_leaves_the_channel_socket_path_short(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Unix socket's path holds at most 107 bytes; the control folders do not follow TMPDIR.
    long_tmp = tmp_path / ("long-" + "x" * 120)
    long_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(long_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    session = WorkerSession(DockerSandbox(), worker_spec(workspace))
    try:
        assert call(session, "add", 1, 2) == 3
        assert list(long_tmp.iterdir()) == []
    finally:
        session.close()
    assert our_containers() == []


def test_the_control_root_is_a_private_folder_of_this_user(tmp_path: Path) -> None:
    root = control_root()
    assert root == Path(f"/tmp/cvgrade-ctl-{os.getuid()}")
    found = root.lstat()
    assert stat.S_ISDIR(found.st_mode) and found.st_uid == os.getuid() and stat.S_IMODE(found.st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    assert private_folder(loose) == loose and stat.S_IMODE(loose.stat().st_mode) == 0o700


def test_a_control_root_planted_by_someone_else_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    planted_link = tmp_path / "link"
    planted_link.symlink_to(target)
    with pytest.raises(SandboxUnavailable, match="is not a folder of this user"):
        private_folder(planted_link)
    planted_file = tmp_path / "file"
    planted_file.write_text("")
    with pytest.raises(SandboxUnavailable, match="is not a folder of this user"):
        private_folder(planted_file)
    if os.getuid() == 0:  # only root can make a folder that another user owns
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o777)
        os.chown(theirs, 65534, 65534)
        with pytest.raises(SandboxUnavailable, match="is not a folder of this user"):
            private_folder(theirs)


@pytest.mark.gpu
def test_a_gpu_challenge_sees_cuda_inside_the_container(workspace: Path) -> None:
    from harness.containers import engine_gpus

    if not engine_gpus(docker_client()):
        pytest.skip("this engine has no NVIDIA runtime (no GPU host)")
    spec = WorkerSpec(workspace=workspace, entry="solution.py", cells=None, functions=[], limits=Limits())
    session = WorkerSession(DockerSandbox(gpu="required"), spec)
    try:
        assert call(session, "cuda_available") is True
    finally:
        session.close()


def test_a_required_gpu_on_an_engine_without_one_is_a_clear_error() -> None:
    from harness.containers import engine_gpus
    from harness.sandbox import SandboxUnavailable

    if engine_gpus(docker_client()):
        pytest.skip("this engine has a GPU runtime")
    with pytest.raises(SandboxUnavailable, match="requires a GPU, but the Docker engine has no NVIDIA runtime"):
        DockerSandbox(gpu="required")


def test_a_replacement_started_for_a_lost_worker_and_never_used_is_removed(session: WorkerSession) -> None:
    assert failure_of(session, "exit_quietly").outcome is Outcome.CRASHED
    assert our_containers() == [], "the lost worker's container was left behind"
    assert session.replace_lost_worker()
    assert len(our_containers()) == 1, "the replacement was not started before the next call"
    session.settle()
    assert session.hello is not None  # the session fixture then closes it unused: it must be gone
