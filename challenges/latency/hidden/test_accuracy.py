"""Hidden checks: the optimised callable computes the original model's function.

Expected logits come from the original model in the reference's worker, on hidden images:
synthetic ones like the training data (seeds that never leave the judge) and unusual
ones (flat colours, black, white, noise, smooth fields, binary patterns).
"""

from __future__ import annotations

import secrets

import latency_kit as kit
import torch

TOP1_SEED, TOP1_COUNT = 5_200_000, 300
CLOSE_SEED, CLOSE_COUNT = 5_300_000, 100
UNUSUAL_SEED = 5_400_000


def _outputs(candidate, reference, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    kit.prepare(reference, 0)
    kit.prepare(candidate, secrets.randbits(31))
    pairs = []
    for index in range(len(images)):
        image = images[index:index + 1]
        expected = kit.as_logits(
            reference.call("adapter.run_original", image.clone(), timeout_s=kit.CALL_TIMEOUT_S),
            "the original model",
        )
        got = kit.as_logits(
            candidate.call("adapter.run_optimized", image.clone(), timeout_s=kit.CALL_TIMEOUT_S),
            "the callable returned by optimize",
        )
        pairs.append((got, expected))
    return pairs


def test_top1_agreement(candidate, reference, record):
    images = torch.cat([kit.synthetic_images(TOP1_COUNT, TOP1_SEED), kit.unusual_images(UNUSUAL_SEED)])
    pairs = _outputs(candidate, reference, images)
    agree = sum(int(got.argmax()) == int(expected.argmax()) for got, expected in pairs)
    share = agree / len(pairs)
    record.metric("top1_agreement", round(share, 4))
    record.gauge("top-1 agreement with the original model", 100 * share, threshold=100 * kit.MIN_TOP1_AGREEMENT,
                 unit="%", maximum=100)
    assert share >= kit.MIN_TOP1_AGREEMENT, (
        f"the callable's top-1 class agreed with the original model's on {share:.1%} of {len(pairs)} hidden "
        f"images; at least {kit.MIN_TOP1_AGREEMENT:.0%} is required"
    )


def test_logits_close(candidate, reference, record):
    images = torch.cat([kit.synthetic_images(CLOSE_COUNT, CLOSE_SEED), kit.unusual_images(UNUSUAL_SEED + 1)])
    pairs = _outputs(candidate, reference, images)
    errors = [kit.logits_error(got, expected) for got, expected in pairs]
    off = sum(not (error <= 1.0) for error in errors)
    record.metric("worst_logit_error_in_tolerances", round(max(errors), 4) if off == 0 else "over")
    assert off == 0, (
        f"the callable's logits were not within {kit.ATOL:g} + {kit.RTOL:g}*|expected| of the original "
        f"model's on {off} of {len(pairs)} hidden images (worst: {max(errors):.3g} times the tolerance)"
    )
