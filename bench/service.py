"""The service's HTTP side under load: reads, listing, and a 200 MB upload, on SQLite and PostgreSQL.

For each database (SQLite in a fresh data folder; PostgreSQL in a throwaway
cluster started here from Debian's ``postgresql``, as tests/api/conftest.py
does) it seeds one team with 100 invitations and 1,000 graded submissions to
``iou`` (each result a realistic body: its 10 checks, metrics, a 200-sample
latency distribution and two gauges), starts the service as ``cvgrade serve``
does (uvicorn, one process; the grading workers off, so only HTTP is measured)
and measures from this process, over loopback:

- **read a result**: ``GET /api/v1/submissions/{id}/result``, ids in turn;
- **list 1,000 submissions**: ``GET /api/v1/challenges/iou/submissions``;

each with 50, 10 and 1 concurrent clients (closed loop: each sends its next
request when the last is answered, over its own keep-alive connection),
``--seconds`` each after a 2 s warm-up: requests per second, p50/p95/p99
latency, and the server's CPU time per request. Before that, once (SQLite, on
a fresh server): uploads of 20 MB and 200 MB, streamed as
``application/octet-stream`` and as multipart, with the server's upload cap
raised to 250 MiB and the grader's content limits lifted in the benchmark's
server only (they refuse more than 100 MiB): time to the answer and the
server's peak resident memory (RSS, polled every 10 ms from ``/proc``) over its
RSS before the upload.

The load generator is a small asyncio HTTP/1.1 client (no library overhead in
the measured latency); it shares the machine's cores with the server.

Usage: python bench/service.py [--seconds 10] [--clients 50] [--database sqlite|postgresql|both]
                               [--upload-mb 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SUBMISSIONS, INVITATIONS = 1000, 100


# -- the databases ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL on a free loopback port (Debian's binaries), removed afterwards."""
    import psycopg

    binaries = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
                     if (p / "initdb").is_file()), None)
    if binaries is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    user = "postgres" if os.geteuid() == 0 else None  # it refuses to run as root
    folder = Path(tempfile.mkdtemp(prefix="cvgrade-bench-postgres-"))
    if user:
        shutil.chown(folder, user)
    port = free_port()
    subprocess.run([binaries / "initdb", "-D", folder / "data", "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--locale=C", "--no-sync"], user=user, check=True, capture_output=True)
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [binaries / "postgres", "-D", folder / "data", "-p", str(port), "-k", folder,
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
            user=user, stdout=log, stderr=subprocess.STDOUT)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "server.log").read_text()[-2000:]
                    raise SystemExit(f"PostgreSQL did not start: {log}") from None
                time.sleep(0.2)
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def sample_result() -> dict[str, Any]:
    """A result as the grader makes it for the iou reference: every check, metrics, charts."""
    from grader.challenge import load_challenge
    from grader.judge.contracts import CheckRecord
    from grader.results import build_result
    from grader.scoring import score_checks

    challenge = load_challenge("iou")
    records = {check.test: {"passed": True, "outcome": "ok", "message": "", "detail": "", "duration_s": 0.05,
                            "metrics": {f"{check.name}.ms": 12.5}} for check in challenge.spec.checks}
    read = {test: CheckRecord.model_validate({"nodeid": test, **fields}) for test, fields in records.items()}
    verdict = score_checks(challenge.spec.checks, read, challenge.spec.challenge.pass_mark)
    samples = [4.0 + (index % 37) * 0.11 for index in range(200)]
    charts = [
        {"check": "box_iou_speed", "kind": "distribution", "title": "latency per call", "unit": "ms",
         "label": "submission", "values": samples, "target": 10.0, "baseline": [s * 2 for s in samples],
         "baseline_label": "reference"},
        {"check": "nms_speed", "kind": "gauge", "title": "speed-up", "unit": "x", "value": 2.1, "threshold": 1.5,
         "higher_is_better": True, "maximum": None},
        {"check": "nms_speed", "kind": "gauge", "title": "time used", "unit": "s", "value": 4.2, "threshold": 60.0,
         "higher_is_better": False, "maximum": None},
    ]
    metrics: dict[str, Any] = {"worker_starts": 2}
    for record in records.values():
        metrics.update(record["metrics"])
    result = build_result(
        verdict, metrics=metrics, limits=challenge.spec.limits.model_dump(),
        environment={"cpu": "bench", "python": sys.version.split()[0], "sandbox": {"backend": "local"}},
        challenge={"id": challenge.id, "version": challenge.version, "title": challenge.spec.challenge.title,
                   "checks": "hidden"},
        submission={"name": "solution.py", "kind": "py", "sha256": "0" * 64, "size_bytes": 2048},
        feedback=[], duration_s=5.7, charts=charts)
    return result.model_dump(mode="json")


