"""The dashboard's pages with a round of 1,000 submissions: how long each page takes to answer.

One team, 100 candidates invited to ``iou``, ten graded submissions each (1,000 in all; each result a
realistic body, as bench/service.py makes it). Each candidate's code is five functions drawn from those
the challenges' own solutions define that are not variants of one another and one of their own, renamed
and reordered from one attempt to the next; three candidates copied another's. The files are in the
upload store, so the code pages, the pair view and the similarity check read real files.

The service runs as ``cvgrade serve`` does (uvicorn, one process, no grading workers), on SQLite.
Logged in through the login form (a session cookie), one client asks for each page in turn:

- **first**: the first page after the 1,000 uploads (the comparison): it fingerprints and compares all
  1,000, once (``api.similarity.refresh``);
- then each page ``--requests`` times: p50, p95 and the slowest, and the server's CPU time per page.

Usage: python bench/dashboard.py [--requests 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from service import Server, sample_result  # noqa: E402  # bench/service.py: the same server and results
from similarity import renamed, reordered  # noqa: E402  # bench/similarity.py: the same disguises

CANDIDATES, ATTEMPTS, COPIERS = 100, 10, 3
LIMIT_MS = 200


def function_pool() -> list[str]:
    """The top-level functions of the challenges' reference, known-good and known-bad solutions that are
    not variants of one another (most known-bad ones are the reference with one mistake): independent
    pieces of code to build candidates from."""
    from grader.similarity import fingerprint, overlap

    functions = []
    for path in sorted((REPO / "challenges").glob("*/*/*.py")):
        if path.parent.name not in ("reference", "known_good", "known_bad"):
            continue
        code = path.read_text(encoding="utf-8")
        lines = code.splitlines(keepends=True)
        for node in ast.parse(code).body:
            if isinstance(node, ast.FunctionDef) and node.end_lineno and node.end_lineno - node.lineno >= 4:
                functions.append("".join(lines[node.lineno - 1:node.end_lineno]))
    pool: list[tuple[str, Any]] = []
    for code in sorted(set(functions)):
        found = fingerprint([("f.py", code)])
        if len(found) >= 5 and all(overlap(found, other).share < 0.3 for _, other in pool):
            pool.append((code, found))
    return [code for code, _ in pool]


def own_helper(rng: random.Random, lines: int = 40) -> str:
    """A function only this candidate wrote: random statements over tensors (no two alike)."""
    ops, calls = ["+", "-", "*", "/"], ["clamp", "abs", "exp", "sqrt", "sigmoid", "relu", "flip", "cumsum"]
    body = ["    v0 = x.float()"]
    for number in range(1, lines):
        a, b = rng.randrange(number), rng.randrange(number)
        body.append(f"    v{number} = (v{a} {rng.choice(ops)} {rng.randint(1, 99)}) {rng.choice(ops)} "
                    f"torch.{rng.choice(calls)}(v{b})" if rng.random() < 0.5 else
                    f"    v{number} = v{a}.{rng.choice(calls)}() {rng.choice(ops)} v{b}[{rng.randint(0, 9)}:]")
    return "def helper(x):\n" + "\n".join(body) + f"\n    return v{lines - 1}\n"


def candidate_code(rng: random.Random, pool: list[str]) -> list[str]:
    """Each candidate's ten attempts: five shared functions and one of their own, disguised a little each time."""
    base = ("import torch\nfrom torch import Tensor\n\n\n" + "\n\n".join(rng.sample(pool, 5))
            + "\n\n" + own_helper(rng))
    return [renamed(reordered(base, rng), rng) if attempt else base for attempt in range(ATTEMPTS)]


