"""Deterministic synthetic images for the `compress` challenge: ten classes of shapes and textures.

Each image is a 3 x 64 x 64 float32 tensor in [0, 1]: a shape or a texture in one colour
on a background of another, with a smooth illumination gradient and pixel noise. The
same seed always gives the same images (on any machine: only torch's CPU generator and
elementwise arithmetic are used).

The same generator as the `latency` challenge's, made harder (fainter shapes, stronger
noise), so that the classifier is not perfect and a sloppy compression shows in its
accuracy. The weights script trains on these; the graded checks draw fresh ones from seeds
of their own. Nothing here is secret.
"""

from __future__ import annotations

import math

import torch

SIZE = 64
CLASSES = (
    "disc", "square", "diamond", "ring", "cross",
    "horizontal stripes", "vertical stripes", "checkerboard", "diagonal stripes", "two dots",
)


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, 1, 1, generator=gen)


def _soft(distance: torch.Tensor, softness: torch.Tensor) -> torch.Tensor:
    """1 inside (distance < 0), 0 outside, with an edge about ``softness`` wide."""
    return torch.sigmoid(-distance / softness)


def make_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images [n, 3, 64, 64] (float32, in [0, 1]) and their labels [n] (int64, 0 to 9).

    Contrast and noise vary per image, so that some images are hard (low contrast, strong
    noise, a small shape) and the classifier's confidence means something.
    """
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(CLASSES), (n,), generator=gen)
    axis = (torch.arange(SIZE, dtype=torch.float32) + 0.5) / SIZE * 2.0 - 1.0
    y, x = axis.view(1, SIZE, 1), axis.view(1, 1, SIZE)
    cx, cy = _uniform(gen, n, -0.3, 0.3), _uniform(gen, n, -0.3, 0.3)
    radius = _uniform(gen, n, 0.22, 0.6)
    soft = _uniform(gen, n, 0.01, 0.05)
    angle = _uniform(gen, n, -0.35, 0.35)  # shapes and stripes are tilted a little
    freq = _uniform(gen, n, 7.0, 14.0)
    phase = _uniform(gen, n, 0.0, 2.0 * math.pi)
    cos, sin = torch.cos(angle), torch.sin(angle)
    dx, dy = x - cx, y - cy
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # coordinates in the shape's own frame
    distance = torch.sqrt(u * u + v * v)
    arm = radius * 0.28

    masks = [
        _soft(distance - radius, soft),
        _soft(torch.maximum(u.abs(), v.abs()) - radius * 0.85, soft),
        _soft(u.abs() + v.abs() - radius * 1.15, soft),
        _soft((distance - radius * 0.75).abs() - radius * 0.22, soft),
        torch.maximum(_soft(torch.maximum(u.abs() - radius, v.abs() - arm), soft),
                      _soft(torch.maximum(v.abs() - radius, u.abs() - arm), soft)),
        _soft(-torch.sin(freq * (-sin * x + cos * y) + phase), torch.full_like(soft, 0.15)),
        _soft(-torch.sin(freq * (cos * x + sin * y) + phase), torch.full_like(soft, 0.15)),
        _soft(-torch.sin(freq * 0.6 * (cos * x + sin * y)) * torch.sin(freq * 0.6 * (-sin * x + cos * y) + phase),
              torch.full_like(soft, 0.1)),
        _soft(-torch.sin(freq * ((cos - sin) * x + (sin + cos) * y) / math.sqrt(2.0) + phase),
              torch.full_like(soft, 0.15)),
        torch.maximum(_soft(torch.sqrt((u - radius * 0.6) ** 2 + v * v) - radius * 0.35, soft),
                      _soft(torch.sqrt((u + radius * 0.6) ** 2 + v * v) - radius * 0.35, soft)),
    ]
    mask = torch.stack(masks, dim=1)[torch.arange(n), labels].unsqueeze(1)  # [n, 1, 64, 64]

    # Colours: a background of any hue, and a foreground lighter or darker by a random contrast.
    bg = 0.2 + 0.6 * torch.rand(n, 3, 1, 1, generator=gen)
    contrast = 0.04 + 0.3 * torch.rand(n, 1, 1, 1, generator=gen)
    sign = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, -1.0, 1.0)
    tint = 0.6 + 0.8 * torch.rand(n, 3, 1, 1, generator=gen)
    fg = bg + sign * contrast * tint
    gradient = (_uniform(gen, n, -0.15, 0.15) * x + _uniform(gen, n, -0.15, 0.15) * y).unsqueeze(1)
    sigma = 0.04 + 0.26 * torch.rand(n, 1, 1, 1, generator=gen)
    pixels = sigma * torch.randn(n, 3, SIZE, SIZE, generator=gen)
    images = bg + (fg - bg) * mask + gradient + pixels
    return images.clamp(0.0, 1.0).contiguous(), labels
