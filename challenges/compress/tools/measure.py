"""Measure solutions as the judge does, without the sandbox: size, accuracy drop, speed at batch size 1.

    .venv/bin/python challenges/compress/tools/measure.py reference/solution.py known_good/*.py
    .venv/bin/python challenges/compress/tools/measure.py known_bad/dense_a_trous.py --speed-runs 5

Paths are relative to the challenge folder (or absolute). Each solution's ``compress`` runs in
this process on one thread with the adapter's calibration images; its artifact is packed,
unpacked and rebuilt with ``compact.build``, like the evaluator does. Accuracy is measured on
``--sets`` sets of ``--images`` images from seeds other than the graded ones (the hidden
set's own figures are in the grading results); speed is the median over ``--speed-runs``
runs of original p50 / compressed p50, the two alternating call by call in this process.
NOTES.md has the figures this printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

CHALLENGE = Path(__file__).resolve().parent.parent
ASSETS = CHALLENGE / "assets"
SET_SEEDS = (3_100_000, 3_200_000, 3_300_000, 3_400_000, 3_500_000)


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(images[i:i + 100]).argmax(1) for i in range(0, len(images), 100)])


def _speedups(original: torch.nn.Module, compressed: torch.nn.Module, runs: int, synthetic: ModuleType) -> list[float]:
    images, _ = synthetic.make_images(300, 9_000_000)
    out = []
    with torch.inference_mode():
        for index in range(60):
            original(images[index:index + 1])
            compressed(images[index:index + 1])
        for _ in range(runs):
            times: dict[str, list[float]] = {"original": [], "compressed": []}
            for index in range(len(images)):
                order = (("original", original), ("compressed", compressed))
                for name, model in order if index % 2 else order[::-1]:
                    started = time.perf_counter()
                    model(images[index:index + 1])
                    times[name].append(time.perf_counter() - started)
            out.append(statistics.median(times["original"]) / statistics.median(times["compressed"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("solutions", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--sets", type=int, default=3)
    parser.add_argument("--speed-runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    os.environ["CVGRADE_ASSETS"] = str(ASSETS)
    adapter = _load("cvgrade_adapter", ASSETS / "adapter.py")
    compact, model_code, synthetic = adapter.compact, adapter.model_code, adapter.synthetic
    adapter.bind(None, str(ASSETS))
    weights = str(ASSETS / adapter.WEIGHTS)
    original = model_code.load_model(weights)
    original_bytes = len(compact.pack(compact.export_float(original)))
    sets = [synthetic.make_images(args.images, seed) for seed in SET_SEEDS[:args.sets]]
    original_accuracy = [float((_predict(original, x) == y).double().mean()) for x, y in sets]
    print(f"original: {original_bytes} bytes; accuracy {', '.join(f'{a:.2%}' for a in original_accuracy)} "
          f"on {args.sets} sets of {args.images} images")
    for path in args.solutions:
        path = path if path.is_absolute() else CHALLENGE / path
        solution = _load(f"solution_{path.stem}", path)
        started = time.monotonic()
        artifact = solution.compress(model_code.load_model(weights), adapter.calibration_images(), 60.0)
        seconds = time.monotonic() - started
        blob = compact.pack(artifact)
        rebuilt = compact.build(compact.unpack(blob))
        drops = [100 * (a - float((_predict(rebuilt, x) == y).double().mean()))
                 for a, (x, y) in zip(original_accuracy, sets, strict=True)]
        speedups = _speedups(original, rebuilt, args.speed_runs, synthetic) if args.speed_runs else [float("nan")]
        print(f"{path.relative_to(CHALLENGE) if path.is_relative_to(CHALLENGE) else path}: compress {seconds:.1f} s, "
              f"{len(blob)} bytes ({original_bytes / len(blob):.2f}x smaller), accuracy drop "
              f"{', '.join(f'{d:+.2f}' for d in drops)} points, speed-up {statistics.median(speedups):.2f}x "
              f"(runs {', '.join(f'{s:.2f}' for s in speedups)})", flush=True)


if __name__ == "__main__":
    main()
