"""Copies among 200 submissions of one challenge: how long fingerprinting and comparing them takes.

The submissions are the ``iou`` challenge's own solutions (the reference, the known-good one and the
ten known-bad ones, most of which are the reference with one mistake), each in about seventeen
disguises: names renamed, functions reordered, comments rewritten. So nearly every pair shares code:
the index's worst case, where most fingerprints are shared by most submissions.

Measured, side by side in one run:

- **fingerprint**: tokenise, normalise and winnow all 200 (``grader.similarity.fingerprint``);
- **tokenise only**: our one regular expression (``normalised_tokens``) against Pygments' Python lexer
  (what copydetect tokenises with) on the same 200 files, for the ratio;
- **compare**: every pair's shared fingerprints (``shared_counts``: 19,900 set intersections);
- **service, cold**: ``api.similarity.refresh`` for 200 new submissions on SQLite, as the first page
  after a round of uploads does: read each file from the store, fingerprint, compare, store the pairs;
- **service, one more**: the same when one new submission arrives among the 200;
- **service, nothing new**: the query a page makes when every submission is already compared.

Usage: python bench/similarity.py [--submissions 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import keyword
import os
import random
import sys
import tempfile
import time
import tokenize
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CHALLENGE = REPO / "challenges" / "iou"
_KEPT = {"box_iou", "nms", "torch", "Tensor", "self", *dir(__builtins__)}
_WORDS = ["acc", "val", "tmp", "res", "out", "idx", "lhs", "rhs", "cur", "buf", "arr", "mat", "vec", "tot", "cnt"]


def solutions() -> list[str]:
    paths = [CHALLENGE / "reference" / "solution.py", *sorted((CHALLENGE / "known_good").glob("*.py")),
             *sorted((CHALLENGE / "known_bad").glob("*.py"))]
    return [path.read_text(encoding="utf-8") for path in paths]


def renamed(code: str, rng: random.Random) -> str:
    """Every name the author chose (not the API, not builtins, not modules) renamed consistently."""
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    names: dict[str, str] = {}
    out = []
    previous = None
    for token in tokens:
        if (token.type == tokenize.NAME and not keyword.iskeyword(token.string) and token.string not in _KEPT
                and not (previous is not None and previous.string == ".")):
            names.setdefault(token.string, f"{rng.choice(_WORDS)}_{len(names)}")
            token = token._replace(string=names[token.string])
        elif token.type == tokenize.COMMENT:
            token = token._replace(string=f"# {rng.choice(_WORDS)} note")
        out.append(token)
        previous = token
    return tokenize.untokenize(out)


def reordered(code: str, rng: random.Random) -> str:
    """The top-level functions in another order (imports and constants first, as before)."""
    tree = ast.parse(code)
    lines = code.splitlines(keepends=True)
    head, functions = [], []
    for node in tree.body:
        text = "".join(lines[node.lineno - 1 - len(getattr(node, "decorator_list", [])):node.end_lineno])
        (functions if isinstance(node, ast.FunctionDef) else head).append(text)
    rng.shuffle(functions)
    return "\n".join(head) + "\n\n\n" + "\n\n\n".join(functions)


def submissions(count: int, seed: int = 15) -> list[str]:
    rng = random.Random(seed)
    bases = solutions()
    made = []
    for number in range(count):
        code = bases[number % len(bases)]
        if rng.random() < 0.8:
            code = reordered(code, rng)
        if rng.random() < 0.8:
            code = renamed(code, rng)
        made.append(code)
    return made


def starter() -> frozenset[int]:
    from grader.similarity import kgram_hashes
    from grader.sources import read_sources

    units: list[tuple[str, str]] = []
    for path in sorted((CHALLENGE / "starter").iterdir()):
        if path.suffix in (".py", ".ipynb"):
            units += read_sources(path.read_bytes(), path.name, path.suffix[1:]).code_units()
    return kgram_hashes(units)


def bench_grader(codes: list[str]) -> dict[str, Any]:
    from pygments.lexers.python import PythonLexer

    from grader.similarity import FLAG_MIN_SHARED, FLAG_SHARE, fingerprint, normalised_tokens, shared_counts

    exclude = starter()
    started = time.perf_counter()
    prints = [fingerprint([("solution.py", code)], exclude) for code in codes]
    fingerprinted = time.perf_counter() - started
    started = time.perf_counter()
    for code in codes:
        normalised_tokens(code)
    ours = time.perf_counter() - started
    lexer = PythonLexer()
    started = time.perf_counter()
    for code in codes:
        for _ in lexer.get_tokens_unprocessed(code):
            pass
    pygments = time.perf_counter() - started
    items = [(number, found.hashes) for number, found in enumerate(prints)]  # each its own candidate
    started = time.perf_counter()
    counts = shared_counts(items)
    compared = time.perf_counter() - started
    flagged = sum(1 for (i, j), shared in counts.items()
                  if shared >= FLAG_MIN_SHARED and shared / max(1, min(len(prints[i]), len(prints[j]))) >= FLAG_SHARE)
    return {"submissions": len(codes), "pairs": len(codes) * (len(codes) - 1) // 2, "pairs_sharing_code": len(counts),
            "pairs_flagged": flagged, "fingerprints_mean": round(sum(map(len, prints)) / len(prints), 1),
            "fingerprint_s": round(fingerprinted, 3), "compare_s": round(compared, 3),
            "total_s": round(fingerprinted + compared, 3), "tokenise_ours_s": round(ours, 3),
            "tokenise_pygments_s": round(pygments, 3), "pygments_over_ours": round(pygments / max(ours, 1e-9), 2)}


def bench_service(codes: list[str], folder: Path) -> dict[str, Any]:
    """``refresh`` through a real SQLite database and upload store."""
    import hashlib

    from api.config import Settings
    from api.db import Database, migrate
    from api.jobs.queue import new_job
    from api.models import Invitation, Submission
    from api.service import Service
    from api.similarity import refresh
    from api.store import FileUploadStore
    from api.teams import create_team
    from grader.challenge import load_challenge

    challenge = load_challenge("iou")
    settings = Settings(data_dir=folder, database_url=f"sqlite:///{folder / 'cvgrade.db'}")
    service = Service(settings=settings, db=Database(settings.database_url), store=FileUploadStore(folder / "up"))
    migrate(service.db)
    now = datetime.now(UTC)

    def add(session: Any, team_id: int, number: int, code: str) -> None:
        invitation = Invitation(team_id=team_id, challenge_id="iou", challenge_version=challenge.version,
                                candidate=f"c{number}@example.com", candidate_key=f"c{number}@example.com",
                                deadline=now + timedelta(days=3), expires_at=now + timedelta(days=30),
                                max_attempts=3, token_sha256=f"{number:064x}", revoked_at=None, created_at=now)
        session.add(invitation)
        session.flush()
        staged = folder / f"staged-{number}.py"
        staged.write_text(code)
        digest = hashlib.sha256(code.encode()).hexdigest()
        key = service.store.put(staged, digest)
        submission = Submission(invitation_id=invitation.id, team_id=team_id, challenge_id="iou",
                                challenge_version=challenge.version, filename="solution.py", kind="py",
                                sha256=digest, size_bytes=len(code), store_key=key, idempotency_key=None,
                                charged=True, created_at=now)
        session.add(submission)
        session.add(new_job(submission, now))

    with service.db.write() as session:
        team, _, _ = create_team(session, "bench", now)
        for number, code in enumerate(codes):
            add(session, team.id, number, code)
        session.commit()
        team_id = team.id
    started = time.perf_counter()
    assert refresh(service, team_id, challenge) == len(codes)
    cold = time.perf_counter() - started
    with service.db.write() as session:
        add(session, team_id, len(codes), renamed(codes[0], random.Random(1)))
        session.commit()
    started = time.perf_counter()
    assert refresh(service, team_id, challenge) == 1
    one_more = time.perf_counter() - started
    started = time.perf_counter()
    repeats = 50
    for _ in range(repeats):
        assert refresh(service, team_id, challenge) == 0
    nothing_new = (time.perf_counter() - started) / repeats
    from sqlalchemy import func, select

    from api.models import SimilarityMatch

    with service.db.read() as session:
        kept = session.scalar(select(func.count()).select_from(SimilarityMatch))
    service.db.dispose()
    return {"service_cold_s": round(cold, 3), "service_one_more_s": round(one_more, 3),
            "service_nothing_new_ms": round(1000 * nothing_new, 2), "pairs_kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    codes = submissions(args.submissions)
    report: dict[str, Any] = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                              "load_average_before": os.getloadavg()}
    report.update(bench_grader(codes))
    with tempfile.TemporaryDirectory(prefix="cvgrade-bench-similarity-") as scratch:
        report.update(bench_service(codes, Path(scratch)))
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
