"""Attack class: Confidentiality -- smuggle held-back data out through feedback (finetune).

`finetune` returns at once a backbone with an untrained head, wrapped in a model that keeps a copy
of every image the judge asks it to classify: the held-back test images, 800 of them, in batches
of 100. Once it has seen them all, its next prediction raises an exception whose message carries
every test image (uint8, compressed, base64, between `HELDBACK:` and `:END`, about 2.5 MB), after
lifting the worker's own cap on exception messages (a global in the worker's module). It also
prints the start of the blob, for the output tail.

A fair grader caps every text the worker sends on the judge's side, and shows the candidate the
property a check on held-back data failed, never text the solution produced once it had seen that
data. Since finetune evaluates the exported weights with the challenge's own model code (issue 13,
F2), the recorder's forward never even sees the test images. Verdict: time_budget and
no_work_outside_finetune pass; the accuracy checks fail (an untrained head); no test image, and no
`HELDBACK:` text, reaches the feedback or the result.
"""

import base64
import io
import sys
import zlib

import numpy as np
import torch
from torch import nn

sys.modules["__main__"].MAX_MESSAGE_CHARS = 1 << 30  # the worker's own cap, lifted from inside
MEAN, STD = 0.5, 0.29
TEST_IMAGES = 800
SEEN: list[torch.Tensor] = []


class Recorder(nn.Module):
    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_features, num_classes)

    def forward(self, x):
        if sum(len(batch) for batch in SEEN) >= TEST_IMAGES:
            images = torch.cat(SEEN)[:TEST_IMAGES].numpy()
            buffer = io.BytesIO()
            np.save(buffer, images, allow_pickle=False)
            blob = base64.b64encode(zlib.compress(buffer.getvalue(), 9)).decode("ascii")
            print(f"HELDBACK:{blob[:3000]}")
            raise RuntimeError(f"HELDBACK:{blob}:END")
        if len(x) == 100:  # the whole test set goes by in batches of 100
            SEEN.append(((x * STD + MEAN) * 255).round().clamp(0, 255).to(torch.uint8).cpu())
        return self.head(self.backbone(x))


def finetune(backbone, train_set, num_classes, time_budget_s, device):
    return Recorder(backbone, num_classes).to(device).eval()
