"""More CPU than granted (ATTACKS.md; issue 13, F6): a worker runs on ``cpu_threads`` cores it cannot widen.

``submissions/burst_on_every_core.py`` reports from inside the sandbox, in every check, the
cores it may run on (before and after asking for all of them) and how many CPU seconds per
second two threads hashing at once get. It is graded by the real grader on ``iou``
(``cpu_threads = 1``) under both production backends. A fair grader pins the worker to one
core, which it cannot widen, so a second thread gets no more CPU; on a host with enough cores
the timed check (``box_iou_speed``) runs on the grading's timed cores, which no untimed worker
uses (``environment.sandbox.cores`` says which are which; the move itself is also shown on a
2-core machine in ``tests/harness/test_cores.py``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from grader.challenge import Challenge, load_challenge
from grader.grading import GradeOptions, grade_submission
from grader.results import GradeResult
from harness.cores import SHARED_BLOCKS_AT_LEAST

HERE = Path(__file__).resolve().parent
IOU_DIR = HERE.parent.parent / "challenges" / "iou"
IOU = load_challenge(IOU_DIR)
REPORT = re.compile(r"affinity=(\S+) widened=(\S+) widen_attempt=.* cpu_per_wall=([0-9.]+)")
# Threads on one core get at most one CPU second per second (measured with the process's own clocks).
MOST_CPU_PER_WALL_ON_ONE_CORE = 1.1

pytestmark = pytest.mark.slow


def copy_with_setup_time(source: Path, into: Path, setup_timeout_s: int = 180) -> Challenge:
    target = into / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    toml = target / "challenge.toml"
    toml.write_text(toml.read_text().replace("[limits]\n", f"[limits]\nsetup_timeout_s = {setup_timeout_s}\n", 1))
    return load_challenge(target)


@pytest.fixture(scope="module")
def patient_iou(tmp_path_factory: pytest.TempPathFactory) -> Challenge:
    """``iou`` with 3 minutes to import (a busy shared machine takes more than one): the cores are under test."""
    return copy_with_setup_time(IOU_DIR, tmp_path_factory.mktemp("challenges"))


@pytest.fixture(scope="module")
def graded() -> dict[str, GradeResult]:
    return {}


@pytest.fixture
def result(graded: dict[str, GradeResult], backend: str, patient_iou: Challenge) -> GradeResult:
    if backend not in graded:
        options = GradeOptions(backend=backend, isolation="bwrap")  # type: ignore[arg-type]
        graded[backend] = grade_submission(HERE / "submissions" / "burst_on_every_core.py", patient_iou, options)
    outcome = graded[backend]
    assert (outcome.status, outcome.error) == ("graded", None), outcome.error
    return outcome


def reports(result: GradeResult) -> dict[str, tuple[set[int], set[int], float]]:
    """Per check: the cores the worker saw, the cores after it asked for every core, CPU s per wall s."""
    found = {}
    for test in result.tests:
        match = REPORT.search(test.output)
        assert match, f"{test.name}: no report in {test.output[:300]!r}"
        affinity, widened, cpu_per_wall = match.groups()
        found[test.name] = ({int(c) for c in affinity.split(",")}, {int(c) for c in widened.split(",")},
                            float(cpu_per_wall))
    return found


def test_every_worker_runs_on_cpu_threads_cores_and_cannot_widen_them(result: GradeResult) -> None:
    for check, (affinity, widened, _) in reports(result).items():
        assert len(affinity) == IOU.spec.limits.cpu_threads, f"{check}: the worker may run on cores {affinity}"
        assert widened == affinity, f"{check}: asking for every core widened {affinity} to {widened}"


def test_a_timed_check_runs_on_the_timed_cores_and_the_others_on_the_shared_ones(result: GradeResult) -> None:
    cores = result.environment["sandbox"]["cores"]
    timed, shared = set(cores["timed"]), set(cores["shared"])
    seen = reports(result)
    for check, (affinity, _, _) in seen.items():
        if check != "box_iou_speed" or not cores["apart"]:
            assert affinity <= shared, f"{check} ran on {affinity}, the shared cores are {shared}"
    if cores["apart"]:  # hosts with at least 3 * cpu_threads cores (harness/cores.py)
        assert seen["box_iou_speed"][0] <= timed and not timed & shared
    else:  # this project's 2-core machines: no core kept for timed work, every worker still pinned
        assert len(timed | shared) < (1 + SHARED_BLOCKS_AT_LEAST) * IOU.spec.limits.cpu_threads


def test_a_second_thread_gets_no_more_cpu(result: GradeResult) -> None:
    for check, (_, _, cpu_per_wall) in reports(result).items():
        assert cpu_per_wall < MOST_CPU_PER_WALL_ON_ONE_CORE, (
            f"{check}: two threads got {cpu_per_wall:.2f} CPU seconds per second")
