"""Weight sharing (Deep Compression style): a 256-entry k-means codebook per layer, uint8 indices.

Style: torch's ``fuse_conv_bn_eval`` folds each BatchNorm into its convolution (the BatchNorm
becomes an Identity), the challenge's own ``compact.export_float`` writes the fused float
model, and every weight in the artifact is then replaced by a codebook encoding: 1-D
k-means (Lloyd's algorithm, centroids started at quantiles, assignment by ``bucketize``
between sorted centroids) on the layer's values, float16 centroids and one uint8 index per
weight. Biases and the normalisation stay float32.

About 3.9x smaller; as fast as the original or a little faster (BatchNorm folded); non-uniform
levels fit the bell-shaped weights better than a uniform int8 grid.
"""

import itertools
import os
import sys

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

ASSETS = os.environ.get("CVGRADE_ASSETS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
sys.path.insert(0, ASSETS)
import compact  # noqa: E402

LEVELS = 256
ITERATIONS = 25


def kmeans_1d(values: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids (sorted) and the index of each value's nearest centroid."""
    flat = values.reshape(-1).double()
    centroids = torch.quantile(flat, torch.linspace(0, 1, levels, dtype=torch.float64)).unique()
    for _ in range(ITERATIONS):
        index = torch.bucketize(flat, (centroids[1:] + centroids[:-1]) / 2)
        sums = torch.zeros_like(centroids).index_add_(0, index, flat)
        counts = torch.zeros_like(centroids).index_add_(0, index, torch.ones_like(flat))
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        centroids = centroids.sort().values
    index = torch.bucketize(flat, (centroids[1:] + centroids[:-1]) / 2)
    return centroids, index.reshape(values.shape)


def fold_batch_norms(module: nn.Module) -> None:
    """Every BatchNorm2d that directly follows a Conv2d among a module's children, folded into it."""
    children = list(module.named_children())
    for (name, child), (next_name, after) in itertools.pairwise(children):
        if isinstance(child, nn.Conv2d) and isinstance(after, nn.BatchNorm2d):
            setattr(module, name, fuse_conv_bn_eval(child, after))
            setattr(module, next_name, nn.Identity())
    for _, child in module.named_children():
        fold_batch_norms(child)


def compress(model, calibration_images, time_budget_s):
    fold_batch_norms(model.eval())
    artifact = compact.export_float(model)
    tensors = artifact["tensors"]
    for node in artifact["nodes"]:
        if node["op"] not in ("conv2d", "linear"):
            continue
        name = node["weight"]
        centroids, index = kmeans_1d(tensors.pop(name), LEVELS)
        tensors[f"{name}.codebook"] = centroids.half()
        tensors[f"{name}.indices"] = index.to(torch.uint8)
        node["weight"] = {"encoding": "codebook", "indices": f"{name}.indices", "codebook": f"{name}.codebook"}
    return artifact
