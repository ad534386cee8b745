"""Speed-ups of `latency` solutions measured as the graded check measures them, without pytest.

    .venv/bin/python challenges/latency/tools/measure_sandboxed.py known_bad/*.py --backend docker

Starts a sandboxed worker for the reference solution and one per solution given (same
limits, assets and adapter as grading), then for the reference itself (a second copy in
its own worker) and for each solution runs the protocol of ``hidden/latency_timing.py``:
warm-up, then paired rounds of fresh images (the original model and the reference's
callable timed in the reference's worker while the solution's worker is frozen, the
solution's callable after), every output checked, until the interval on the median
fraction of the reference decides or the budget runs out. Prints the p50s, the speed-up,
the fraction of the reference with its interval, the rounds and the verdict the graded
check would give. For tuning the challenge; not a grader.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

CHALLENGE = Path(__file__).resolve().parent.parent
ROOT = CHALLENGE.parent.parent
sys.path.insert(0, str(ROOT))

from harness.backends import make_sandbox  # noqa: E402
from harness.sandbox import Limits, SandboxConfig, WorkerSpec  # noqa: E402
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

    @contextlib.contextmanager
    def frozen(self) -> Iterator[str]:
        with self.session.frozen() as how:
            yield how


def _session(solution: Path, folder: Path, backend: str) -> WorkerSession:
    workspace = folder / f"{len(list(folder.iterdir()))}-{solution.stem}"
    workspace.mkdir(mode=0o755)
    shutil.copyfile(solution, workspace / "solution.py")
    (workspace / "solution.py").chmod(0o644)
    limits = Limits(memory_mb=4096, scratch_mb=1024, cpu_threads=1)
    spec = WorkerSpec(workspace, "solution.py", None, [{"name": "optimize", "parameters": ["model", "example_input"]}],
                      limits, label=solution.stem, assets=CHALLENGE / "assets", adapter="adapter.py")
    session = WorkerSession(make_sandbox(SandboxConfig(backend=backend)), spec)
    session.start()
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("solutions", nargs="*", help="solution files, relative to the challenge folder or absolute")
    parser.add_argument("--backend", default="auto", help="auto, docker or local")
    args = parser.parse_args()
    protocol = timing.CPU
    bar = speed_check.FRACTION_OF_REFERENCE
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        folder.chmod(0o755)
        reference = Remote(_session(CHALLENGE / "reference" / "solution.py", folder, args.backend))
        kit.prepare(reference, 0)
        print(f"{'solution':40s} {'orig p50':>8s} {'opt p50':>8s} {'speedup':>8s} {'of ref.':>7s} "
              f"{'interval':>13s} {'rounds':>6s}  verdict (bar {bar:g} of the reference)")
        solutions = [CHALLENGE / "reference" / "solution.py"]
        solutions += [Path(name) if Path(name).is_absolute() else CHALLENGE / name for name in args.solutions]
        for path in solutions:
            candidate = Remote(_session(path, folder, args.backend))
            name = str(path.relative_to(CHALLENGE)) if path.is_relative_to(CHALLENGE) else str(path)
            try:
                kit.prepare(candidate, secrets.randbits(31))
                pair = speed_check._pair(candidate, reference, secrets.randbits(31), kit.CALL_TIMEOUT_S)
                measured = timing.measure(pair, protocol, bar)
            except Exception as err:  # a wrong solution: say why, go on
                print(f"{name:40s} not measured: {str(err).splitlines()[0][:150]}")
                continue
            finally:
                candidate.session.close()
            figures = timing.summary(measured)
            print(f"{name:40s} {figures['original_p50_ms']:8.3f} {figures['optimised_p50_ms']:8.3f} "
                  f"{figures['speedup']:8.2f} {figures['fraction_of_reference']:7.2f} "
                  f"{figures['fraction_interval_low']:6.2f}-{figures['fraction_interval_high']:<6.2f} "
                  f"{figures['rounds']:6d}  {figures['decision']} ({pair.frozen_how})")
        reference.session.close()


if __name__ == "__main__":
    main()
