"""Hidden checks: optimize() returns a callable that takes one image and returns [1, 10] float32 logits.

The callable lives in the candidate's worker (it cannot cross the channel); the challenge's
adapter keeps it there and calls it on images the judge sends.
"""

from __future__ import annotations

import secrets

import latency_kit as kit
import torch

SEED = 4_100_000


def test_interface(candidate):
    kit.prepare(candidate, secrets.randbits(31))
    images = kit.synthetic_images(3, SEED)
    for index in range(len(images)):
        value = candidate.call("adapter.run_optimized", images[index:index + 1].clone(), timeout_s=kit.CALL_TIMEOUT_S)
        logits = kit.as_logits(value, "the callable returned by optimize, on one image")
        assert bool(torch.isfinite(logits).all()), "the callable returned by optimize returned NaN or infinite logits"


def test_input_unchanged(candidate):
    kit.prepare(candidate, secrets.randbits(31))
    image = kit.synthetic_images(1, SEED + 1)
    reply = candidate.call("adapter.run_optimized_checked", image, timeout_s=kit.CALL_TIMEOUT_S)
    assert type(reply) is dict and "input_unchanged" in reply, "the judge could not read back the input"
    assert reply["input_unchanged"] is True, "the callable returned by optimize modified its input tensor"
