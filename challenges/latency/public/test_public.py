"""Public checks for the `latency` challenge: run them with `cvgrade test DIR`.

They are easy sanity checks, run on your own worker only: the original model here is the
copy kept beside your solution. The graded (hidden) checks test much more, time much more
carefully and compare with the reference solution: see README.md, "What is checked".
"""

import statistics

import torch


def _images(count: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    flat = torch.rand(count, 3, 1, 1, generator=gen).expand(count, 3, 64, 64)
    return (0.7 * flat + 0.3 * torch.rand(count, 3, 64, 64, generator=gen)).contiguous()


def _prepare(candidate) -> None:
    if not candidate.call("adapter.prepared"):
        info = candidate.call("adapter.prepare", 0)
        print(f"optimize() ran on {info['device']} in {info['setup_s']:.2f} s")


def test_returns_float32_logits(candidate):
    _prepare(candidate)
    logits = candidate.call("adapter.run_optimized", _images(1, 1))
    assert isinstance(logits, torch.Tensor), "the callable returned by optimize must return a torch.Tensor"
    assert logits.shape == (1, 10), "the callable must return logits of shape [1, 10]"
    assert logits.dtype == torch.float32, "the callable must return float32 logits"


def test_same_logits_as_the_original(candidate):
    _prepare(candidate)
    images = _images(8, 2)
    for index in range(len(images)):
        image = images[index:index + 1]
        expected = candidate.call("adapter.run_original", image.clone())
        got = candidate.call("adapter.run_optimized", image.clone())
        assert int(got.argmax()) == int(expected.argmax()), "the top-1 class differs from the original model's"
        assert torch.allclose(got, expected, atol=0.02, rtol=0.002), (
            "the logits are not within 0.02 + 0.002*|expected| of the original model's"
        )


def test_faster_than_the_original(candidate):
    """A rough check (40 calls each, alternated): at least 1.5x. The graded bar is higher, see README.md."""
    _prepare(candidate)
    images = _images(60, 3)
    original_s, optimized_s = [], []
    for index in range(len(images)):
        image = images[index:index + 1]
        original_s.append(candidate.timed("adapter.run_original", image.clone())[1])
        optimized_s.append(candidate.timed("adapter.run_optimized", image.clone())[1])
    speedup = statistics.median(original_s[20:]) / statistics.median(optimized_s[20:])
    print(f"speed-up over the original model: {speedup:.2f}x")
    assert speedup >= 1.5, f"the callable is only {speedup:.2f}x as fast as the original model (aim for 1.5x and more)"