def seed(database_url: str) -> str:
    """A team, its invitations and 1,000 graded submissions; returns the team's API key."""
    from api.db import Database, migrate
    from api.models import Invitation, Job, Result, Submission
    from api.teams import create_team
    from grader.challenge import load_challenge

    version = load_challenge("iou").version
    body = sample_result()
    now = datetime.now(UTC)
    database = Database(database_url)
    migrate(database)
    with database.write() as session:
        team, _, key = create_team(session, "bench", now)
        invitations = []
        for number in range(INVITATIONS):
            invitation = Invitation(
                team_id=team.id, challenge_id="iou", challenge_version=version, candidate=f"c{number}@example.com",
                deadline=now + timedelta(days=30), expires_at=now + timedelta(days=60), max_attempts=20,
                token_sha256=f"{number:064x}", revoked_at=None, created_at=now)
            session.add(invitation)
            invitations.append(invitation)
        session.flush()
        for number in range(SUBMISSIONS):
            submission = Submission(
                invitation_id=invitations[number % INVITATIONS].id, team_id=team.id, challenge_id="iou",
                challenge_version=version, filename=f"solution_{number}.py", kind="py", sha256=f"{number:064x}",
                size_bytes=2048, store_key=f"{number:064x}", idempotency_key=None, charged=True, created_at=now)
            session.add(submission)
            session.add(Job(submission=submission, state="done", runs=1, claimed_by="bench", heartbeat_at=now,
                            started_at=now, finished_at=now, created_at=now))
            session.add(Result(submission=submission, status="graded", score=100.0, max_score=100.0, passed=True,
                               body=body, created_at=now))
        session.commit()
    database.dispose()
    return key


# -- the server ---------------------------------------------------------------------------------

def serve(data_dir: Path, database_url: str, port: int, max_upload_mb: int) -> None:
    """What ``cvgrade serve`` runs, without the grading workers, and with the grader's content limits
    lifted so a 200 MB file can be accepted (the benchmark's server only)."""
    import functools

    import uvicorn

    import api.routes.candidate as candidate_routes
    from api.app import create_app
    from api.config import resolve_settings
    from grader.archive import WorkspaceLimits
    from grader.workspace import prepare_workspace

    lifted = WorkspaceLimits(max_total_bytes=1024 * 2**20, max_file_bytes=1024 * 2**20)
    candidate_routes.prepare_workspace = functools.partial(prepare_workspace, limits=lifted)  # type: ignore[assignment]
    settings = resolve_settings(data_dir=data_dir, database_url=database_url, max_upload_mb=max_upload_mb)
    uvicorn.run(create_app(settings, workers=False), host="127.0.0.1", port=port, log_level="warning")


class Server:
    def __init__(self, data_dir: Path, database_url: str, max_upload_mb: int) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "serve", str(data_dir), database_url, str(self.port), str(max_upload_mb)])
        deadline = time.monotonic() + 60
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the service did not start")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
            conn.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return conn.recv(64).startswith(b"HTTP/1.1 200")
        return False

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        """CPU time the server process has used, user and system, in seconds."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the load -----------------------------------------------------------------------------------

async def _client(port: int, key: str, paths: list[str], offset: int, stop_at: float, warm_until: float,
                  latencies: list[float]) -> tuple[int, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    requests = [f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
                for path in paths]
    index, failures = offset, 0
    try:
        while (now := time.perf_counter()) < stop_at:
            writer.write(requests[index % len(requests)])
            index += 1
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            if status != 200:
                failures += 1
            if now >= warm_until:
                latencies.append(time.perf_counter() - now)
    finally:
        writer.close()
    return index - offset, failures


def load(server: Server, key: str, paths: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``seconds`` after a 2 s warm-up: throughput and latency, and the
    server's CPU time per request (user and system, warm-up included: steadier than latency on a busy machine)."""
    latencies: list[float] = []

    async def run() -> tuple[int, int]:
        start = time.perf_counter()
        warm_until, stop_at = start + 2.0, start + 2.0 + seconds
        counts = await asyncio.gather(*(_client(server.port, key, paths, n * 7, stop_at, warm_until, latencies)
                                        for n in range(clients)))
        return sum(sent for sent, _ in counts), sum(failed for _, failed in counts)

    cpu_before = server.cpu_s()
    sent, failures = asyncio.run(run())
    cpu_ms = round(1000 * (server.cpu_s() - cpu_before) / max(sent, 1), 2)
    ordered = sorted(latencies)
    if not ordered:
        return {"clients": clients, "requests": 0, "failures": failures, "note": "nothing answered in time"}

    def pct(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"clients": clients, "requests": len(ordered), "failures": failures,
            "rps": round(len(ordered) / seconds, 1), "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "p99_ms": pct(0.99), "mean_ms": round(1000 * statistics.fmean(ordered), 2),
            "server_cpu_ms_per_request": cpu_ms}


