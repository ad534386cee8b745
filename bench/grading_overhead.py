"""Sandbox and channel overhead, measured side by side in one run.

Reports:
- the wall time to grade the reference ``iou`` solution through the CLI
  (judge process + sandboxed workers + channel), against the wall time of
  plain pytest running the same hidden checks with the reference imported
  directly; runs alternate (A B A B ...) so machine noise hits both alike;
- the same grading against a bare ``python -c "import torch, torchvision"``, also
  alternated (issue 16's yardstick: a grading imports torch in the judge and in each
  worker, so it costs a few such imports; the aim is at most 1.6 of them), and the CPU
  seconds a grading takes (the grader, the judge and the workers: every process of
  the grading's tree, as ``getrusage(RUSAGE_CHILDREN)`` counts them); both for the
  warm judge (the default: forked from a process that imported torch once) and the
  cold one (``--judge cold``: a fresh interpreter, as before issue 16), alternated too;
- the median round trip of an empty call through the channel: pipes to a
  bubblewrap worker, and a Unix socket to a worker container.

Usage: python bench/grading_overhead.py [--runs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHALLENGE = REPO / "challenges" / "iou"
REFERENCE = CHALLENGE / "reference" / "solution.py"


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_bare_import() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, torchvision"], check=True)
    return time.perf_counter() - started


def time_cli(judge: str = "warm") -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cli", "grade", str(REFERENCE), "--challenge", "iou", "--json",
         "--backend", "local", "--judge", judge],
        capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"grading the reference failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def time_plain_pytest() -> float:
    env = dict(os.environ, BENCH_SOLUTION=str(REFERENCE), BENCH_REFERENCE=str(REFERENCE),
               PYTHONPATH=str(REPO / "bench"), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    with tempfile.TemporaryDirectory() as empty:
        ini = Path(empty) / "pytest.ini"
        ini.write_text("[pytest]\n")
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "direct_plugin", "-p", "no:cacheprovider",
             "-c", str(ini), "--rootdir", str(CHALLENGE / "hidden"), "--import-mode=importlib",
             str(CHALLENGE / "hidden")],
            capture_output=True, text=True, env=env, check=False, cwd=empty,
        )
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"plain pytest failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def empty_round_trip_ms(backend: str, calls: int = 2000) -> float:
    from harness.backends import make_sandbox
    from harness.sandbox import Limits, SandboxConfig, WorkerSpec
    from harness.session import WorkerSession

    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        workspace.chmod(0o755)
        (workspace / "solution.py").write_text("")
        (workspace / "solution.py").chmod(0o644)
        spec = WorkerSpec(workspace, "solution.py", None, [], Limits())
        session = WorkerSession(make_sandbox(SandboxConfig(backend=backend)), spec)
        try:
            session.start()
            for _ in range(100):
                session.ping()
            samples = [session.ping() for _ in range(calls)]
        finally:
            session.close()
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    time_cli()  # warm the page cache for both sides
    time_plain_pytest()
    time_bare_import()
    cli, plain, bare, cli_cpu, bare_cpu, cold, cold_cpu = [], [], [], [], [], [], []
    for _ in range(args.runs):
        before = children_cpu_s()
        cli.append(time_cli())
        cli_cpu.append(children_cpu_s() - before)
        before = children_cpu_s()
        cold.append(time_cli("cold"))
        cold_cpu.append(children_cpu_s() - before)
        plain.append(time_plain_pytest())
        before = children_cpu_s()
        bare.append(time_bare_import())
        bare_cpu.append(children_cpu_s() - before)
    round_trip = empty_round_trip_ms("local")
    try:
        docker_round_trip: float | None = empty_round_trip_ms("docker")
    except Exception as err:  # no engine here: report it, measure the rest
        print(f"docker round trip not measured: {err}", file=sys.stderr)
        docker_round_trip = None
    report = {
        "runs": args.runs,
        "cli_grade_median_s": round(statistics.median(cli), 3),
        "plain_pytest_median_s": round(statistics.median(plain), 3),
        "overhead_ratio": round(statistics.median(cli) / statistics.median(plain), 3),
        "bare_import_torch_median_s": round(statistics.median(bare), 3),
        "grading_over_bare_import_ratio": round(statistics.median(cli) / statistics.median(bare), 3),
        "cli_grade_cpu_median_s": round(statistics.median(cli_cpu), 3),
        "cold_judge_grade_median_s": round(statistics.median(cold), 3),
        "cold_judge_grading_over_bare_import_ratio": round(statistics.median(cold) / statistics.median(bare), 3),
        "cold_judge_grade_cpu_median_s": round(statistics.median(cold_cpu), 3),
        "cold_judge_grade_s": [round(x, 3) for x in cold],
        "bare_import_torch_cpu_median_s": round(statistics.median(bare_cpu), 3),
        "cli_grade_s": [round(x, 3) for x in cli],
        "bare_import_torch_s": [round(x, 3) for x in bare],
        "plain_pytest_s": [round(x, 3) for x in plain],
        "empty_round_trip_median_ms": round(round_trip, 4),
        "docker_empty_round_trip_median_ms": None if docker_round_trip is None else round(docker_round_trip, 4),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
