"""Public checks for the `finetune` challenge: run them with `cvgrade test DIR`.

They train your finetune on small parts of the training set with short budgets and
check the interface: the shape of the logits, the time budget, and that the model
learned something on training images it did not see. The graded (hidden) checks use
the whole training set, a longer budget and held-back test images: see README.md.
"""

import time

import torch

BUDGET_S = 10.0


def pick(labels, classes, first, count):
    """Indices of images first..first+count-1 of each class in ``classes``."""
    return [int(i) for c in classes for i in torch.nonzero(labels == c).flatten()[first:first + count]]


def test_three_classes(candidate):
    labels = torch.tensor(candidate.call("adapter.describe")["labels"])
    train = pick(labels, [0, 5, 9], 0, 8)
    started = time.perf_counter()
    info = candidate.call("adapter.train", BUDGET_S, 0, train, timeout_s=3 * BUDGET_S)
    seconds = time.perf_counter() - started
    assert seconds <= BUDGET_S * 1.1 + 2, f"finetune took {seconds:.1f} s with time_budget_s={BUDGET_S:g}"
    assert info["num_classes"] == 3, "three classes were given"
    images, _ = candidate.call("adapter.train_subset", pick(labels, [0, 5, 9], 8, 2))
    logits = candidate.call("adapter.predict", images)
    assert isinstance(logits, torch.Tensor), "the model must return a tensor of logits"
    assert logits.shape == (6, 3), f"6 images, num_classes=3: logits must be (6, 3), not {tuple(logits.shape)}"
    assert logits.is_floating_point() and bool(torch.isfinite(logits).all()), "logits must be finite floats"


def test_learns_on_held_out_training_images(candidate):
    """Train on 20 images of each of 4 classes, predict the other 10 of each: well above chance (25%)."""
    labels = torch.tensor(candidate.call("adapter.describe")["labels"])
    classes = [2, 3, 6, 7]
    candidate.call("adapter.train", BUDGET_S, 1, pick(labels, classes, 0, 20), timeout_s=3 * BUDGET_S)
    images, original = candidate.call("adapter.train_subset", pick(labels, classes, 20, 10))
    expected = torch.tensor([classes.index(int(label)) for label in original])
    logits = candidate.call("adapter.predict", images)
    assert logits.shape == (len(images), len(classes)), "logits must be [B, num_classes]"
    accuracy = float((logits.argmax(1) == expected).float().mean())
    assert accuracy >= 0.5, f"accuracy on 40 held-out training images of 4 classes is {accuracy:.0%} (chance: 25%)"


def test_batch_size_does_not_change_logits(candidate):
    """The returned model is used as returned: an image's logits must not depend on its batch."""
    labels = torch.tensor(candidate.call("adapter.describe")["labels"])
    candidate.call("adapter.train", BUDGET_S, 2, pick(labels, [1, 4], 0, 8), timeout_s=3 * BUDGET_S)
    images, _ = candidate.call("adapter.train_subset", pick(labels, [1, 4], 8, 3))
    together = candidate.call("adapter.predict", images)
    alone = torch.cat([candidate.call("adapter.predict", images[i:i + 1]) for i in range(len(images))])
    assert torch.allclose(together, alone, rtol=1e-3, atol=1e-3), (
        "logits of an image predicted alone differ from the same image in a batch: call model.eval()"
    )