def seed(database_url: str, data_dir: Path) -> tuple[str, list[int]]:
    """The team, 100 invitations, 1,000 graded submissions with their files; the key and a copier's
    submission ids (theirs, and the one they copied)."""
    from api.db import Database, migrate
    from api.models import Invitation, Job, Result, Submission
    from api.store import FileUploadStore
    from api.teams import create_team
    from grader.challenge import load_challenge

    rng = random.Random(15)
    pool = function_pool()
    codes = [candidate_code(rng, pool) for _ in range(CANDIDATES)]
    for copier in range(COPIERS):  # candidate 99 copied candidate 0's attempts, 98 copied 1's, ...
        codes[CANDIDATES - 1 - copier] = [renamed(code, rng) for code in codes[copier]]
    version = load_challenge("iou").version
    body = sample_result()
    now = datetime.now(UTC)
    store = FileUploadStore(data_dir / "uploads")
    staging = data_dir / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    database = Database(database_url)
    migrate(database)
    with database.write() as session:
        team, _, key = create_team(session, "bench", now)
        invitations = []
        for number in range(CANDIDATES):
            invitation = Invitation(
                team_id=team.id, challenge_id="iou", challenge_version=version, candidate=f"c{number}@example.com",
                candidate_key=f"c{number}@example.com", deadline=now + timedelta(days=30),
                expires_at=now + timedelta(days=60), max_attempts=20, token_sha256=f"{number:064x}",
                revoked_at=None, created_at=now)
            session.add(invitation)
            invitations.append(invitation)
        session.flush()
        for attempt in range(ATTEMPTS):
            for number in range(CANDIDATES):
                content = codes[number][attempt].encode()
                digest = hashlib.sha256(content).hexdigest()
                staged = staging / digest
                staged.write_bytes(content)
                submission = Submission(
                    invitation_id=invitations[number].id, team_id=team.id, challenge_id="iou",
                    challenge_version=version, filename="solution.py", kind="py", sha256=digest,
                    size_bytes=len(content), store_key=store.put(staged, digest), idempotency_key=None,
                    charged=True, created_at=now)
                session.add(submission)
                session.add(Job(submission=submission, state="done", runs=1, claimed_by="bench", heartbeat_at=now,
                                started_at=now, finished_at=now, created_at=now))
                session.add(Result(submission=submission, status="graded", score=100.0 - number % 30,
                                   max_score=100.0, passed=number % 30 < 20, body=body, created_at=now))
        session.commit()
    database.dispose()
    copier_submission = CANDIDATES  # attempt 0 of candidate 99 is submission 100; it copied submission 1
    return key, [1, copier_submission]


def log_in(port: int, key: str) -> str:
    import httpx

    response = httpx.post(f"http://127.0.0.1:{port}/dashboard/login", data={"api_key": key, "next": "/dashboard"},
                          follow_redirects=False)
    assert response.status_code == 303, response.text
    return str(response.cookies["cvgrade_session"])


def timed(server: Server, cookie: str, path: str, requests: int) -> dict[str, Any]:
    import httpx

    latencies, cpu_before, size = [], server.cpu_s(), 0
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", cookies={"cvgrade_session": cookie},
                      timeout=600) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(path)
            latencies.append(1000 * (time.perf_counter() - started))
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
            size = len(response.content)
    cpu_ms = 1000 * (server.cpu_s() - cpu_before) / requests
    ordered = sorted(latencies)
    return {"page": path, "bytes": size, "p50_ms": round(ordered[len(ordered) // 2], 1),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
            "max_ms": round(ordered[-1], 1), "server_cpu_ms": round(cpu_ms, 1),
            "under_limit": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] < LIMIT_MS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                              "load_average_before": os.getloadavg(), "submissions": CANDIDATES * ATTEMPTS,
                              "candidates": CANDIDATES, "requests_per_page": args.requests}
    with tempfile.TemporaryDirectory(prefix="cvgrade-bench-dashboard-") as scratch:
        data_dir = Path(scratch)
        database_url = f"sqlite:///{data_dir / 'cvgrade.db'}"
        key, (original, copy) = seed(database_url, data_dir)
        server = Server(data_dir, database_url, max_upload_mb=50)
        try:
            cookie = log_in(server.port, key)
            first = timed(server, cookie, "/dashboard/challenges/iou/comparison", 1)
            report["first_page_after_1000_uploads_s"] = round(first["max_ms"] / 1000, 2)
            print(f"first page (fingerprints and compares all 1,000): {first}", flush=True)
            pages = ["/dashboard", "/dashboard/invitations/1", "/dashboard/challenges/iou/submissions",
                     "/dashboard/challenges/iou/comparison", "/dashboard/challenges/iou/comparison?rank_by=latest",
                     "/dashboard/challenges/iou/comparison.csv", "/dashboard/challenges/iou/similarity",
                     f"/dashboard/submissions/{copy}", f"/dashboard/submissions/{copy}/code",
                     f"/dashboard/similarity/{original}/{copy}"]
            report["pages"] = []
            for path in pages:
                figures = timed(server, cookie, path, args.requests)
                report["pages"].append(figures)
                print(figures, flush=True)
            report["all_under_limit"] = all(page["under_limit"] for page in report["pages"])
        finally:
            server.stop()
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
