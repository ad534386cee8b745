"""The fleet's throughput (1 and 2 workers) and the latency the Celery path adds over the embedded one.

Everything is real: a ``cvgrade serve`` process (SQLite), a redis-server on a
free loopback port, ``cvgrade worker`` processes with the local sandbox, and
``iou`` reference submissions uploaded through the API.

- throughput: ``--count`` gradings (default 40) with 1 worker, then with 2,
  from the first upload to the last result; the ratio is what matters (this
  machine has 2 cores, so 2 workers also share them);
- added latency per job: ``--latency-jobs`` gradings one at a time, upload to
  result, on the embedded path (``serve`` grading in-process) and on the fleet
  path (``serve --broker`` plus one worker), alternated.

Usage: python bench/fleet.py [--count 40] [--latency-jobs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.api.test_service_process import Service, finished  # noqa: E402
from tests.fleet.conftest import Redis, Worker  # noqa: E402

REFERENCE = (REPO / "challenges" / "iou" / "reference" / "solution.py").read_bytes()


def team_and_candidate(service: Service) -> tuple[Any, Any]:
    import httpx

    key = service.admin("create-team", "bench").strip().splitlines()[-1]
    team = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    deadline = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = team.post("/invitations", json={"challenge_id": "iou", "candidate": "bench@example.com",
                                              "deadline": deadline, "max_attempts": 100})
    assert created.status_code == 201, created.text
    candidate = httpx.Client(base_url=f"{service.url}/candidate",
                             headers={"Authorization": f"Bearer {created.json()['token']}"}, timeout=60)
    return team, candidate


def upload(candidate: Any, number: int) -> int:
    body = REFERENCE + f"\n# submission {number}\n".encode()
    response = candidate.post("/submissions", files={"file": (f"s{number}.py", body)})
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def wait(condition: Callable[[], Any], timeout_s: float = 3600, poll_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError("the benchmark's gradings did not finish")


def started_service(folder: Path, broker: str | None) -> Service:
    folder.mkdir(parents=True, exist_ok=True)
    service = Service(folder / "data", REPO / "challenges", folder / "serve.log")
    service.env["CVGRADE_JOB_HEARTBEAT_S"] = "5"
    service.env["CVGRADE_JOB_STALE_S"] = "600"
    if broker:
        service.env["CVGRADE_BROKER_URL"] = broker
    service.start()
    return service


def throughput(count: int, workers: int) -> float:
    """Gradings per minute with ``workers`` fleet workers."""
    with tempfile.TemporaryDirectory(prefix="cvgrade-bench-") as name:
        folder = Path(name)
        redis = Redis(folder / "redis")
        redis.start()
        service = started_service(folder, redis.url)
        fleet = [Worker(redis.url, f"w{i}", REPO / "challenges", folder / f"w{i}.log", visibility_timeout_s=3600)
                 for i in range(workers)]
        try:
            team, candidate = team_and_candidate(service)
            time.sleep(8)  # the workers import torch and connect before the clock starts
            started = time.monotonic()
            ids = [upload(candidate, n) for n in range(count)]
            rows = [wait(lambda s=s: finished(team, s)) for s in ids]
            elapsed = time.monotonic() - started
            assert all(row["state"] == "done" and row["passed"] for row in rows), rows
            return 60.0 * count / elapsed
        finally:
            for worker in fleet:
                worker.stop()
            service.stop()
            redis.stop()


def latencies(jobs: int) -> dict[str, list[float]]:
    """Upload-to-result seconds of one grading at a time, embedded and fleet, alternated."""
    samples: dict[str, list[float]] = {"embedded": [], "fleet": []}
    with tempfile.TemporaryDirectory(prefix="cvgrade-bench-") as name:
        folder = Path(name)
        redis = Redis(folder / "redis")
        redis.start()
        embedded = started_service(folder / "embedded", None)
        fleet = started_service(folder / "fleet", redis.url)
        worker = Worker(redis.url, "w0", REPO / "challenges", folder / "w0.log", visibility_timeout_s=3600)
        try:
            clients = {"embedded": team_and_candidate(embedded), "fleet": team_and_candidate(fleet)}
            time.sleep(8)
            for number in range(jobs + 1):  # the first round warms both paths and is not counted
                for path, (team, candidate) in clients.items():
                    started = time.monotonic()
                    submission = upload(candidate, number)
                    row = wait(lambda t=team, s=submission: finished(t, s))
                    assert row["state"] == "done", row
                    if number:
                        samples[path].append(time.monotonic() - started)
        finally:
            worker.stop()
            embedded.stop()
            fleet.stop()
            redis.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--latency-jobs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    one = throughput(args.count, 1)
    two = throughput(args.count, 2)
    lat = latencies(args.latency_jobs)
    embedded, fleet = statistics.median(lat["embedded"]), statistics.median(lat["fleet"])
    report = {
        "count": args.count,
        "per_minute_1_worker": round(one, 2), "per_minute_2_workers": round(two, 2),
        "speedup_2_over_1": round(two / one, 3),
        "latency_embedded_median_s": round(embedded, 3), "latency_fleet_median_s": round(fleet, 3),
        "fleet_added_s": round(fleet - embedded, 3), "latency_samples": lat,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
