"""The judge's own memory and CPU per grading: the iou reference against a reply that expands on decoding.

Grades, alternating, the iou reference and ``tests/attacks/submissions/flood_the_judge.py`` (every
call answers with its own 64 MiB frame of 22 million empty JSON lists) under one backend, and
samples the judge process from outside (``/proc``: its peak resident memory, ``VmHWM``, and its
user + system CPU time) five times a second, so the figures mean the same with or without the
judge's own limits. Reports each grading, the medians, and attack / reference ratios.

Usage: python bench/judge_under_attack.py [--backend local|docker] [--runs 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.challenge import load_challenge  # noqa: E402
from grader.grading import GradeOptions, grade_submission  # noqa: E402

SUBMISSIONS = {
    "reference": REPO / "challenges" / "iou" / "reference" / "solution.py",
    "flood_the_judge": REPO / "tests" / "attacks" / "submissions" / "flood_the_judge.py",
}
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _judges() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"grader.judge.runner" in cmdline and b"/bin/sh" not in cmdline.split(b"\0")[0]:
            found.append(int(entry.name))
    return found


def _sample(pid: int) -> tuple[float, float] | None:
    """(peak resident MB, CPU seconds) of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    hwm_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    fields = stat.rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime
    return hwm_kb / 1024, cpu_s


class JudgeWatch:
    """Keeps the last sample of every judge process seen while it runs."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid in _judges():
                sample = _sample(pid)
                if sample is not None:
                    self.seen[pid] = sample

    def __enter__(self) -> JudgeWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def grade_once(name: str, backend: str) -> dict[str, Any]:
    challenge = load_challenge(REPO / "challenges" / "iou")
    started = time.monotonic()
    with JudgeWatch() as watch:
        result = grade_submission(SUBMISSIONS[name], challenge, GradeOptions(backend=backend))  # type: ignore[arg-type]
    peak_mb = max((rss for rss, _ in watch.seen.values()), default=0.0)
    cpu_s = sum(cpu for _, cpu in watch.seen.values())
    row = {"submission": name, "status": result.status, "score": result.score,
           "judge_peak_mb": round(peak_mb), "judge_cpu_s": round(cpu_s, 1),
           "wall_s": round(time.monotonic() - started, 1),
           "judge_reported": result.environment.get("judge"),
           "outcomes": sorted({test.outcome for test in result.tests})}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local", choices=("local", "docker"))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [grade_once(name, args.backend) for _ in range(args.runs) for name in SUBMISSIONS]
    summary: dict[str, Any] = {"backend": args.backend, "runs": args.runs, "rows": rows}
    for key in ("judge_peak_mb", "judge_cpu_s"):
        medians = {name: statistics.median(r[key] for r in rows if r["submission"] == name) for name in SUBMISSIONS}
        summary[key] = medians
        summary[f"{key}_ratio"] = round(medians["flood_the_judge"] / max(medians["reference"], 1e-9), 2)
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
