"""Cores: every worker pinned to ``cpu_threads`` of them, and timed work moved onto cores of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.containers import DockerSandbox
from harness.cores import CorePlan, claim_cores, plan_cores
from harness.local import LocalSandbox
from harness.sandbox import Limits, WorkerSpec
from harness.session import WorkerSession

AFFINITY = "import os\n\ndef cores():\n    return sorted(os.sched_getaffinity(0))\n"


@pytest.mark.parametrize(("threads", "cores", "slot", "resources", "timed", "shared"), [
    pytest.param(1, range(2), 0, 1, (), (0, 1), id="2 cores, 1 thread: too few to keep a core apart"),
    pytest.param(1, range(3), 0, 1, (2,), (0, 1), id="3 cores: the last one timed"),
    pytest.param(1, range(16), 0, 1, (15,), tuple(range(15)), id="16 cores"),
    pytest.param(2, range(16), 0, 1, (14, 15), tuple(range(14)), id="16 cores, 2 threads"),
    pytest.param(1, range(16), 0, 3, (15,), tuple(range(13)), id="16 cores, 2 GPUs: the CPU lock's block"),
    pytest.param(1, range(16), 2, 3, (13,), tuple(range(13)), id="16 cores, 2 GPUs: GPU 1's block"),
    pytest.param(1, range(4), 2, 3, (2,), (0, 1), id="4 cores, 2 GPUs: one block, which later slots share"),
    pytest.param(4, range(8), 0, 1, (), tuple(range(8)), id="8 cores, 4 threads: too few"),
    pytest.param(1, (3, 5, 9), 0, 1, (9,), (3, 5), id="the cores this process may use, not 0..n-1"),
])
def test_the_host_is_split_into_timed_and_shared_cores(
    threads: int, cores: range | tuple[int, ...], slot: int, resources: int,
    timed: tuple[int, ...], shared: tuple[int, ...],
) -> None:
    plan = plan_cores(threads, cores, resource_slot=slot, resources=resources)
    assert (plan.timed, plan.shared) == (timed, shared)
    assert plan.apart == bool(timed)


def test_each_claim_takes_the_least_used_cores_and_releasing_frees_them(tmp_path: Path) -> None:
    first = claim_cores((0, 1, 2), 1, folder=tmp_path)
    second = claim_cores((0, 1, 2), 2, folder=tmp_path)
    assert (first.cores, second.cores) == ((0,), (1, 2))
    third = claim_cores((0, 1, 2), 1, folder=tmp_path)
    assert third.cores == (0,)  # every core has one holder now: the lowest number
    first.release()
    third.release()
    assert claim_cores((0, 1, 2), 1, folder=tmp_path).cores == (0,)
    second.release()


def test_a_claim_of_a_process_that_died_counts_for_nothing(tmp_path: Path) -> None:
    (tmp_path / "core-0.deadbeef0000").write_text("")  # left by a judge that was killed: nobody locks it
    assert claim_cores((0, 1), 1, folder=tmp_path).cores == (0,)
    assert not (tmp_path / "core-0.deadbeef0000").exists()


class TwoCoreSplit:
    """A backend whose plan keeps core 1 for timed work even on a 2-core machine, to watch the move."""

    def core_plan(self) -> CorePlan:
        return CorePlan(timed=(1,), shared=(0,))


class SplitLocalSandbox(TwoCoreSplit, LocalSandbox):
    pass


class SplitDockerSandbox(TwoCoreSplit, DockerSandbox):
    pass


@pytest.fixture
def affinity_session(workspace: Path, backend: str) -> Iterator[WorkerSession]:
    (workspace / "solution.py").write_text(AFFINITY)
    spec = WorkerSpec(workspace=workspace, entry="solution.py", cells=None, functions=[],
                      limits=Limits(memory_mb=1024, cpu_threads=1))
    sandbox = SplitDockerSandbox() if backend == "docker" else SplitLocalSandbox("bwrap")
    session = WorkerSession(sandbox, spec)  # type: ignore[arg-type]
    yield session
    session.close()


def test_a_timed_check_moves_the_workers_onto_the_timed_cores_and_back(affinity_session: WorkerSession) -> None:
    sandbox = affinity_session._sandbox
    assert affinity_session.call("cores", [], {}, 240).value == [0]
    with sandbox.timed_cores():  # type: ignore[attr-defined]
        assert affinity_session.call("cores", [], {}, 120).value == [1]
        affinity_session.close()  # a worker restarted during the timed check starts there too
        assert affinity_session.call("cores", [], {}, 240).value == [1]
    assert affinity_session.call("cores", [], {}, 120).value == [0]


class NoTimedBlock:
    def core_plan(self) -> CorePlan:
        return CorePlan(timed=(), shared=(0, 1))


class SmallLocalSandbox(NoTimedBlock, LocalSandbox):
    pass


class SmallDockerSandbox(NoTimedBlock, DockerSandbox):
    pass


def test_without_timed_cores_a_timed_check_puts_both_workers_on_the_same_cores(
    workspace: Path, backend: str
) -> None:
    """On a host too small for timed cores, the candidate and the reference share one worker's cores
    while timed: a busy neighbour on one core then slows both sides of every paired round alike."""
    (workspace / "solution.py").write_text(AFFINITY)
    spec = WorkerSpec(workspace=workspace, entry="solution.py", cells=None, functions=[],
                      limits=Limits(memory_mb=1024, cpu_threads=1))
    sandbox = SmallDockerSandbox() if backend == "docker" else SmallLocalSandbox("bwrap")
    sessions = [WorkerSession(sandbox, spec) for _ in range(2)]  # type: ignore[arg-type]
    try:
        apart = [session.call("cores", [], {}, 240).value for session in sessions]
        assert all(len(cores) == 1 for cores in apart)
        with sandbox.timed_cores():
            together = [session.call("cores", [], {}, 120).value for session in sessions]
            assert together[0] == together[1] == apart[0]
        assert [session.call("cores", [], {}, 120).value for session in sessions] == apart
    finally:
        for session in sessions:
            session.close()