def response_bytes(port: int, key: str, path: str) -> int:
    import httpx

    return len(httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"}).content)


# -- the upload ---------------------------------------------------------------------------------

def big_zip(folder: Path, megabytes: int) -> Path:
    """A valid submission of about ``megabytes`` MB: solution.py and incompressible data, stored."""
    path = folder / f"submission_{megabytes}mb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("solution.py", (REPO / "challenges/iou/reference/solution.py").read_text())
        with archive.open("data/weights.bin", "w", force_zip64=True) as data:
            for _ in range(megabytes):
                data.write(os.urandom(10**6))
    return path


def upload(server: Server, token: str, path: Path, *, multipart: bool) -> dict[str, Any]:
    import httpx

    peak, baseline, done = [0], server.rss_kib(), threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], server.rss_kib())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    url = f"http://127.0.0.1:{server.port}/api/v1/candidate/submissions"
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    with path.open("rb") as stream:
        if multipart:
            response = httpx.post(url, headers=headers, files={"file": (path.name, stream)}, timeout=600)
        else:
            response = httpx.post(url, headers={**headers, "Content-Type": "application/octet-stream"},
                                  params={"filename": path.name}, content=stream, timeout=600)
    elapsed = time.perf_counter() - started
    done.set()
    watcher.join()
    if response.status_code != 202:
        raise SystemExit(f"the upload was refused: {response.status_code} {response.text[:300]}")
    size_mb = path.stat().st_size / 1e6
    return {"size_mb": round(size_mb, 1), "form": "multipart" if multipart else "octet-stream",
            "seconds": round(elapsed, 2), "mb_per_s": round(size_mb / elapsed, 1),
            "rss_before_mib": round(baseline / 1024, 1), "rss_peak_mib": round(peak[0] / 1024, 1),
            "rss_growth_mib": round((peak[0] - baseline) / 1024, 1)}


def invitation_token(server: Server, key: str) -> str:
    import httpx

    response = httpx.post(f"http://127.0.0.1:{server.port}/api/v1/invitations",
                          headers={"Authorization": f"Bearer {key}"},
                          json={"challenge_id": "iou", "candidate": "upload@example.com", "max_attempts": 20,
                                "deadline": (datetime.now(UTC) + timedelta(days=1)).isoformat()})
    response.raise_for_status()
    return str(response.json()["token"])


# -- the run ------------------------------------------------------------------------------------

def bench_database(kind: str, url: str | None, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    data_dir = folder / kind
    database_url = url or f"sqlite:///{data_dir / 'cvgrade.db'}"
    key = seed(database_url)
    report: dict[str, Any] = {}
    if kind == "sqlite" and args.upload_mb:  # first, on a fresh server: its memory is not yet grown by the reads
        server = Server(data_dir, database_url, max_upload_mb=args.upload_mb + 50)
        try:
            token = invitation_token(server, key)
            uploads = []
            for megabytes, multipart in ((20, False), (args.upload_mb, False), (args.upload_mb, True)):
                path = big_zip(folder, megabytes)
                uploads.append(upload(server, token, path, multipart=multipart))
                path.unlink()
                print(f"{kind:10s} upload: {uploads[-1]}", flush=True)
            report["uploads"] = uploads
        finally:
            server.stop()
    server = Server(data_dir, database_url, max_upload_mb=50)
    try:
        result_paths = [f"/api/v1/submissions/{n}/result" for n in range(1, SUBMISSIONS + 1)]
        listing = ["/api/v1/challenges/iou/submissions"]
        report["result_bytes"] = response_bytes(server.port, key, result_paths[0])
        report["listing_bytes"] = response_bytes(server.port, key, listing[0])
        for name, paths in (("read_result", result_paths), ("list_1000", listing)):
            for clients in sorted({args.clients, 10, 1}, reverse=True):
                figures = load(server, key, paths, clients, args.seconds)
                report[f"{name}_{clients}_clients"] = figures
                print(f"{kind:10s} {name:12s} {clients:3d} clients: {figures}", flush=True)
        report["server_rss_after_mib"] = round(server.rss_kib() / 1024, 1)
        return report
    finally:
        server.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--upload-mb", type=int, default=200, help="0: no upload")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    report: dict[str, Any] = {"measured": datetime.now(UTC).isoformat(timespec="seconds"),
                              "cpus": os.cpu_count(), "load_average_before": os.getloadavg(),
                              "seconds": args.seconds, "clients": args.clients}
    with tempfile.TemporaryDirectory(prefix="cvgrade-bench-service-") as scratch:
        folder = Path(scratch)
        if args.database in ("sqlite", "both"):
            report["sqlite"] = bench_database("sqlite", None, args, folder)
        if args.database in ("postgresql", "both"):
            with postgres_cluster() as server_url:
                report["postgresql"] = bench_database("postgresql", server_url, args, folder)
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
