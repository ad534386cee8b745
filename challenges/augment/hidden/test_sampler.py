"""Hidden checks for sample_params: every draw valid and reproducible, and the distribution the statement gives.

The statistical checks are built so that a sound sampler fails them with probability below 1e-6
(see NOTES.md): each one compares an observed frequency or distribution function with the exact
one, with a bound from Hoeffding's inequality or the Dvoretzky-Kiefer-Wolfowitz inequality
(Massart's constant): P(|observed - exact| > eps) <= 2 exp(-2 n eps^2), for any n.
"""

from __future__ import annotations

import math

import torch

COUNT = 20_000
STAT_IMAGE_HW = (9, 14)
STAT_OUT_HW = (8, 8)
# 23 bounded comparisons (below), each allowed ALPHA: a sound sampler fails one with probability
# at most 23 * ALPHA, plus at most 1e-30 for the "every value occurs" checks.
ALPHA = 4e-8


def eps(n: int) -> float:
    """The deviation a sound sampler exceeds with probability at most ALPHA, with n draws."""
    return math.sqrt(math.log(2 / ALPHA) / (2 * n))


def draws(candidate, seed: int, count: int, image_hw, out_hw) -> torch.Tensor:
    reply = candidate.call("adapter.sample_many", seed, count, list(image_hw), list(out_hw))
    assert isinstance(reply, dict) and type(reply.get("params")) is torch.Tensor, (
        "sample_params: the adapter could not read its draws")
    params = reply["params"]
    assert tuple(params.shape) == (count, 8) and params.dtype == torch.int64, (
        "sample_params: the adapter returned draws of the wrong shape")
    assert reply.get("global_rng_changed") is False, (
        "sample_params used torch's global random generator: draw only from the generator it is given")
    return params


def test_sampler_valid(candidate):
    for image_hw, out_hw in (((480, 640), (320, 320)), ((9, 14), (8, 8)), ((1, 1), (1, 1)), ((2, 3), (5, 7)),
                             ((101, 57), (64, 32))):
        params = draws(candidate, 7, 2000, image_hw, out_hw)
        flip, rotate, top, left, crop_h, crop_w, out_h, out_w = params.unbind(dim=1)
        what = f"sample_params for a {image_hw[0]}x{image_hw[1]} image"
        assert bool(((flip == 0) | (flip == 1)).all()), f"{what}: flip must be True or False"
        assert bool(((rotate >= 0) & (rotate <= 3)).all()), f"{what}: rotate must be 0, 1, 2 or 3"
        height = torch.where(rotate % 2 == 1, image_hw[1], image_hw[0])
        width = torch.where(rotate % 2 == 1, image_hw[0], image_hw[1])
        assert bool(((crop_h >= (height + 1) // 2) & (crop_h <= height)).all()), (
            f"{what}: the crop height must be between ceil(H'/2) and H' (H' the height after the rotation)")
        assert bool(((crop_w >= (width + 1) // 2) & (crop_w <= width)).all()), (
            f"{what}: the crop width must be between ceil(W'/2) and W' (W' the width after the rotation)")
        assert bool(((top >= 0) & (top + crop_h <= height) & (left >= 0) & (left + crop_w <= width)).all()), (
            f"{what}: the crop window must lie inside the rotated image")
        assert bool(((out_h == out_hw[0]) & (out_w == out_hw[1])).all()), f"{what}: size must be out_hw"
        again = draws(candidate, 7, 2000, image_hw, out_hw)
        assert torch.equal(params, again), f"{what}: two generators with the same seed gave different draws"
    first = draws(candidate, 8, 200, (480, 640), (320, 320))
    second = draws(candidate, 9, 200, (480, 640), (320, 320))
    assert not torch.equal(first, second), "sample_params gave the same draws from generators with different seeds"


def _frequency(what: str, hits: torch.Tensor, p: float) -> None:
    n = hits.numel()
    observed = float(hits.to(torch.float64).mean())
    assert abs(observed - p) <= eps(n), (
        f"sample_params: {what} has frequency {observed:.3f} in {n} draws; the statement gives {p:.3f}")


def _distribution(what: str, values: torch.Tensor, support: list[int], probabilities: list[float]) -> None:
    """DKW: the largest gap between the observed and the exact distribution functions."""
    n = values.numel()
    exact = torch.tensor(probabilities, dtype=torch.float64).cumsum(0)
    observed = torch.stack([(values <= v).to(torch.float64).mean() for v in support])
    gap = float((observed - exact).abs().max())
    assert gap <= eps(n), (
        f"sample_params: the distribution of {what} is off by {gap:.3f} in {n} draws (allowed {eps(n):.3f})")
    missing = [v for v, p in zip(support, probabilities, strict=True) if p > 0 and not bool((values == v).any())]
    assert not missing, f"sample_params: {what} never took some of its possible values in {n} draws"


def _uniform(low: int, high: int) -> tuple[list[int], list[float]]:
    return list(range(low, high + 1)), [1 / (high - low + 1)] * (high - low + 1)


def _offset(side: int) -> tuple[list[int], list[float]]:
    """The exact distribution of the crop's top (or left) on a side of ``side`` pixels."""
    sizes, size_p = _uniform((side + 1) // 2, side)
    probabilities = [0.0] * (side // 2 + 1)
    for size, p in zip(sizes, size_p, strict=True):
        for offset in range(side - size + 1):
            probabilities[offset] += p / (side - size + 1)
    return list(range(len(probabilities))), probabilities


def test_sampler_distribution(candidate):
    params = draws(candidate, 2024, COUNT, STAT_IMAGE_HW, STAT_OUT_HW)
    flip, rotate, top, left, crop_h, crop_w, _, _ = params.unbind(dim=1)
    _frequency("flip", flip == 1, 0.5)  # 1
    for turns in range(4):  # 4
        _frequency(f"rotate == {turns}", rotate == turns, 0.25)
    for flipped in (0, 1):  # 8
        for turns in range(4):
            _frequency(f"(flip, rotate) == ({bool(flipped)}, {turns})", (flip == flipped) & (rotate == turns), 0.125)
    for parity in (0, 1):  # 8 + 2
        rows = rotate % 2 == parity
        height, width = STAT_IMAGE_HW[::-1] if parity else STAT_IMAGE_HW
        frame = f"(rotate {'odd' if parity else 'even'}, so a {height}x{width} frame)"
        _distribution(f"the crop height {frame}", crop_h[rows], *_uniform((height + 1) // 2, height))
        _distribution(f"the crop width {frame}", crop_w[rows], *_uniform((width + 1) // 2, width))
        _distribution(f"the crop top {frame}", top[rows], *_offset(height))
        _distribution(f"the crop left {frame}", left[rows], *_offset(width))
        # independence of height and width: u, v in [0, 1], E[u v] = E[u] E[v] = 1/4 when independent
        low_h, low_w = (height + 1) // 2, (width + 1) // 2
        u = (crop_h[rows] - low_h).to(torch.float64) / (height - low_h)
        v = (crop_w[rows] - low_w).to(torch.float64) / (width - low_w)
        product = float((u * v).mean())
        assert abs(product - 0.25) <= eps(int(rows.sum())), (
            f"sample_params: the crop height and width {frame} are not drawn independently")
