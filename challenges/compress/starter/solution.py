"""Your solution to the `compress` challenge. Read README.md for the full statement.

`compress` gets the trained ShapeCNN (source and weights in assets/) and 500 calibration
images, and returns the compressed model as an *artifact*: an architecture in a small fixed
schema and the tensors it names (assets/compact.py says all of it). The grader packs it into
bytes (its size), rebuilds it with its own loader, and measures accuracy and latency on that.

This starter exports the model unchanged: it is as accurate and as fast as the original, and
it fails the size check. Make it at least 3x smaller without losing accuracy or speed.

Run the public checks with `cvgrade test DIR` and grade yourself with
`cvgrade grade DIR/solution.py --challenge compress`.
"""

import os
import sys

import torch
from torch import Tensor, nn

# assets/ holds compact.py (the format), model.py and synthetic.py; the grader sets CVGRADE_ASSETS.
ASSETS = os.environ.get("CVGRADE_ASSETS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
sys.path.insert(0, ASSETS)
import compact  # noqa: E402


def compress(model: nn.Module, calibration_images: Tensor, time_budget_s: float) -> dict:
    """Return a compact artifact of a model at least 3x smaller than ``model``, as fast and as accurate.

    Args:
        model: the trained ShapeCNN in eval mode, on the CPU (float32). It is yours to change.
        calibration_images: [500, 3, 64, 64] float32 images in [0, 1] like the ones the model
            serves (no labels).
        time_budget_s: how long compress may take (60 s), measured by the grader.

    Returns:
        An artifact dict in the format of assets/compact.py: ``compact.pack(artifact)`` must
        accept it, and ``compact.build(artifact)`` is the model the grader measures.
    """
    with torch.no_grad():
        return compact.export_float(model)
