"""What replacing a lost worker between checks saves, measured side by side in one run.

A worker lost in a check (a time-out, a crash) used to be started again at the next
check's first call. The judge now starts it as soon as the check ends
(``WorkerSession.replace_lost_worker``), so its start-up (bubblewrap, Python, torch, the
submission's import) overlaps with whatever the next check does before that call.

Each round loses the worker (the solution exits during a call), lets ``--gap`` seconds
pass (the next check's own work before its first call, here a sleep), then times the
first call's answer from the moment of the loss. The two variants alternate (lazy,
replaced, lazy, ...) in one session, so machine noise hits both alike; medians and the
ratio are printed.

Usage: python bench/worker_replacement.py [--runs 5] [--gaps 0 0.5 2] [--isolation bwrap] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from harness.local import LocalSandbox
from harness.sandbox import Limits, WorkerFunction, WorkerSpec
from harness.session import CallFailure, WorkerSession

SOLUTION = "import os\nimport torch\n\n\ndef add(a, b):\n    return a + b\n\n\ndef leave():\n    os._exit(0)\n"


def lose_and_call_again(session: WorkerSession, gap_s: float, *, replace: bool) -> float:
    """Seconds from the loss of the worker to the next call's answer."""
    try:
        session.call("leave", [], {}, 60)
    except CallFailure:
        pass
    else:
        raise SystemExit("leave() returned: the worker was not lost")
    lost = time.perf_counter()
    if replace:
        session.replace_lost_worker()
    time.sleep(gap_s)
    if session.call("add", [1, 2], {}, 60).value != 3:
        raise SystemExit("add(1, 2) gave a wrong answer")
    return time.perf_counter() - lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gaps", type=float, nargs="+", default=[0.0, 0.5, 2.0])
    parser.add_argument("--isolation", default="bwrap", choices=["bwrap", "process"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder) / "ws"
        workspace.mkdir()
        (workspace / "solution.py").write_text(SOLUTION)
        for path in (Path(folder), workspace, workspace / "solution.py"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        spec = WorkerSpec(
            workspace=workspace, entry="solution.py", cells=None,
            functions=[WorkerFunction(name="add", parameters=["a", "b"]), WorkerFunction(name="leave", parameters=[])],
            limits=Limits(memory_mb=2048),
        )
        session = WorkerSession(LocalSandbox(args.isolation), spec)
        results: dict[str, dict[str, float]] = {}
        try:
            session.call("add", [1, 2], {}, 120)
            lose_and_call_again(session, 0.0, replace=False)  # warm the page cache: not counted
            for gap in args.gaps:
                times: dict[str, list[float]] = {"lazy": [], "replaced": []}
                for _ in range(args.runs):
                    for variant in ("lazy", "replaced"):
                        times[variant].append(lose_and_call_again(session, gap, replace=variant == "replaced"))
                lazy, replaced = statistics.median(times["lazy"]), statistics.median(times["replaced"])
                results[f"gap_{gap:g}s"] = {"lazy_s": round(lazy, 3), "replaced_s": round(replaced, 3),
                                            "lazy_over_replaced": round(lazy / replaced, 2)}
                print(f"gap {gap:g} s before the next call: lazy {lazy:.2f} s, replaced {replaced:.2f} s "
                      f"(median of {args.runs} each; lazy / replaced {lazy / replaced:.2f}x)", flush=True)
        finally:
            session.close()
    if args.json is not None:
        args.json.write_text(json.dumps({"isolation": args.isolation, "runs": args.runs, "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
