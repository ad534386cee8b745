"""Grading on a fleet: a real service, a real Redis and real ``cvgrade worker`` processes.

Every test submits through the API and checks, from the service's own audit log,
that each submission was recorded exactly once, whatever happened to the
workers or the broker on the way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.jobs.broker import make_celery
from tests.api.test_service_process import Service, finished, judges_of, team_and_candidate
from tests.fleet.conftest import Redis, Worker

pytestmark = [pytest.mark.slow, pytest.mark.fleet]
GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
VISIBILITY_TIMEOUT_S = 30.0  # well above a tiny grading on a loaded 2-core machine (about 8 s)


def checks(pause_s: float) -> str:
    return textwrap.dedent(f"""
        import time

        def test_adds(candidate):
            time.sleep({pause_s})
            assert candidate.add(1, 2) == 3, "add(1, 2) is wrong"
    """)


class Fleet:
    """A service that hands its gradings to the broker, and the workers that take them."""

    def __init__(self, tmp_path: Path, redis: Redis) -> None:
        self.tmp_path = tmp_path
        self.redis = redis
        self.service = Service(tmp_path / "data", tmp_path / "challenges", tmp_path / "serve.log")
        self.service.env.update(CVGRADE_BROKER_URL=redis.url, CVGRADE_NO_WORKER_S="8")
        self.workers: list[Worker] = []

    def add_worker(self, name: str, visibility_timeout_s: float = VISIBILITY_TIMEOUT_S) -> Worker:
        worker = Worker(self.redis.url, name, self.tmp_path / "challenges", self.tmp_path / f"{name}.log",
                        visibility_timeout_s=visibility_timeout_s)
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.tail()}" for w in self.workers) + f"\n--- service\n{self.service.tail()}"

    def wait_for(self, condition: Any, timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{self.logs()}"
            time.sleep(0.5)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.service.stop()


@pytest.fixture
def fleet(tmp_path: Path, redis: Redis) -> Iterator[Fleet]:
    running = Fleet(tmp_path, redis)
    try:
        yield running
    finally:
        running.stop()


def make_challenge(challenge_factory: Any, pause_s: float, *, gpu: str = "off") -> None:
    challenge_factory({"test_add.py": checks(pause_s)},
                      [{"name": "adds", "test": "test_add.py::test_adds", "points": 10, "gate": True}],
                      limits=f'gpu = "{gpu}"' if gpu != "off" else "")


def submit(candidate: httpx.Client, sources: list[str]) -> list[int]:
    ids = []
    for number, source in enumerate(sources):
        uploaded = candidate.post("/submissions", files={"file": (f"s{number}.py", source.encode())})
        assert uploaded.status_code == 202, uploaded.text
        ids.append(uploaded.json()["id"])
    return ids


def recorded_once(team: httpx.Client, submissions: list[int]) -> dict[str, int]:
    """How many times each submission's outcome was stored, from the audit log."""
    events = team.get("/audit-events", params={"limit": 1000}).json()
    counts = {f"submission {s}": 0 for s in submissions}
    for event in events:
        if event["action"] in ("job.done", "job.failed", "job.not_gradable") and event["subject"] in counts:
            counts[event["subject"]] += 1
    return counts


def all_finished(team: httpx.Client, submissions: list[int]) -> list[dict[str, Any]] | None:
    rows = [finished(team, s) for s in submissions]
    return rows if all(rows) else None  # type: ignore[return-value]


