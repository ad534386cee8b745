"""Measure solutions of the finetune challenge the way the judge does, without the sandbox: accuracy and time.

    python challenges/finetune/tools/calibrate.py reference/solution.py known_bad/linear_probe.py --seeds 5
    python challenges/finetune/tools/calibrate.py reference/solution.py --budget 30 --threads 1

Each run is a fresh process (as a worker is): it loads the adapter from
``assets/``, binds it to the solution, times ``adapter.train(budget, seed)`` and
measures accuracy on the held-back test set. Runs go one after another, never in
parallel (they would slow each other down). Paths are relative to the challenge
folder. The budget defaults to the "cpu" entry of ``hidden/thresholds.toml``.
Use it to set thresholds for a new data set or machine: see NOTES.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import tomllib
import types
from pathlib import Path

CHALLENGE = Path(__file__).resolve().parent.parent


def one_run(solution_path: Path, seed: int, budget: float, threads: int) -> dict[str, object]:
    import torch

    torch.set_num_threads(threads)
    os.environ["CVGRADE_ASSETS"] = str(CHALLENGE / "assets")
    solution = types.ModuleType("solution")
    solution.__file__ = str(solution_path)
    exec(compile(solution_path.read_text(), str(solution_path), "exec"), solution.__dict__)
    spec = importlib.util.spec_from_file_location("cvgrade_adapter", CHALLENGE / "assets" / "adapter.py")
    adapter = importlib.util.module_from_spec(spec)
    sys.modules["cvgrade_adapter"] = adapter
    spec.loader.exec_module(adapter)
    adapter.bind(solution, str(CHALLENGE / "assets"))

    data = adapter.data
    table = tomllib.loads((CHALLENGE / "hidden" / "thresholds.toml").read_text())
    config = data.DataConfig.load(CHALLENGE / "assets")
    test = data.load_images(CHALLENGE / "hidden" / table["test"]["path"], config.image_size)

    started = time.perf_counter()
    info = adapter.train(budget, seed)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    logits = torch.cat([adapter.predict(test.images[i:i + 100]) for i in range(0, len(test.images), 100)])
    predict_s = time.perf_counter() - started
    accuracy = float((logits.argmax(1) == test.labels).double().mean())
    return {"accuracy": accuracy, "train_s": seconds, "predict_s": predict_s,
            "threads_left": info["threads_left"], "import_cpu_s": info["import_cpu_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("solutions", nargs="+", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.solutions[0], args.first_seed, args.budget, args.threads)))
        return
    table = tomllib.loads((CHALLENGE / "hidden" / "thresholds.toml").read_text())
    budget = args.budget if args.budget is not None else float(table["hardware"]["cpu"]["budget_s"])
    summary = []
    for solution in args.solutions:
        path = solution if solution.is_absolute() else CHALLENGE / solution
        accuracies, times = [], []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            command = [sys.executable, __file__, str(path), "--one", "--first-seed", str(seed),
                       "--budget", str(budget), "--threads", str(args.threads)]
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
            if completed.returncode != 0:
                print(f"{solution} seed {seed}: failed\n{completed.stderr[-2000:]}", flush=True)
                continue
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            accuracies.append(result["accuracy"])
            times.append(result["train_s"])
            print(f"{solution} seed {seed}: accuracy {result['accuracy']:.3f}, train {result['train_s']:.1f} s, "
                  f"predict {result['predict_s']:.2f} s", flush=True)
        if accuracies:
            summary.append((str(solution), accuracies, times))
    print(f"\nbudget {budget:g} s, {args.threads} thread(s)")
    for name, accuracies, times in summary:
        print(f"{name}: accuracy mean {statistics.mean(accuracies):.3f}, min {min(accuracies):.3f}, "
              f"max {max(accuracies):.3f} over {len(accuracies)} seeds; train time max {max(times):.1f} s; "
              f"all: {', '.join(f'{a:.3f}' for a in accuracies)}")


if __name__ == "__main__":
    main()
