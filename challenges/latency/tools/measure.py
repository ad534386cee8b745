"""Time solutions of the `latency` challenge against the original model, in this process, without the grader.

    .venv/bin/python challenges/latency/tools/measure.py                       # the reference
    .venv/bin/python challenges/latency/tools/measure.py reference/solution.py known_bad/*.py --runs 3

For designing the challenge and reading its figures, not for grading: everything runs in
one process on one thread (as in the worker), calls alternate (original, then each
solution, on the same fresh image), and it prints per solution the median p50 and p95
over runs, the speed-up (p50 of the original / p50 of the solution, median over runs),
its spread over runs, the worst IQR / median of a run, and accuracy against the original
(largest logit error, top-1 agreement). Wall clock and CPU time are both shown.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

CHALLENGE = Path(__file__).resolve().parent.parent
ASSETS = CHALLENGE / "assets"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("solutions", nargs="*", default=["reference/solution.py"],
                        help="solution files, relative to the challenge folder or absolute")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=300, help="timed calls per run and solution")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_module = _load("cvgrade_assets_model", ASSETS / "model.py")
    synthetic = _load("cvgrade_assets_synthetic", ASSETS / "synthetic.py")
    original = model_module.load_model(str(ASSETS / "shapenet10.pt"))
    example = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    callables: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"original": original}
    for index, name in enumerate(args.solutions):
        path = Path(name) if Path(name).is_absolute() else CHALLENGE / name
        module = _load(f"solution_{index}", path)
        started = time.perf_counter()
        callables[name] = module.optimize(copy.deepcopy(original), example.clone())
        print(f"{name}: optimize took {time.perf_counter() - started:.2f} s")

    clocks = {"wall": time.perf_counter, "cpu": time.thread_time}
    per_run: dict[str, list[dict[str, float]]] = {name: [] for name in callables}
    errors = {name: 0.0 for name in callables}
    agree = {name: [0, 0] for name in callables}
    for run in range(args.runs):
        images, _ = synthetic.make_images(args.warmup + args.samples, 10_000 + run)
        samples: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in callables}
        for i in range(len(images)):
            x = images[i:i + 1].contiguous()
            expected = None
            for name, fn in callables.items():
                wall, cpu = time.perf_counter(), time.thread_time()
                out = fn(x.clone())
                cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
                if i < args.warmup:
                    continue
                samples[name]["wall"].append(wall)
                samples[name]["cpu"].append(cpu)
                out = out.detach().float().cpu()
                if expected is None:
                    expected = out
                errors[name] = max(errors[name], float((out - expected).abs().max()))
                agree[name][0] += int(out.argmax() == expected.argmax())
                agree[name][1] += 1
        for name in callables:
            figures = {}
            for clock in clocks:
                values = samples[name][clock]
                p50 = statistics.median(values)
                figures[f"{clock}_p50"] = p50
                figures[f"{clock}_p95"] = _quantile(values, 0.95)
                figures[f"{clock}_iqr"] = (_quantile(values, 0.75) - _quantile(values, 0.25)) / p50
            per_run[name].append(figures)

    print(f"\n{args.runs} runs x {args.samples} samples, {args.threads} thread(s); times in ms (median over runs)")
    print(f"{'solution':34s} {'p50':>7s} {'p95':>7s} {'cpu p50':>7s} {'speedup':>8s} {'spread':>7s} "
          f"{'IQR/med':>7s} {'max err':>8s} {'top-1':>6s}")
    base = per_run["original"]
    for name, runs in per_run.items():
        speedups = [b["wall_p50"] / r["wall_p50"] for b, r in zip(base, runs, strict=True)]
        speedup = statistics.median(speedups)
        spread = (max(speedups) - min(speedups)) / speedup
        print(f"{name:34s} {statistics.median(r['wall_p50'] for r in runs) * 1e3:7.3f} "
              f"{statistics.median(r['wall_p95'] for r in runs) * 1e3:7.3f} "
              f"{statistics.median(r['cpu_p50'] for r in runs) * 1e3:7.3f} "
              f"{speedup:8.2f} {spread:7.1%} {max(r['wall_iqr'] for r in runs):7.1%} "
              f"{errors[name]:8.2g} {agree[name][0] / max(1, agree[name][1]):6.1%}")


if __name__ == "__main__":
    main()