def test_twenty_jobs_on_two_workers_are_each_graded_exactly_once(fleet: Fleet, challenge_factory: Any) -> None:
    make_challenge(challenge_factory, 0.0)
    fleet.service.start()
    fleet.add_worker("alpha")
    fleet.add_worker("beta")
    team, candidate = team_and_candidate(fleet.service, max_attempts=50)
    sources = [GOOD if number % 2 == 0 else WRONG for number in range(20)]
    submissions = submit(candidate, sources)
    rows = fleet.wait_for(lambda: all_finished(team, submissions), 900, "20 gradings")
    assert [(row["state"], row["score"]) for row in rows] == [
        ("done", 10 if source == GOOD else 0) for source in sources]
    assert set(recorded_once(team, submissions).values()) == {1}
    graded_by = {team.get(f"/submissions/{s}/result").json()["environment"]["sandbox"]["backend"] for s in submissions}
    assert graded_by == {"local"}
    # Each worker's log names it (its whole log: the tail holds the last results, which are long).
    logs = [worker.log.read_text(errors="replace") for worker in fleet.workers]
    assert "alpha" in logs[0] or "beta" in logs[1]


def test_a_worker_killed_mid_grading_loses_no_job_and_records_none_twice(
    fleet: Fleet, challenge_factory: Any
) -> None:
    make_challenge(challenge_factory, 3.0)
    fleet.service.start()
    doomed = fleet.add_worker("doomed")
    team, candidate = team_and_candidate(fleet.service, max_attempts=50)
    submissions = submit(candidate, [GOOD] * 4)
    fleet.wait_for(lambda: judges_of(doomed.process.pid), 300, "the doomed worker to start grading")
    orphans = judges_of(doomed.process.pid)
    doomed.kill()
    for pid in orphans:  # its judge runs in a session of its own: end it too, as a host crash would
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    fleet.add_worker("survivor")
    rows = fleet.wait_for(lambda: all_finished(team, submissions), 900, "every grading after the kill")
    assert [(row["state"], row["score"]) for row in rows] == [("done", 10)] * 4
    assert set(recorded_once(team, submissions).values()) == {1}


def test_restarting_the_broker_mid_run_loses_nothing(fleet: Fleet, challenge_factory: Any) -> None:
    make_challenge(challenge_factory, 1.0)
    fleet.service.start()
    fleet.add_worker("alpha")
    team, candidate = team_and_candidate(fleet.service, max_attempts=50)
    submissions = submit(candidate, [GOOD] * 6)
    fleet.wait_for(lambda: finished(team, submissions[0]), 300, "the first grading")
    fleet.redis.restart()
    rows = fleet.wait_for(lambda: all_finished(team, submissions), 900, "every grading after the restart")
    assert [(row["state"], row["score"]) for row in rows] == [("done", 10)] * 6
    assert set(recorded_once(team, submissions).values()) == {1}


def test_a_gpu_job_with_only_cpu_workers_waits_with_a_reason_then_fails_uncharged(
    fleet: Fleet, challenge_factory: Any
) -> None:
    make_challenge(challenge_factory, 0.0, gpu="required")
    fleet.service.start()
    fleet.add_worker("cpu-only")
    team, candidate = team_and_candidate(fleet.service, max_attempts=5)
    (submission,) = submit(candidate, [GOOD])
    waiting = fleet.wait_for(lambda: team.get(f"/submissions/{submission}").json()["note"], 120, "a waiting note")
    assert "waiting for a worker with a GPU" in waiting
    row = fleet.wait_for(lambda: finished(team, submission), 120, "the no-capable-worker time-out")
    assert row["state"] == "failed" and not row["charged"]
    assert "no capable worker" in row["error"]


KILL_THE_WORKER = textwrap.dedent("""
    import os, signal

    def _parent_of(pid):
        with open(f"/proc/{pid}/status") as status:
            return int(next(line.split()[1] for line in status if line.startswith("PPid:")))

    def test_adds(candidate):
        # Trusted code gone wrong (or a host that runs out of memory): the grading kills its worker,
        # the process that graded: this judge's parent, or its warm judge server's parent.
        parent = os.getppid()
        with open(f"/proc/{parent}/cmdline", "rb") as command:
            if b"grader.judge.forkserver" in command.read():
                parent = _parent_of(parent)
        os.kill(parent, signal.SIGKILL)
""")


