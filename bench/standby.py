"""Standbys (grader/standby.py): a grading whose workers started before its submission was known,
against one that starts its own, measured side by side in one run (A B A B ...).

Reports, for the ``iou`` reference on the chosen backend, in one grader process with a warm judge
server (as the service and fleet workers have):

- **service**: the next job comes after the host was idle for ``--idle`` seconds. With a standby
  kept when the previous job ended, against none. This is the time a candidate waits for the
  grading, minus the queue;
- **batch**: ``--batch`` submissions graded one after the other (``cvgrade grade --jobs 1``),
  keeping a standby after each but the last, against none;
- a bare ``python -c "import torch, torchvision"``, alternated too: issue 16's yardstick.

Usage: python bench/standby.py [--runs 5] [--idle 3] [--batch 4] [--backend local] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import standby  # noqa: E402
from grader.challenge import load_challenge  # noqa: E402
from grader.grading import GradeOptions, grade_submission, keep_standby, warm_up_judges  # noqa: E402

CHALLENGE = REPO / "challenges" / "iou"


def time_bare_import() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, torchvision"], check=True)
    return time.perf_counter() - started


def time_next_job(options: GradeOptions, idle_s: float, *, with_standby: bool) -> float:
    """One job after ``idle_s`` of waiting; a standby kept at the start of the wait, or none."""
    challenge = load_challenge(CHALLENGE)
    if with_standby:
        keep_standby(challenge, options)
    time.sleep(idle_s)
    started = time.perf_counter()
    result = grade_submission(challenge.reference_dir / "solution.py", challenge, options)
    elapsed = time.perf_counter() - started
    taken = result.environment["judge"]["workers_started_before_submission"]
    if not result.passed or taken != with_standby:
        raise SystemExit(f"unexpected grading: passed={result.passed}, standby taken={taken}")
    return elapsed


def time_batch(options: GradeOptions, count: int, *, with_standby: bool) -> float:
    challenge = load_challenge(CHALLENGE)
    started = time.perf_counter()
    for number in range(count):
        result = grade_submission(challenge.reference_dir / "solution.py", challenge, options)
        if not result.passed:
            failed = [(test.name, test.outcome, test.output[:500]) for test in result.tests if test.status != "passed"]
            raise SystemExit(f"the reference did not pass: {result.error} {failed}")
        if with_standby and number + 1 < count:
            keep_standby(challenge, options)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--backend", choices=("local", "docker"), default="local")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    options = GradeOptions(backend=args.backend)
    warm_up_judges(options, gradings=2)
    time_next_job(options, 0, with_standby=False)  # the server warm, the page cache full
    time_bare_import()
    fresh, kept, batch_fresh, batch_kept, bare = [], [], [], [], []
    for _ in range(args.runs):
        kept.append(time_next_job(options, args.idle, with_standby=True))
        fresh.append(time_next_job(options, args.idle, with_standby=False))
        bare.append(time_bare_import())
        batch_kept.append(time_batch(options, args.batch, with_standby=True))
        batch_fresh.append(time_batch(options, args.batch, with_standby=False))
    standby.discard_all()

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    report = {
        "runs": args.runs, "backend": args.backend, "idle_s": args.idle, "batch": args.batch,
        "next_job_with_standby_median_s": median(kept),
        "next_job_without_median_s": median(fresh),
        "next_job_without_over_with_ratio": round(statistics.median(fresh) / statistics.median(kept), 3),
        "bare_import_torch_median_s": median(bare),
        "next_job_with_standby_over_bare_import_ratio": round(statistics.median(kept) / statistics.median(bare), 3),
        "next_job_without_over_bare_import_ratio": round(statistics.median(fresh) / statistics.median(bare), 3),
        "batch_with_standby_median_s": median(batch_kept),
        "batch_without_median_s": median(batch_fresh),
        "batch_without_over_with_ratio": round(statistics.median(batch_fresh) / statistics.median(batch_kept), 3),
        "next_job_with_standby_s": [round(x, 3) for x in kept],
        "next_job_without_s": [round(x, 3) for x in fresh],
        "batch_with_standby_s": [round(x, 3) for x in batch_kept],
        "batch_without_s": [round(x, 3) for x in batch_fresh],
        "bare_import_torch_s": [round(x, 3) for x in bare],
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
