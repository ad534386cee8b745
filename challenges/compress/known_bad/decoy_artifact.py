"""A decoy: sends a tiny artifact, and patches its own worker so that the original model answers for it.

The artifact is a linear classifier of the mean colour (a few hundred bytes: 6,000x
smaller). Then, in its own process, it replaces the challenge adapter's ``logits`` and
``run`` with functions that call the original model. A grader that measured accuracy in
the candidate's worker would see the original's accuracy next to the decoy's size: a model
that claims to be smaller than the model it runs. Ours rebuilds the artifact from its
bytes in a worker that runs no candidate code, so the decoy is measured as what it is.
"""

import sys

import torch


def compress(model, calibration_images, time_budget_s):
    adapter = sys.modules.get("cvgrade_adapter")
    if adapter is not None:
        def original_logits(which, images):
            with torch.inference_mode():
                return model(images).float().clone()

        adapter.logits = original_logits
        adapter.run = lambda which, image: original_logits(which, image)
    return {
        "format": "compact/1", "engine": "x86", "output": "logits",
        "nodes": [
            {"op": "adaptive_avg_pool2d", "inputs": ["image"], "output": "colour"},
            {"op": "flatten", "inputs": ["colour"], "output": "features"},
            {"op": "linear", "inputs": ["features"], "output": "logits", "weight": "w", "bias": "b"},
        ],
        "tensors": {"w": torch.randn(10, 3), "b": torch.zeros(10)},
    }
