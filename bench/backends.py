"""Docker against local, and --jobs 2 against --jobs 1, measured side by side in one run.

Reports:
- per-submission overhead of the Docker backend over the local backend:
  grading the reference ``iou`` solution, alternating the two backends;
- throughput of ``cvgrade grade --jobs 2`` over ``--jobs 1`` on 8 submissions
  with CPU-light checks (a small challenge made for the benchmark), alternating;
  and the same two with cold judges (``--judge cold``: a fresh interpreter per
  grading, as before issue 16's warm judge), in the same alternation.

Usage: python bench/backends.py [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "challenges" / "iou" / "reference" / "solution.py"

LIGHT_CHECKS = textwrap.dedent(
    """
    import torch

    def test_adds(candidate):
        assert torch.equal(candidate.add(torch.ones(3), torch.ones(3)), torch.full((3,), 2.0))

    def test_adds_scalars(candidate):
        assert candidate.add(2, 3) == 5
    """
)
LIGHT_TOML = textwrap.dedent(
    """
    [challenge]
    id = "light"
    title = "CPU-light checks for the benchmark"
    level = "junior"
    version = "1.0.0"
    pass_mark = 1.0

    [[functions]]
    name = "add"
    parameters = ["a", "b"]

    [[checks]]
    name = "adds"
    test = "test_add.py::test_adds"
    points = 1

    [[checks]]
    name = "adds_scalars"
    test = "test_add.py::test_adds_scalars"
    points = 1
    """
)


def cvgrade(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli", "grade", *args, "--json"],
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cvgrade grade {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def light_challenge(root: Path) -> tuple[Path, list[Path]]:
    challenge = root / "light"
    for sub in ("hidden", "starter", "reference"):
        (challenge / sub).mkdir(parents=True)
    (challenge / "challenge.toml").write_text(LIGHT_TOML)
    (challenge / "README.md").write_text("# light\n")
    (challenge / "hidden" / "test_add.py").write_text(LIGHT_CHECKS)
    solution = "def add(a, b):\n    return a + b\n"
    (challenge / "starter" / "solution.py").write_text(solution)
    (challenge / "reference" / "solution.py").write_text(solution)
    submissions = []
    for index in range(8):
        path = root / f"submission_{index}.py"
        path.write_text(solution)
        submissions.append(path)
    return challenge, submissions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    reference = [str(REFERENCE), "-c", "iou"]
    cvgrade(*reference, "--backend", "docker")  # warm caches
    local, docker = [], []
    for _ in range(args.runs):
        local.append(cvgrade(*reference, "--backend", "local"))
        docker.append(cvgrade(*reference, "--backend", "docker"))

    with tempfile.TemporaryDirectory() as folder:
        challenge, submissions = light_challenge(Path(folder))
        light = [*map(str, submissions), "-c", str(challenge), "--backend", "local"]
        one, two, cold_one, cold_two = [], [], [], []
        for _ in range(args.runs):
            one.append(cvgrade(*light, "--jobs", "1"))
            two.append(cvgrade(*light, "--jobs", "2"))
            cold_one.append(cvgrade(*light, "--jobs", "1", "--judge", "cold"))
            cold_two.append(cvgrade(*light, "--jobs", "2", "--judge", "cold"))

    report = {
        "runs": args.runs,
        "iou_reference_local_median_s": round(statistics.median(local), 3),
        "iou_reference_docker_median_s": round(statistics.median(docker), 3),
        "docker_overhead_per_submission_s": round(statistics.median(docker) - statistics.median(local), 3),
        "docker_over_local_ratio": round(statistics.median(docker) / statistics.median(local), 3),
        "eight_light_jobs1_median_s": round(statistics.median(one), 3),
        "eight_light_jobs2_median_s": round(statistics.median(two), 3),
        "jobs2_throughput_gain": round(statistics.median(one) / statistics.median(two), 3),
        "cold_judge_eight_light_jobs1_median_s": round(statistics.median(cold_one), 3),
        "cold_judge_eight_light_jobs2_median_s": round(statistics.median(cold_two), 3),
        "cold_judge_jobs2_throughput_gain": round(statistics.median(cold_one) / statistics.median(cold_two), 3),
        "warm_over_cold_jobs1_speedup": round(statistics.median(cold_one) / statistics.median(one), 3),
        "samples": {"local": local, "docker": docker, "jobs1": one, "jobs2": two,
                    "cold_jobs1": cold_one, "cold_jobs2": cold_two},
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