def test_a_job_that_keeps_killing_its_worker_is_stopped_after_three_tries(
    fleet: Fleet, challenge_factory: Any
) -> None:
    challenge_factory({"test_add.py": KILL_THE_WORKER},
                      [{"name": "adds", "test": "test_add.py::test_adds", "points": 10}])
    fleet.service.start()
    team, candidate = team_and_candidate(fleet.service, max_attempts=5)
    (submission,) = submit(candidate, [GOOD])
    restarts = 0

    def outcome_after_restarting_dead_workers() -> dict[str, Any] | None:
        nonlocal restarts
        if not any(worker.process.poll() is None for worker in fleet.workers):
            restarts += 1  # what systemd or compose's restart policy would do
            fleet.add_worker(f"worker-{restarts}", visibility_timeout_s=4.0)  # no healthy grading to cut short
        return finished(team, submission)

    row = fleet.wait_for(outcome_after_restarting_dead_workers, 900, "the job to be given up")
    assert row["state"] == "failed" and not row["charged"]
    assert "stopped after 3 tries" in row["error"]
    assert restarts == 4  # three deliveries killed a worker; the fourth worker refused to grade it
    assert recorded_once(team, [submission]) == {f"submission {submission}": 1}


def test_sigterm_lets_the_running_grading_finish(fleet: Fleet, challenge_factory: Any) -> None:
    make_challenge(challenge_factory, 4.0)
    fleet.service.start()
    worker = fleet.add_worker("leaving")
    team, candidate = team_and_candidate(fleet.service, max_attempts=5)
    (submission,) = submit(candidate, [GOOD])
    fleet.wait_for(lambda: judges_of(worker.process.pid), 300, "the grading to start")
    worker.process.terminate()  # SIGTERM: Celery's warm shutdown
    assert worker.process.wait(timeout=300) == 0, worker.tail()
    row = fleet.wait_for(lambda: finished(team, submission), 120, "the result of the grading that was finishing")
    assert (row["state"], row["score"]) == ("done", 10)
    assert recorded_once(team, [submission]) == {f"submission {submission}": 1}


def test_cvgrade_fleet_shows_workers_hardware_and_queue_depth(fleet: Fleet, challenge_factory: Any) -> None:
    import json
    import subprocess

    from tests.fleet.conftest import CVGRADE

    make_challenge(challenge_factory, 0.0)
    fleet.add_worker("watcher")

    def view() -> dict[str, Any] | None:
        done = subprocess.run([str(CVGRADE), "fleet", "--broker", fleet.redis.url, "--json"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        shown: dict[str, Any] = json.loads(done.stdout)
        return shown if shown["workers"] else None

    shown = fleet.wait_for(view, 120, "the worker to advertise itself")
    (entry,) = shown["workers"]
    assert (entry["name"], entry["hardware_class"], entry["queues"]) == ("watcher", "cpu", ["grade.cpu"])
    assert shown["queue_depth"] == {"grade.cpu": 0, "grade.gpu": 0}
    table = subprocess.run([str(CVGRADE), "fleet", "--broker", fleet.redis.url], capture_output=True, text=True,
                           timeout=120, check=False).stdout
    assert "watcher" in table and "queued: grade.cpu: 0, grade.gpu: 0" in table


@pytest.mark.parametrize(("visibility_timeout_s", "interval_s"), [(4.0, 1), (30.0, 8), (3600.0, 10)])
def test_a_dead_workers_job_is_looked_for_every_quarter_of_the_visibility_timeout(
    visibility_timeout_s: float, interval_s: int
) -> None:
    # Kombu's defaults scan Redis for such jobs only every 10 x 10 s: up to 100 s past the timeout.
    app = make_celery("redis://127.0.0.1:9/0", visibility_timeout_s=visibility_timeout_s)
    options = app.conf.broker_transport_options
    assert options["visibility_timeout"] == visibility_timeout_s
    assert options["unacked_restore_interval"] == interval_s and options["unacked_restore_throttle"] == 1
