"""Do timed verdicts hold on a busy machine? Gradings of `latency` solutions with one core kept busy.

Starts a plain Python spin loop (one process, ``while True: pass``) that keeps one core
busy for the whole run, then grades, round robin so that whatever else the machine does
hits every solution alike, ``--repeats`` times each:

- the reference solution and a known-good one (``known_good/float32_grouped_inference.py``,
  about 0.77 of the reference's speed-up): right means passed;
- two known-bad ones that fail only on speed (``known_bad/inference_mode_only.py``, about
  0.42, and ``known_bad/unchanged.py``, 0.31): right means not passed with ``speed`` failed.

Each grading is ``cvgrade grade SOLUTION -c latency --json`` end to end (judge, sandboxes,
retries included). A grading is *right*, *wrong* (the opposite verdict, or a wrong reason),
*inconclusive* (not gradable because the timing could not decide, after the judge's own
tries) or an *error* (not gradable for another reason). Aim: 0 wrong and at most 1
inconclusive in 20. The load average is recorded with every grading.

Usage: python bench/timing_stability.py [--repeats 5] [--backend auto] [--no-spin] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LATENCY = REPO / "challenges" / "latency"
SOLUTIONS = {  # file -> whether it should pass
    "reference/solution.py": True,
    "known_good/float32_grouped_inference.py": True,
    "known_bad/inference_mode_only.py": False,
    "known_bad/unchanged.py": False,
}


@dataclass
class Grading:
    solution: str
    verdict: str  # right | wrong | inconclusive | error
    passed: bool | None
    status: str
    seconds: float
    load_before: str
    fraction_of_reference: float | None
    rounds: float | None
    timing_tries: float | None
    note: str


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start_spinner() -> subprocess.Popen[bytes]:
    """One core busy: a plain Python loop, in its own session so it is stopped with everything it is."""
    return subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"], start_new_session=True)


def grade(solution: str, should_pass: bool, backend: str) -> Grading:
    load = load_average()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cli", "grade", str(LATENCY / solution), "-c", "latency", "--json",
         "--backend", backend], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return Grading(solution, "error", None, "no result", seconds, load, None, None, None,
                       (done.stderr or done.stdout).strip()[-300:])
    metrics = result.get("metrics", {})
    speed = next((t for t in result.get("tests", []) if t["name"] == "speed"), {})
    if result.get("status") != "graded":
        verdict = "inconclusive" if result.get("inconclusive") else "error"
        note = str(result.get("error", ""))[:300]
    elif should_pass:
        verdict = "right" if result["passed"] else "wrong"
        note = "" if result["passed"] else str(result.get("output", ""))[:300]
    else:
        verdict = "right" if not result["passed"] and speed.get("status") == "failed" else "wrong"
        note = str(speed.get("output", ""))[:300]
    return Grading(solution, verdict, result.get("passed"), str(result.get("status")), round(seconds, 1), load,
                   metrics.get("fraction_of_reference"), metrics.get("rounds"), metrics.get("timing_tries"), note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="auto", help="auto, docker or local")
    parser.add_argument("--no-spin", action="store_true", help="do not start the spin loop (a baseline)")
    parser.add_argument("--json", type=Path, help="write every grading here")
    args = parser.parse_args()

    spinner = None if args.no_spin else start_spinner()
    gradings: list[Grading] = []
    started = time.perf_counter()
    print(f"load before: {load_average()} on {os.cpu_count()} CPUs; spin loop: {'off' if spinner is None else 'on'}",
          flush=True)
    try:
        for repeat in range(args.repeats):
            for solution, should_pass in SOLUTIONS.items():
                grading = grade(solution, should_pass, args.backend)
                gradings.append(grading)
                print(f"[{repeat + 1}/{args.repeats}] {solution:42s} {grading.verdict:12s} "
                      f"{grading.seconds:6.1f} s  load {grading.load_before}  "
                      f"fraction {grading.fraction_of_reference}  rounds {grading.rounds}  "
                      f"tries {grading.timing_tries}  {grading.note[:120]}", flush=True)
    finally:
        if spinner is not None:
            os.killpg(spinner.pid, signal.SIGKILL)
            spinner.wait()

    print(f"\n{'solution':42s} {'right':>5s} {'wrong':>5s} {'inconcl.':>8s} {'error':>5s} {'median s':>8s}")
    for solution in SOLUTIONS:
        mine = [g for g in gradings if g.solution == solution]
        counts = {verdict: sum(g.verdict == verdict for g in mine) for verdict in ("right", "wrong", "inconclusive",
                                                                                  "error")}
        print(f"{solution:42s} {counts['right']:5d} {counts['wrong']:5d} {counts['inconclusive']:8d} "
              f"{counts['error']:5d} {statistics.median(g.seconds for g in mine):8.1f}")
    totals = {verdict: sum(g.verdict == verdict for g in gradings) for verdict in ("right", "wrong", "inconclusive",
                                                                                  "error")}
    print(f"\nin all: {totals} of {len(gradings)} in {time.perf_counter() - started:.0f} s; "
          f"load after: {load_average()}")
    met = totals["wrong"] == 0 and totals["inconclusive"] <= max(1, len(gradings) // 20) and totals["error"] == 0
    print("aim (0 wrong, at most 1 inconclusive in 20):", "met" if met else "NOT met")
    if args.json is not None:
        args.json.write_text(json.dumps({"gradings": [asdict(g) for g in gradings], "totals": totals,
                                         "spin": spinner is not None, "backend": args.backend}, indent=2))


if __name__ == "__main__":
    main()
