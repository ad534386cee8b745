"""Docker against local, and --jobs 2 against --jobs 1, measured side by side in one run.

Reports:
- per-submission overhead of the Docker backend over the local backend:
  grading the reference ``iou`` solution, alternating the two backends;
- throughput of ``cvgrade grade --jobs 2`` over ``--jobs 1`` on 8 submissions
  with CPU-light checks (a small challenge made for the benchmark), alternating,
  with the cores the machine kept busy meanwhile (``/proc/stat``);
- the same with one more check that takes the reference, as every shipped
  challenge's checks do: the judge then starts the reference's worker too;
  and the same two with cold judges (``--judge cold``: a fresh interpreter per
  grading, as before issue 16's warm judge), in the same alternation.

Usage: python bench/backends.py [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
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
# The same, plus one check that compares with the reference (as every shipped challenge's checks do): the
# judge then starts the reference's worker too (grader.reference_use).
LIGHT_CHECKS_WITH_REFERENCE = LIGHT_CHECKS + textwrap.dedent(
    """
    def test_agrees(candidate, reference):
        assert candidate.add(2, 3) == reference.add(2, 3)
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


def machine_cpu_s() -> float:
    """CPU seconds spent by the whole machine so far (every core, user and system; /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cvgrade(*args: str, busy: list[float] | None = None) -> float:
    """Wall seconds of one ``cvgrade grade``; with ``busy``, append how many cores the machine kept busy meanwhile."""
    cpu_before, started = machine_cpu_s(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli", "grade", *args, "--json"],
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if busy is not None:
        busy.append(round((machine_cpu_s() - cpu_before) / elapsed, 2))
    if done.returncode != 0:
        raise SystemExit(f"cvgrade grade {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def light_challenge(root: Path, *, with_reference: bool = False) -> tuple[Path, list[Path]]:
    challenge = root / ("light_with_reference" if with_reference else "light")
    for sub in ("hidden", "starter", "reference"):
        (challenge / sub).mkdir(parents=True)
    toml = LIGHT_TOML
    if with_reference:
        toml = toml.replace('id = "light"', 'id = "light_with_reference"') + textwrap.dedent(
            """
            [[checks]]
            name = "agrees"
            test = "test_add.py::test_agrees"
            points = 1
            """)
    (challenge / "challenge.toml").write_text(toml)
    (challenge / "README.md").write_text("# light\n")
    (challenge / "hidden" / "test_add.py").write_text(LIGHT_CHECKS_WITH_REFERENCE if with_reference else LIGHT_CHECKS)
    solution = "def add(a, b):\n    return a + b\n"
    (challenge / "starter" / "solution.py").write_text(solution)
    (challenge / "reference" / "solution.py").write_text(solution)
    submissions = []
    for index in range(8):
        path = root / f"{challenge.name}_{index}.py"
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
        challenge_ref, submissions_ref = light_challenge(Path(folder), with_reference=True)
        light_ref = [*map(str, submissions_ref), "-c", str(challenge_ref), "--backend", "local"]
        one, two, cold_one, cold_two, ref_one, ref_two = [], [], [], [], [], []
        busy: dict[str, list[float]] = {"jobs1": [], "jobs2": [], "with_reference_jobs1": [],
                                        "with_reference_jobs2": []}
        for _ in range(args.runs):
            one.append(cvgrade(*light, "--jobs", "1", busy=busy["jobs1"]))
            two.append(cvgrade(*light, "--jobs", "2", busy=busy["jobs2"]))
            ref_one.append(cvgrade(*light_ref, "--jobs", "1", busy=busy["with_reference_jobs1"]))
            ref_two.append(cvgrade(*light_ref, "--jobs", "2", busy=busy["with_reference_jobs2"]))
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
        "eight_light_with_reference_jobs1_median_s": round(statistics.median(ref_one), 3),
        "eight_light_with_reference_jobs2_median_s": round(statistics.median(ref_two), 3),
        "with_reference_jobs2_throughput_gain": round(statistics.median(ref_one) / statistics.median(ref_two), 3),
        "without_over_with_reference_jobs1_speedup": round(statistics.median(ref_one) / statistics.median(one), 3),
        # Cores the machine kept busy (of os.cpu_count()) while each variant ran: a --jobs 1 run that keeps
        # them all busy leaves a second job nothing to gain.
        "cores": os.cpu_count(),
        "cores_busy_median": {name: statistics.median(values) for name, values in busy.items()},
        "cold_judge_eight_light_jobs1_median_s": round(statistics.median(cold_one), 3),
        "cold_judge_eight_light_jobs2_median_s": round(statistics.median(cold_two), 3),
        "cold_judge_jobs2_throughput_gain": round(statistics.median(cold_one) / statistics.median(cold_two), 3),
        "warm_over_cold_jobs1_speedup": round(statistics.median(cold_one) / statistics.median(one), 3),
        "samples": {"local": local, "docker": docker, "jobs1": one, "jobs2": two,
                    "with_reference_jobs1": ref_one, "with_reference_jobs2": ref_two,
                    "cold_jobs1": cold_one, "cold_jobs2": cold_two, "cores_busy": busy},
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
