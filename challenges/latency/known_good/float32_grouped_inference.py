"""Known good: the two model-specific fixes and inference mode, nothing more.

float32, grouped depthwise convs and inference mode; BatchNorm unfused, host syncs left,
no channels-last. About 0.77 of the reference's speed-up (tools/README.md), clear of the
0.6 bar: `cvgrade validate` checks that it passes. (tools/partial/ holds its siblings that
leave one fix out, to see where the bar falls.)
"""

import copy

import torch
import torch.nn.functional as F

FLOAT32, GROUPED, INFERENCE = True, True, True


def _grouped(block):
    def forward(x):
        out = F.relu(block.bn1(F.conv2d(x, block.depthwise, padding=1, groups=x.shape[1])))
        return F.relu(block.bn2(block.pointwise(out)) + x)
    return forward


def optimize(model, example_input):
    model = copy.deepcopy(model)
    if FLOAT32:
        model = model.float()
        model.normalise = lambda images: (images - 0.5) / 0.25
    if GROUPED:
        for block in (model.block1, model.block2, model.block4):
            block.forward = _grouped(block)
    if not INFERENCE:
        return model

    def run(images):
        with torch.inference_mode():
            return model(images)
    return run
