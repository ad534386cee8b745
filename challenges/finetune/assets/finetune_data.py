"""Loading the finetune challenge's data and backbone, as ``dataset.toml`` describes them.

Used by the adapter inside the worker, by the judge for the held-back test set,
and by the tools. Depends on the standard library, numpy, torch, and (for
image folders and torchvision backbones only) Pillow and torchvision.

Images are kept as uint8 tensors [N, 3, S, S]; ``normalise`` turns them into
what the backbone takes: float32, scaled to [0, 1], minus ``mean``, over ``std``.
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class DataConfig:
    """``dataset.toml``: the backbone and the training set handed to ``finetune``."""

    folder: Path
    architecture: str  # "<file in the assets>:<class>" or "torchvision:<model name>"
    weights: str  # a file in the assets: a state dict, or a dict with one under "state_dict"
    train: str  # a .npz file, or a folder of class folders (ImageFolder layout)
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def load(cls, assets_dir: str | Path) -> DataConfig:
        folder = Path(assets_dir)
        data = tomllib.loads((folder / "dataset.toml").read_text(encoding="utf-8"))
        return cls(
            folder=folder,
            architecture=str(data["backbone"]["architecture"]),
            weights=str(data["backbone"]["weights"]),
            train=str(data["train"]["path"]),
            image_size=int(data["images"]["size"]),
            mean=tuple(float(v) for v in data["images"]["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["images"]["std"]),  # type: ignore[arg-type]
        )


# ---------------------------------------------------------------------------- images


@dataclass
class Images:
    """uint8 images [N, 3, S, S], int64 labels [N] in 0..len(classes)-1, and the class names."""

    images: Tensor
    labels: Tensor
    classes: list[str]


def load_images(path: Path, image_size: int) -> Images:
    """A ``.npz`` file (``images``, ``labels``, ``classes``) or an ImageFolder-style folder."""
    if path.is_dir():
        return _load_image_folder(path, image_size)
    with np.load(path, allow_pickle=False) as data:
        images = torch.from_numpy(np.ascontiguousarray(data["images"]))
        labels = torch.from_numpy(data["labels"].astype(np.int64))
        classes = [str(name) for name in data["classes"]]
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{path}: images must be uint8 [N, 3, H, W]")
    if tuple(images.shape[2:]) != (image_size, image_size):
        raise ValueError(f"{path}: images are {tuple(images.shape[2:])}, dataset.toml says {image_size}")
    return Images(images, labels, classes)


def _load_image_folder(folder: Path, image_size: int) -> Images:
    """Class folders in alphabetical order (as torchvision's ImageFolder); each image resized so that
    its shorter side is ``image_size`` (bilinear, antialiased), then centre-cropped to a square."""
    from PIL import Image

    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    if not classes:
        raise ValueError(f"{folder}: no class folders")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for file in files:
            with Image.open(file) as opened:
                image = opened.convert("RGB")
            width, height = image.size
            scale = image_size / min(width, height)
            new_w, new_h = max(image_size, round(width * scale)), max(image_size, round(height * scale))
            image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
            left, top = (new_w - image_size) // 2, (new_h - image_size) // 2
            image = image.crop((left, top, left + image_size, top + image_size))
            images.append(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
    return Images(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64), classes)


def normalise(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 [N, 3, H, W] -> float32, scaled to [0, 1] and normalised per channel."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t


class TrainSet(Dataset):
    """What ``finetune`` receives: item ``i`` is ``(image, label)``, a normalised float32 [3, S, S]
    tensor and a Python int in 0..num_classes-1."""

    def __init__(self, images: Tensor, labels: Tensor, classes: list[str],
                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self._images = normalise(images, mean, std)
        self._labels = [int(label) for label in labels]
        self.classes = list(classes)
        self.targets = list(self._labels)
        self.mean = tuple(mean)
        self.std = tuple(std)

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._images[index].clone(), self._labels[index]


# ---------------------------------------------------------------------------- backbones


def build_backbone(config: DataConfig) -> nn.Module:
    """The pretrained backbone: images [B, 3, S, S] -> features [B, out_features], in training mode."""
    kind, _, name = config.architecture.partition(":")
    if kind == "torchvision":
        backbone = _torchvision_trunk(name)
    else:
        path = config.folder / kind
        spec = importlib.util.spec_from_file_location(f"cvgrade_assets_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        backbone = getattr(module, name)()
    state = _state_dict(torch.load(config.folder / config.weights, map_location="cpu", weights_only=True))
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"{config.weights} lacks weights for {len(missing)} tensors of the backbone, "
                         f"for example {missing[0]}")
    if unexpected and kind != "torchvision":  # a torchvision checkpoint may carry its old head
        raise ValueError(f"{config.weights} has {len(unexpected)} tensors the backbone does not, "
                         f"for example {unexpected[0]}")
    if not hasattr(backbone, "out_features"):
        backbone.eval()
        with torch.no_grad():
            size = config.image_size
            backbone.out_features = int(backbone(torch.zeros(1, 3, size, size)).shape[1])
    return backbone.train()


def _state_dict(loaded: Any) -> dict[str, Tensor]:
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ValueError("the weights file must hold a state dict, or a dict with one under 'state_dict'")
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def _torchvision_trunk(name: str) -> nn.Module:
    """A torchvision classifier with its last linear layer replaced by the identity."""
    import torchvision

    model = torchvision.models.get_model(name, weights=None)
    if isinstance(getattr(model, "fc", None), nn.Linear):
        model.out_features = model.fc.in_features
        model.fc = nn.Identity()
        return model
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential) and isinstance(classifier[-1], nn.Linear):
        model.out_features = classifier[-1].in_features
        classifier[-1] = nn.Identity()
        return model
    if isinstance(getattr(model, "heads", None), nn.Sequential):  # vision transformers
        model.out_features = model.heads[-1].in_features
        model.heads[-1] = nn.Identity()
        return model
    raise ValueError(f"torchvision:{name}: no final linear layer found to remove")
