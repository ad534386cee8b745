"""Speed-ups of `latency` solutions measured as the graded check measures them, without pytest.

    .venv/bin/python challenges/latency/tools/measure_sandboxed.py known_bad/*.py --backend docker

Starts a sandboxed worker for the reference solution and one per solution given (same
limits, assets and adapter as grading), then for the reference itself and for each
solution runs the protocol of ``hidden/latency_timing.py``: warm-up, runs of fresh images
alternated with the original model (always timed in the reference's worker), every output
checked. Prints each side's p50 and p95, the speed-up, its spread over runs, the worst
IQR / p50 and the number of quiet runs, and what the graded check would decide with the
reference's speed-up measured here as the bar. For tuning the challenge; not a grader.
"""

from __future__ import annotations

import argparse
import importlib.util
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

CHALLENGE = Path(__file__).resolve().parent.parent
ROOT = CHALLENGE.parent.parent
sys.path.insert(0, str(ROOT))

from harness.backends import make_sandbox  # noqa: E402
from harness.sandbox import Limits, WorkerSpec  # noqa: E402
from harness.session import WorkerSession  # noqa: E402


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


kit = _load("latency_kit", CHALLENGE / "hidden" / "latency_kit.py")
timing = _load("latency_timing", CHALLENGE / "hidden" / "latency_timing.py")
speed_check = _load("latency_test_speed", CHALLENGE / "hidden" / "test_speed.py")


class Remote:
    """The few methods of the judge's ``candidate`` fixture that the checks use."""

    def __init__(self, session: WorkerSession) -> None:
        self.session = session

    def call(self, function: str, *args: Any, timeout_s: float = 60.0) -> Any:
        return self.session.call(function, list(args), {}, timeout_s).value

    def timed(self, function: str, *args: Any, timeout_s: float = 60.0) -> tuple[Any, float]:
        reply = self.session.call(function, list(args), {}, timeout_s)
        return reply.value, reply.seconds


def _session(solution: Path, folder: Path, backend: str) -> WorkerSession:
    workspace = folder / f"{len(list(folder.iterdir()))}-{solution.stem}"
    workspace.mkdir(mode=0o755)
    shutil.copyfile(solution, workspace / "solution.py")
    (workspace / "solution.py").chmod(0o644)
    limits = Limits(memory_mb=4096, scratch_mb=1024, cpu_threads=1)
    spec = WorkerSpec(workspace, "solution.py", None, [{"name": "optimize", "parameters": ["model", "example_input"]}],
                      limits, label=solution.stem, assets=CHALLENGE / "assets", adapter="adapter.py")
    session = WorkerSession(make_sandbox({"backend": backend}), spec)
    session.start()
    return session


def _measure(pair: Any, protocol: Any, runs: int) -> list[Any]:
    original_s, optimised_s = timing.warm_up(pair, protocol, "warm-up")
    samples = timing.samples_per_run(protocol, original_s, optimised_s)
    return [timing.measure_run(pair, samples, f"run {r + 1}") for r in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("solutions", nargs="*", help="solution files, relative to the challenge folder or absolute")
    parser.add_argument("--backend", default="auto", help="auto, docker or local")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    protocol = timing.CPU
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        folder.chmod(0o755)
        reference = Remote(_session(CHALLENGE / "reference" / "solution.py", folder, args.backend))
        kit.prepare(reference, 0)
        print(f"{'solution':40s} {'orig p50':>8s} {'p95':>7s} {'opt p50':>8s} {'p95':>7s} {'speedup':>8s} "
              f"{'spread':>7s} {'IQR/p50':>8s} {'quiet':>5s}  {'controlled':>10s}  verdict")
        pair = speed_check._pair(reference, reference, secrets.randbits(31), kit.CALL_TIMEOUT_S)
        reference_runs = _measure(pair, protocol, args.runs)
        reference_figures = timing.summary(reference_runs, protocol)
        bar = speed_check.FRACTION_OF_REFERENCE * reference_figures["speedup"]
        baseline_s = reference_figures["original_p50_ms"] / 1e3
        rows = [("reference (in its own worker)", reference_runs)]
        for name in args.solutions:
            path = Path(name) if Path(name).is_absolute() else CHALLENGE / name
            candidate = Remote(_session(path, folder, args.backend))
            try:
                kit.prepare(candidate, secrets.randbits(31))
                pair = speed_check._pair(reference, candidate, secrets.randbits(31), kit.CALL_TIMEOUT_S,
                                         control_session=reference)
                rows.append((name, _measure(pair, protocol, args.runs)))
            except Exception as err:  # a wrong solution: say why, go on
                print(f"{name:40s} not measured: {str(err).splitlines()[0][:150]}")
            finally:
                candidate.session.close()
        for name, runs in rows:
            figures = timing.summary(runs, protocol, reference_figures["speedup"])
            decision = timing.decide(runs, bar, protocol, baseline_s, reference_figures["speedup"])
            verdict = {True: "pass", False: "fail", None: "inconclusive"}[decision]
            print(f"{name:40s} {figures['original_p50_ms']:8.3f} {figures['original_p95_ms']:7.3f} "
                  f"{figures['optimised_p50_ms']:8.3f} {figures['optimised_p95_ms']:7.3f} {figures['speedup']:8.2f} "
                  f"{figures['speedup_spread']:7.1%} {figures['worst_iqr_ratio']:8.1%} {figures['quiet_runs']:5d}  "
                  f"{figures.get('controlled_speedup', figures['speedup']):10.2f}  {verdict} (bar {bar:.2f}x)")
        reference.session.close()


if __name__ == "__main__":
    main()
