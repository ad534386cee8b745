"""Try your finetune on your own machine: train on 20 images of each class, measure accuracy on the other 10.

    python try_finetune.py solution.py [--budget 45] [--assets PATH] [--threads 1]

It builds the backbone and the training set the way the grader does (from the
challenge's assets folder: found through cvgrade, or given with --assets or
CVGRADE_ASSETS), holds 10 images of each class back, calls your finetune with
the budget, and prints the time it took and the accuracy on the held-back
images. Your model is used as the grader uses it: turned into plain data (its
layers and weights, ``plain_model.py`` in the assets) right after finetune
returns, rebuilt from that by the grader's code, and called under
torch.no_grad(). This is only a practice tool: the graded checks train on all 30
images of each class and test on held-back images you never see.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import types
from pathlib import Path


def find_assets(given: str | None) -> Path:
    if given or os.environ.get("CVGRADE_ASSETS"):
        return Path(given or os.environ["CVGRADE_ASSETS"])
    try:
        from grader.challenge import load_challenge

        folder = load_challenge("finetune").assets_dir
    except Exception as err:  # any failure means: say where to look
        sys.exit(f"cannot find the finetune challenge's assets through cvgrade ({err}); pass --assets PATH")
    assert folder is not None
    return folder


def load(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("solution", type=Path)
    parser.add_argument("--budget", type=float, default=45.0, help="time_budget_s (default 45, the CPU budget)")
    parser.add_argument("--assets", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the grader uses 1 on a CPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    assets = find_assets(args.assets)
    data = load(assets / "finetune_data.py", "try_finetune_data")
    config = data.DataConfig.load(assets)
    train = data.load_images(config.folder / config.train, config.image_size)
    fit, held = [], []
    for label in range(len(train.classes)):
        index = torch.nonzero(train.labels == label).flatten().tolist()
        fit += index[:20]
        held += index[20:30]
    train_set = data.TrainSet(train.images[fit], train.labels[fit], train.classes, config.mean, config.std)
    backbone = data.build_backbone(config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    solution = load(args.solution.resolve(), "solution")
    started = time.perf_counter()
    model = solution.finetune(backbone, train_set, len(train.classes), args.budget, device)
    plain_model = load(assets / "plain_model.py", "try_finetune_plain_model")
    try:
        exported = plain_model.export(model)
    except plain_model.ExportError as err:
        sys.exit(f"the grader cannot grade the model finetune returned: {err}")
    seconds = time.perf_counter() - started  # the grader's clock also runs until the model is exported
    model = plain_model.rebuild(exported, device)
    images = data.normalise(train.images[held], config.mean, config.std).to(device)
    with torch.no_grad():
        logits = model(images)
    accuracy = float((logits.argmax(1).cpu() == train.labels[held]).float().mean())
    limit = args.budget * 1.1 + 2
    verdict = "within the budget" if seconds <= args.budget else (
        "over the budget, within the grace" if seconds <= limit else "TIME BUDGET EXCEEDED")
    print(f"finetune took {seconds:.1f} s of {args.budget:g} s ({verdict}) on {device}, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"logits {tuple(logits.shape)}; accuracy on {len(held)} held-back training images: {accuracy:.1%}")


if __name__ == "__main__":
    main()
