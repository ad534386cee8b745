"""Procedural shape images: the source task the backbone is pretrained on, and the target task of the challenge.

Every image is a pure function of ``(seed, index)``: a numpy ``Generator`` seeded with
both draws the scene, so any image can be re-made alone and a data set can be
generated in any order. Scenes are rendered at 2x and box-filtered down to the
output size (antialiasing), on numpy only.

A scene is a textured background (flat, gradient, smooth noise, stripes or
checks), one shape of a class (randomly coloured or textured, scaled, stretched,
rotated by up to 25 degrees and moved off centre), a few small distractors, and
pixel noise. The two tasks use disjoint shape classes; the target task also
fills half its shapes with a texture and draws busier backgrounds and more
distractors, a domain shift that fine-tuning can adapt to and a frozen backbone
cannot.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SUPERSAMPLE = 2

Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------- geometry


def _polygon(vertices: list[tuple[float, float]]) -> Mask:
    """Even-odd point-in-polygon test, vectorised over the grid."""
    xs = np.array([v[0] for v in vertices])
    ys = np.array([v[1] for v in vertices])

    def inside(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        result = np.zeros(u.shape, dtype=bool)
        for i in range(len(xs)):
            x1, y1, x2, y2 = xs[i - 1], ys[i - 1], xs[i], ys[i]
            if y1 == y2:
                continue
            crosses = (y1 > v) != (y2 > v)
            x_at = x1 + (v - y1) * (x2 - x1) / (y2 - y1)
            result ^= crosses & (u < x_at)
        return result

    return inside


def _regular(n: int, radius: float = 0.95, phase: float = 0.0) -> list[tuple[float, float]]:
    angles = phase + 2 * np.pi * np.arange(n) / n - np.pi / 2
    return [(radius * np.cos(a), radius * np.sin(a)) for a in angles]


def _star(points: int, inner: float, outer: float = 1.0) -> list[tuple[float, float]]:
    vertices = []
    for i in range(2 * points):
        radius = outer if i % 2 == 0 else inner
        angle = np.pi * i / points - np.pi / 2
        vertices.append((radius * np.cos(angle), radius * np.sin(angle)))
    return vertices


def _rect(x1: float, y1: float, x2: float, y2: float) -> Mask:
    return lambda u, v: (u > x1) & (u < x2) & (v > y1) & (v < y2)


def _union(*masks: Mask) -> Mask:
    def inside(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        result = masks[0](u, v)
        for mask in masks[1:]:
            result = result | mask(u, v)
        return result

    return inside


def _minus(mask: Mask, hole: Mask) -> Mask:
    return lambda u, v: mask(u, v) & ~hole(u, v)


def _rotated(mask: Mask, degrees: float) -> Mask:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return lambda u, v: mask(c * u + s * v, -s * u + c * v)


def _disc(cx: float, cy: float, radius: float) -> Mask:
    return lambda u, v: (u - cx) ** 2 + (v - cy) ** 2 < radius**2


# Shape coordinates: u to the right, v down, the shape roughly within [-1, 1]^2.
SOURCE_SHAPES: dict[str, Mask] = {
    "circle": _disc(0, 0, 0.95),
    "ellipse": lambda u, v: (u / 0.98) ** 2 + (v / 0.5) ** 2 < 1,
    "square": _rect(-0.8, -0.8, 0.8, 0.8),
    "bar": _rect(-0.98, -0.32, 0.98, 0.32),
    "triangle": _polygon(_regular(3, 1.0)),
    "pentagon": _polygon(_regular(5)),
    "hexagon": _polygon(_regular(6, phase=np.pi / 6)),
    "star5": _polygon(_star(5, 0.42)),
    "plus": _union(_rect(-0.3, -0.95, 0.3, 0.95), _rect(-0.95, -0.3, 0.95, 0.3)),
    "ring": lambda u, v: (u**2 + v**2 < 0.95**2) & (u**2 + v**2 > 0.55**2),
    "crescent": _minus(_disc(0, 0, 0.95), _disc(0.45, -0.15, 0.8)),
    "heart": lambda u, v: ((1.15 * u) ** 2 + (-1.15 * v + 0.25) ** 2 - 1) ** 3
    - (1.15 * u) ** 2 * (-1.15 * v + 0.25) ** 3 < 0,
    "arrow": _polygon([(-0.95, -0.25), (0.2, -0.25), (0.2, -0.7), (0.98, 0.0), (0.2, 0.7), (0.2, 0.25),
                       (-0.95, 0.25)]),
    "letter_t": _union(_rect(-0.9, -0.9, 0.9, -0.45), _rect(-0.25, -0.9, 0.25, 0.95)),
    "letter_l": _union(_rect(-0.7, -0.95, -0.2, 0.95), _rect(-0.7, 0.45, 0.8, 0.95)),
    "semicircle": lambda u, v: (u**2 + (v + 0.4) ** 2 < 0.98**2) & (v > -0.4),
    "trapezoid": _polygon([(-0.95, 0.6), (0.95, 0.6), (0.45, -0.6), (-0.45, -0.6)]),
    "two_discs": _union(_disc(-0.5, 0, 0.45), _disc(0.5, 0, 0.45)),
    "kite": _polygon([(0, -0.98), (0.6, -0.2), (0, 0.98), (-0.6, -0.2)]),
    "octagon_hole": _minus(_polygon(_regular(8, phase=np.pi / 8)), _rect(-0.35, -0.35, 0.35, 0.35)),
}

TARGET_SHAPES: dict[str, Mask] = {
    "pacman": _minus(_disc(0, 0, 0.95), _polygon([(0, 0), (1.2, -0.75), (1.2, 0.75)])),
    "hourglass": _polygon([(-0.8, -0.95), (0.8, -0.95), (0.08, 0.0), (0.8, 0.95), (-0.8, 0.95), (-0.08, 0.0)]),
    "chevron": _polygon([(-0.95, -0.6), (-0.45, -0.6), (0.0, 0.15), (0.45, -0.6), (0.95, -0.6), (0.0, 0.85)]),
    "teardrop": _union(_disc(0, 0.3, 0.65), _polygon([(-0.6, 0.05), (0, -1.0), (0.6, 0.05)])),
    "cloud": _union(_disc(-0.5, 0.2, 0.42), _disc(0.05, -0.15, 0.55), _disc(0.55, 0.25, 0.4),
                    _rect(-0.5, 0.2, 0.55, 0.6)),
    "letter_h": _union(_rect(-0.8, -0.95, -0.35, 0.95), _rect(0.35, -0.95, 0.8, 0.95), _rect(-0.4, -0.2, 0.4, 0.2)),
    "letter_u": _minus(_union(_rect(-0.8, -0.95, 0.8, 0.3), _disc(0, 0.3, 0.8)),
                       _union(_rect(-0.35, -1.0, 0.35, 0.3), _disc(0, 0.3, 0.35))),
    "cross_x": _rotated(_union(_rect(-0.26, -0.98, 0.26, 0.98), _rect(-0.98, -0.26, 0.98, 0.26)), 45),
    "triangle_outline": _minus(_polygon(_regular(3, 1.0)), _polygon(_regular(3, 0.45))),
    "frame": _minus(_rect(-0.85, -0.85, 0.85, 0.85), _rect(-0.45, -0.45, 0.45, 0.45)),
}


# ---------------------------------------------------------------------------- colours and textures


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3)


def _contrasting(rng: np.random.Generator, other: np.ndarray, minimum: float = 110.0) -> np.ndarray:
    for _ in range(100):
        colour = _colour(rng)
        if np.linalg.norm(colour - other) >= minimum:
            return colour
    return 255.0 - other


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A [size, size] field in [0, 1]: random values on a coarse grid, bilinearly upsampled."""
    grid = rng.uniform(0, 1, (cells + 1, cells + 1))
    position = np.linspace(0, cells, size, endpoint=False) + 0.5 * cells / size
    low = np.floor(position).astype(int).clip(0, cells - 1)
    frac = position - low
    rows = grid[low] * (1 - frac)[:, None] + grid[low + 1] * frac[:, None]
    return rows[:, low] * (1 - frac)[None, :] + rows[:, low + 1] * frac[None, :]


