"""Public checks for `compress`: run them with `cvgrade test DIR`.

They are rough sanity checks, run in your own worker (your compress, then the challenge's
loader on the artifact, in the same process). The graded checks rebuild your artifact in a
separate process, use more and other images, and time far more carefully: see README.md,
"What is checked".
"""

import statistics

BUDGET_S = 60.0
_packed: dict[str, object] = {}


def _loaded(candidate) -> dict:
    """compress() once per run of these checks, then the artifact rebuilt by the challenge's loader."""
    if "info" not in _packed:
        reply = candidate.call("adapter.compress", BUDGET_S, 0, timeout_s=BUDGET_S * 1.1 + 2)
        print(f"compress() took {reply['compress_s']:.1f} s; the artifact is {reply['artifact'].numel()} bytes")
        _packed["bytes"] = reply["artifact"].numel()
        _packed["info"] = candidate.call("adapter.load_artifact", reply["artifact"], timeout_s=60)
    info = _packed["info"]
    assert "error" not in info, f"the loader cannot rebuild your artifact: {info.get('error')}"
    return info


def test_artifact_loads(candidate):
    info = _loaded(candidate)
    print(f"{info['nodes']} nodes: {info['ops']}; engine {info['engine']}")


def test_at_least_3x_smaller(candidate):
    _loaded(candidate)
    original = candidate.call("adapter.original_size")
    ratio = original / _packed["bytes"]
    print(f"{_packed['bytes']} bytes against the original's {original}: {ratio:.2f}x smaller")
    assert ratio >= 3.0, f"the artifact is only {ratio:.2f}x smaller than the original model (3x is required)"


def test_accuracy_on_public_images(candidate):
    """300 public images (the graded ones are others, and more): within 2 points here, 1 when graded."""
    _loaded(candidate)
    images, labels = candidate.call("adapter.sample", 300, 12345)
    original = candidate.call("adapter.logits", "original", images).argmax(1)
    compressed = candidate.call("adapter.logits", "compressed", images).argmax(1)
    drop = 100 * float((original == labels).double().mean() - (compressed == labels).double().mean())
    print(f"accuracy {float((compressed == labels).double().mean()):.1%}, {drop:+.1f} points below the original")
    assert drop <= 2.0, f"top-1 accuracy is {drop:.1f} points below the original model's on 300 public images"


def test_not_slower_at_batch_size_1(candidate):
    """A rough check (60 calls each, alternated, the first 20 dropped): at least 0.9x the original's speed."""
    _loaded(candidate)
    images, _ = candidate.call("adapter.sample", 60, 54321)
    original_s, compressed_s = [], []
    for index in range(len(images)):
        image = images[index:index + 1]
        original_s.append(candidate.timed("adapter.run", "original", image)[1])
        compressed_s.append(candidate.timed("adapter.run", "compressed", image)[1])
    speedup = statistics.median(original_s[20:]) / statistics.median(compressed_s[20:])
    print(f"speed-up over the original model at batch size 1: {speedup:.2f}x")
    assert speedup >= 0.9, f"the rebuilt model is slower than the original ({speedup:.2f}x its speed)"
