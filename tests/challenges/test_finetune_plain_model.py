"""finetune's plain models (``assets/plain_model.py``): what a candidate returns, graded from its weights.

Exporting turns a trained model into plain data in the candidate's worker; rebuilding it, in a
worker that runs no candidate code, must give the same logits for the ways engineers really
write a fine-tuned classifier, and must refuse any description that asks for more than
allowlisted layers and operations, without importing, evaluating or allocating what it names.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the name PyTorch code uses

from tests.challenges.files import load_file

ASSETS = Path(__file__).resolve().parents[2] / "challenges" / "finetune" / "assets"


def _load(name: str) -> ModuleType:
    return load_file(f"test_plain_{name}", ASSETS / f"{name}.py")


pm = _load("plain_model")
TinyResNet = _load("backbone").TinyResNet
CPU = torch.device("cpu")


class Classifier(nn.Module):  # the reference's way
    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class FlipAveraged(nn.Module):  # test-time augmentation
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model(x) + self.model(torch.flip(x, dims=[3]))) / 2


class CosineHead(nn.Module):  # a normalised classifier with a learned temperature
    def __init__(self) -> None:
        super().__init__()
        self.backbone = TinyResNet()
        self.weight = nn.Parameter(torch.randn(10, 64))
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.normalize(self.backbone(x).view(x.shape[0], -1), dim=-1)
        return self.scale * features @ F.normalize(self.weight, dim=-1).t()


def _models() -> list[Any]:
    torch.manual_seed(0)
    from torch.optim.swa_utils import AveragedModel
    return [
        pytest.param(Classifier(TinyResNet(), 10).eval(), id="custom class, eval mode"),
        pytest.param(nn.Sequential(TinyResNet(), nn.Linear(64, 10)).eval(), id="nn.Sequential"),
        pytest.param(nn.Sequential(TinyResNet(), nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(),
                                   nn.Linear(32, 10)).eval(), id="MLP head with dropout"),
        pytest.param(FlipAveraged(Classifier(TinyResNet(), 10).eval()), id="flip TTA"),
        pytest.param(CosineHead().eval(), id="cosine head, parameters read in forward"),
        pytest.param(AveragedModel(Classifier(TinyResNet(), 10)).eval(), id="AveragedModel (SWA)"),
        pytest.param(Classifier(TinyResNet(), 10).eval().to(memory_format=torch.channels_last), id="channels_last"),
        pytest.param(Classifier(TinyResNet(), 3).train(), id="left in training mode"),
        pytest.param(torchvision.models.resnet18(num_classes=10).eval(), id="torchvision resnet18 (a team backbone)"),
    ]


@pytest.mark.parametrize("model", _models())
def test_a_rebuilt_model_gives_the_logits_of_the_original(model: nn.Module) -> None:
    images = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        expected = model(images.clone())
    rebuilt = pm.rebuild(pm.export(model), CPU)
    with torch.no_grad():
        got = rebuilt(images.clone())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_each_layer_keeps_the_mode_it_was_returned_in() -> None:
    model = Classifier(TinyResNet(), 10).eval()
    model.backbone.stem[1].train()  # one batch norm left in training mode
    plain = pm.export(model)
    modes = {name: entry["training"] for name, entry in plain["modules"].items()}
    assert modes.pop("model.backbone.stem.1") is True
    assert not any(modes.values())
    rebuilt = pm.rebuild(plain, CPU)
    first, second = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        together = rebuilt(torch.cat([first, second]))[:4]
        alone = rebuilt(first)
    assert not torch.allclose(together, alone, atol=1e-4), "batch statistics: logits depend on the batch"


def test_the_export_is_a_snapshot_later_training_changes_nothing() -> None:
    model = Classifier(TinyResNet(), 10).eval()
    plain = pm.export(model)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        before = pm.rebuild(plain, CPU)(images)
        model.head.weight.add_(1.0)  # "training" after the export
        after = pm.rebuild(plain, CPU)(images)
    torch.testing.assert_close(before, after)


class TrainsOnFirstCall(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = Classifier(TinyResNet(), 10)
        self.trained = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.trained:
            optimiser = torch.optim.SGD(self.model.parameters(), lr=0.1)
            with torch.enable_grad():
                loss = F.cross_entropy(self.model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 1]))
                loss.backward()
            optimiser.step()
        return self.model(x)


class BranchesOnValues(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:
            return self.head(x.mean((2, 3)))
        return -self.head(x.mean((2, 3)))


class CustomLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class UsesACustomLeaf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2)

    def forward(self, x: torch.Tensor) -> Any:
        return self.attention(x, x, x)


class DrawsNoise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone().exponential_()


@pytest.mark.parametrize(("model", "said"), [
    pytest.param(TrainsOnFirstCall(), "torch.nn.functional.cross_entropy", id="training in forward"),
    pytest.param(BranchesOnValues(), "branches or loops on the values of a tensor", id="control flow on values"),
    pytest.param(UsesACustomLeaf(), "MultiheadAttention", id="a torch.nn layer outside the list"),
    pytest.param(DrawsNoise(), ".exponential_()", id="a tensor method outside the list"),
])
def test_a_model_the_grader_cannot_rebuild_is_refused_with_the_reason(model: nn.Module, said: str) -> None:
    with pytest.raises(pm.ExportError) as refused:
        pm.export(model)
    assert said in str(refused.value)


def _plain() -> dict[str, Any]:
    return pm.export(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval())


def _with(change: Any) -> dict[str, Any]:
    plain = _plain()
    change(plain)
    return plain


def _read(target: str) -> Any:
    return lambda plain: plain["nodes"][1]["args"].__setitem__(0, target)


@pytest.mark.parametrize("plain", [
    pytest.param("not a dict", id="not a description"),
    pytest.param(_with(lambda p: p.update(format="pickle")), id="another format"),
    pytest.param(_with(lambda p: p["nodes"][2].update(target="os.system")), id="a function outside the list"),
    pytest.param(_with(lambda p: p["nodes"][2].update(op="method", target="__reduce__")),
                 id="a method outside the list"),
    pytest.param(_with(lambda p: p["modules"]["model.1"].update(type="Module")), id="a layer type outside the list"),
    pytest.param(_with(lambda p: p["modules"]["model.1"]["config"].update(out_features=10**9)),
                 id="a layer declared far larger than its weights"),
    pytest.param(_with(lambda p: p["tensors"].pop("model.1.bias")), id="a weight missing"),
    pytest.param(_with(lambda p: p["tensors"].update({"model.1.bias": torch.zeros(3)})),
                 id="a weight of the wrong shape"),
    pytest.param(_with(_read(["node", "later"])), id="a step reads a later one"),
    pytest.param(_with(_read(["code", "import os"])), id="an unknown argument"),
    pytest.param(_with(lambda p: p["nodes"].pop()), id="no output"),
    pytest.param(_with(lambda p: p["nodes"].extend([p["nodes"][0]] * pm.MAX_NODES)), id="too many steps"),
])
def test_a_malformed_or_hostile_description_is_refused(plain: Any) -> None:
    with pytest.raises(pm.PlainModelError):
        pm.rebuild(plain, CPU)


def test_reading_an_attribute_of_a_tensor_is_limited_to_its_shape_and_kind() -> None:
    plain = pm.export(nn.Sequential(nn.Flatten()).eval())
    plain["nodes"].insert(1, {"op": "function", "name": "leak", "target": "getattr",
                              "args": [["node", "images"], ["value", "__class__"]], "kwargs": []})
    with pytest.raises(pm.PlainModelError, match="attribute"):
        pm.rebuild(plain, CPU)