def _pattern(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A [size, size] field in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, np.pi)
    along = x * np.cos(angle) + y * np.sin(angle)
    if kind == "flat":
        return np.zeros((size, size))
    if kind == "gradient":
        return (along - along.min()) / max(along.max() - along.min(), 1e-6)
    if kind == "noise":
        return _smooth_noise(rng, size, int(rng.integers(2, 7)))
    if kind == "stripes":
        period = rng.uniform(0.12, 0.35)
        return 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * along / period + rng.uniform(0, 2 * np.pi)))
    if kind == "checks":
        period = rng.uniform(0.15, 0.4)
        across = -x * np.sin(angle) + y * np.cos(angle)
        return ((np.floor(along / period) + np.floor(across / period)) % 2).astype(float)
    raise ValueError(kind)


def _two_colour(rng: np.random.Generator, size: int, kinds: list[str], weights: list[float],
                base: np.ndarray, spread: float) -> np.ndarray:
    """[size, size, 3]: a pattern mixing ``base`` and a second colour up to ``spread`` away from it."""
    kind = kinds[int(rng.choice(len(kinds), p=np.array(weights) / sum(weights)))]
    second = np.clip(base + rng.uniform(-spread, spread, 3), 0, 255)
    field = _pattern(rng, size, kind)[:, :, None]
    return base * (1 - field) + second * field


