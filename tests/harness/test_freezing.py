"""Freezing a worker: while the judge times the reference, nothing of the candidate's may run.

The candidate below starts a spinning thread in its own process and a spinning child
process, each counting as fast as it can into a file in its scratch space. Progress is
compared in counts, not in times: a frozen worker's counters must barely move (only in the
moments between reading them and the freeze taking hold), while the same wait unfrozen
moves them a great deal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import cgroups
from harness.local import LocalSandbox
from harness.sandbox import Limits, WorkerSpec
from harness.session import WorkerSession

SPINNER = '''
import os, threading

COUNTERS = {"thread": "/tmp/thread-count", "child": "/tmp/child-count"}


def _spin(path):
    count = 0
    while True:
        count += 1
        if count % 20000 == 0:
            with open(path + ".new", "w") as out:
                out.write(str(count))
            os.replace(path + ".new", path)


def start():
    threading.Thread(target=_spin, args=(COUNTERS["thread"],), daemon=True).start()
    if os.fork() == 0:
        _spin(COUNTERS["child"])
    return True


def counts():
    found = {}
    for name, path in COUNTERS.items():
        try:
            with open(path) as counter:
                found[name] = int(counter.read() or 0)
        except (OSError, ValueError):
            found[name] = 0
    return found
'''
WAIT_S = 2.0


def spinner_session(tmp_path: Path, backend: str) -> WorkerSession:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "solution.py").write_text(SPINNER)
    for path in (tmp_path, workspace, workspace / "solution.py"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    spec = WorkerSpec(workspace=workspace, entry="solution.py", cells=None, functions=[],
                      limits=Limits(memory_mb=1024, cpu_threads=2, scratch_mb=16))
    if backend == "docker":
        from harness.containers import DockerSandbox

        return WorkerSession(DockerSandbox(), spec)
    sandbox = LocalSandbox("bwrap")
    if sandbox._cgroup_version is None:
        pytest.skip("no writable cgroup hierarchy: the local backend has no freezer here")
    return WorkerSession(sandbox, spec)


@pytest.fixture
def spinner(tmp_path: Path, backend: str) -> Iterator[WorkerSession]:
    session = spinner_session(tmp_path, backend)
    yield session
    session.close()


def counts(session: WorkerSession) -> dict[str, int]:
    value = session.call("counts", [], {}, 30).value
    assert isinstance(value, dict)
    return {str(k): int(v) for k, v in value.items()}


def progress(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in before}


def test_a_frozen_worker_and_its_children_make_no_progress(spinner: WorkerSession) -> None:
    spinner.call("start", [], {}, 30)
    time.sleep(0.5)  # let both spinners write their first counts
    first = counts(spinner)
    time.sleep(WAIT_S)
    running = progress(first, second := counts(spinner))
    with spinner.frozen() as how:
        time.sleep(WAIT_S)
    frozen = progress(second, counts(spinner))
    assert how.startswith("frozen ("), how
    assert all(running[name] > 0 for name in running), f"the spinners did not run: {running}"
    for name in running:
        assert frozen[name] * 4 < running[name], (
            f"the {name} spinner counted {frozen[name]} while frozen against {running[name]} running ({how})"
        )
    # Thawed, it runs again.
    time.sleep(WAIT_S)
    assert all(n > 0 for n in progress(second, counts(spinner)).values())


def test_a_frozen_worker_cannot_be_called_and_dies_cleanly(spinner: WorkerSession) -> None:
    spinner.call("start", [], {}, 30)
    with spinner.frozen():
        with pytest.raises(RuntimeError, match="frozen"):
            spinner.call("counts", [], {}, 5)
        spinner.close()  # killing a frozen worker must not hang
    assert not spinner.running


@pytest.mark.parametrize("backend", ["docker"])
def test_a_pause_that_took_hold_despite_the_engines_error_is_still_undone(spinner: WorkerSession) -> None:
    """The engine can answer ``docker pause`` with an error after the container was paused
    (a time-out); asked again it answers "already paused". The freeze must go by the
    container's state: report it frozen and unpause it when the block ends, never leave a
    paused container for the next call to wait on. Here the container is paused from
    outside first, so every pause the freeze asks for gets that answer."""
    spinner.call("start", [], {}, 30)
    worker = spinner._worker
    assert worker is not None
    container = worker._container  # type: ignore[attr-defined]
    container.pause()  # as an earlier attempt whose answer was lost would have
    with spinner.frozen() as how:
        container.reload()
        assert container.attrs["State"]["Paused"] is True
    assert how == "frozen (docker pause)", how
    container.reload()
    assert container.attrs["State"]["Paused"] is False, "the freeze left the container paused"
    before = counts(spinner)
    time.sleep(0.5)
    assert all(n > 0 for n in progress(before, counts(spinner)).values()), "the thawed worker does not run"


def test_an_idle_session_has_nothing_to_freeze(tmp_path: Path, backend: str) -> None:
    session = spinner_session(tmp_path, backend)
    try:
        with session.frozen() as how:
            assert how == "not running"
    finally:
        session.close()


def test_a_worker_too_slow_to_load_its_runtime_is_our_failure_not_a_slow_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine so busy that Python and torch do not load in time: no code of the candidate's ran,
    so it must not read "your solution could not be imported". Simulated by freezing the worker
    as soon as it starts (a real freeze of a real worker), with a short runtime limit."""
    from harness import session as session_module
    from harness.sandbox import SandboxUnavailable

    monkeypatch.setattr(session_module, "RUNTIME_START_S", 2.0)
    session = spinner_session(tmp_path, "local")
    worker = session._sandbox.start(session._spec)
    try:
        worker.freeze()
    except Exception as err:  # any reason this machine cannot freeze
        worker.kill()
        pytest.skip(f"cannot freeze here: {err}")
    session.adopt(worker)
    try:
        with pytest.raises(SandboxUnavailable, match="did not finish loading Python and torch within 2 s"):
            session.call("counts", [], {}, 10)
    finally:
        session.close()


def test_the_worker_groups_of_a_judge_killed_while_one_was_frozen_are_emptied_and_removed() -> None:
    """A judge killed mid-check cannot thaw its frozen worker, and a frozen process never acts on its
    sandbox's death signal: the grader empties and removes that judge's groups (``run-<judge pid>-...``)."""
    if cgroups.detect() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("cgroups are required under CI=true")
        pytest.skip("no writable cgroup hierarchy here")
    judge_pid = 4_000_000 + os.getpid()  # a name only: no live judge's groups are touched
    group = cgroups.Cgroup(256, 16, prefix=cgroups.worker_group_prefix(judge_pid))
    joins = " && ".join(f"echo $$ > {path}" for path in group.procs_files)
    worker = subprocess.Popen(["/bin/sh", "-c", f"{joins} && exec sleep 600"])
    try:
        deadline = time.monotonic() + 10
        while worker.pid not in group.pids():
            assert time.monotonic() < deadline, "the stand-in worker never joined its group"
            time.sleep(0.01)
        if group.freezer is None:
            pytest.skip("no cgroup freezer here")
        group.freeze()
        os.kill(worker.pid, signal.SIGKILL)  # what its sandbox does when the judge dies: not acted on
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=0.5)
        assert cgroups.remove_worker_groups_of(judge_pid) == 1
        assert worker.wait(timeout=10) == -signal.SIGKILL
        assert not any(directory.exists() for directory in group.dirs)
    finally:
        if worker.poll() is None:
            group.remove()
            worker.wait()