# ---------------------------------------------------------------------------- scenes


class Style:
    """How a task draws its scenes."""

    def __init__(self, *, background_weights: list[float], textured_fill: float, distractors: tuple[int, int],
                 noise_std: float, background_spread: float) -> None:
        self.background_weights = background_weights
        self.textured_fill = textured_fill
        self.distractors = distractors
        self.noise_std = noise_std
        self.background_spread = background_spread


BACKGROUNDS = ["flat", "gradient", "noise", "stripes", "checks"]
SOURCE_STYLE = Style(background_weights=[3, 3, 3, 0, 0], textured_fill=0.0, distractors=(0, 1), noise_std=4.0,
                     background_spread=90.0)
TARGET_STYLE = Style(background_weights=[1, 2, 3, 3, 2], textured_fill=0.5, distractors=(1, 4), noise_std=8.0,
                     background_spread=120.0)


def render(rng: np.random.Generator, shape: Mask, style: Style, size: int) -> np.ndarray:
    """One scene as a [size, size, 3] uint8 RGB array."""
    big = size * SUPERSAMPLE
    background_colour = _colour(rng)
    image = _two_colour(rng, big, BACKGROUNDS, style.background_weights, background_colour,
                        style.background_spread)

    y, x = (np.mgrid[0:big, 0:big] + 0.5) / big * 2 - 1  # pixel centres in [-1, 1]

    for _ in range(int(rng.integers(style.distractors[0], style.distractors[1] + 1))):
        cx, cy = rng.uniform(-1, 1, 2)
        colour = _colour(rng)
        if rng.random() < 0.5:
            radius = rng.uniform(0.06, 0.16)
            blob = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
        else:
            angle = rng.uniform(0, np.pi)
            length, width = rng.uniform(0.2, 0.5), rng.uniform(0.02, 0.06)
            along = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
            across = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
            blob = (np.abs(along) < length) & (np.abs(across) < width)
        image[blob] = colour

    scale = rng.uniform(0.45, 0.8)
    stretch = np.exp(rng.uniform(-0.15, 0.15))
    angle = np.deg2rad(rng.uniform(-25, 25))
    centre = rng.uniform(-1, 1, 2) * (0.95 - scale)
    dx, dy = x - centre[0], y - centre[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / (scale * stretch)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / (scale / stretch)
    mask = shape(u, v)

    mean_background = image[mask].mean(axis=0) if mask.any() else image.mean(axis=(0, 1))
    fill_colour = _contrasting(rng, mean_background)
    if rng.random() < style.textured_fill:
        fill = _two_colour(rng, big, ["stripes", "checks", "noise"], [1, 1, 1], fill_colour, 110.0)
    else:
        fill = np.broadcast_to(fill_colour, image.shape)
    image[mask] = fill[mask]

    image = image.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    image += rng.normal(0, style.noise_std, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def make_images(shapes: dict[str, Mask], style: Style, seed: int, labels: np.ndarray,
                size: int, first_index: int = 0) -> np.ndarray:
    """[N, 3, size, size] uint8 images; image i shows class labels[i], drawn from (seed, first_index + i)."""
    names = list(shapes)
    out = np.empty((len(labels), 3, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        rng = np.random.default_rng([seed, first_index + i])
        out[i] = render(rng, shapes[names[int(label)]], style, size).transpose(2, 0, 1)
    return out


def balanced_labels(num_classes: int, per_class: int, seed: int) -> np.ndarray:
    """per_class labels of each class, shuffled by ``seed``."""
    labels = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(seed).permutation(labels)


# Normalisation of the images fed to the backbone (per channel, after scaling to [0, 1]):
# the mean and standard deviation of the source task's images, rounded.
MEAN = (0.5, 0.5, 0.5)
STD = (0.29, 0.29, 0.29)
