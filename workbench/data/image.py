"""Image datasets as in-memory tensors: digits (offline default), synthetic, CIFAR-10/100.

Every loader returns an :class:`ImageData`: raw training and test tensors
(uint8 for CIFAR, float otherwise), per-channel normalisation and the
augmentation the dataset calls for. :class:`~workbench.tasks.image.ImageTask`
moves them to the training device once and batches, augments and normalises
there (no DataLoader workers).

CIFAR is read from the official python-pickle batches (``cifar-10-batches-py/``,
``cifar-100-python/``) under the data root; torchvision is used only to
download, and only when ``dataset.download`` is true. ImageNet is too big to
hold on a device: it streams from an image folder (:mod:`workbench.data.imagenet`).
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from workbench.registry import DATASETS
from workbench.tasks.base import DataInfo

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DataNotFound(FileNotFoundError):
    """Missing data files; the message names the root and the download switch."""


@dataclass
class ImageData:
    info: DataInfo
    train_x: torch.Tensor  # (N, C, H, W), uint8 or float, raw scale
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0  # raw value that maps to 1.0 (255 for uint8)
    augment: str = "none"  # "crop_flip" (pad 4, random crop, horizontal flip) or "none"
    pad: int = 4
    val_x: Optional[torch.Tensor] = None
    val_y: Optional[torch.Tensor] = None


def data_root(spec_root: Optional[str]) -> Path:
    return Path(spec_root or os.environ.get("WORKBENCH_DATA") or "data").expanduser()


def finish(data: ImageData, spec, split_seed: int = 0) -> ImageData:
    """Apply the spec's generic data options: subset, validation split, augmentation switch.

    The split and subset use a fixed seed (``split_seed``), not the run's seed, so
    every run of a study sees the same examples.
    """
    g = torch.Generator().manual_seed(split_seed)
    n = data.train_x.shape[0]
    perm = torch.randperm(n, generator=g)
    if spec.val_fraction:
        n_val = max(1, int(round(n * spec.val_fraction)))
        vi, ti = perm[:n_val], perm[n_val:]
        data = replace(data, val_x=data.train_x[vi], val_y=data.train_y[vi], train_x=data.train_x[ti], train_y=data.train_y[ti])
        perm = torch.arange(data.train_x.shape[0])
    if spec.subset and spec.subset < data.train_x.shape[0]:
        keep = perm[: spec.subset].sort().values
        data = replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])
    if not spec.augment:
        data = replace(data, augment="none")
    return data


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    xf = x.float().transpose(0, 1).reshape(x.shape[1], -1)
    return tuple(xf.mean(1).tolist()), tuple(xf.std(1).clamp_min(1e-6).tolist())


@DATASETS.register("digits", help="scikit-learn's bundled 8x8 digits (offline default), fixed 80/20 split", task="image")
def digits(spec, *, test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8) in [0, 1]
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))
    n_test = int(round(len(y) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    mean, std = _channel_stats(x[tr])
    info = DataInfo("image", 10, (1, 8, 8))
    return finish(ImageData(info, x[tr], y[tr], x[te], y[te], mean, std), spec, split_seed)


@DATASETS.register("synthetic", help="Gaussian class clusters shaped like images (any size, offline)", task="image")
def synthetic(
    spec,
    *,
    n_train: int = 2048,
    n_test: int = 512,
    num_classes: int = 10,
    channels: int = 3,
    size: int = 16,
    noise: float = 1.0,
    uint8: bool = False,
    normalize: str = "data",
    data_seed: int = 0,
    split_seed: int = 0,
) -> ImageData:
    """Class prototypes plus Gaussian noise. ``uint8=True`` quantises the images to
    0..255 (value = 128 + 32 x, clipped) and gives them CIFAR's treatment: scale 255,
    per-channel normalisation and the pad-4 crop + flip augmentation, so a smoke run
    takes exactly the device-resident uint8 path that CIFAR takes, without the files.
    ``normalize`` (uint8 only): the data's own channel statistics, or CIFAR's or
    ImageNet's constants as the CIFAR loaders offer (so a study's cells that set
    ``dataset.options.normalize`` for CIFAR also run on this stand-in)."""
    if normalize not in ("data", "cifar", "imagenet"):
        raise ValueError(f"dataset.options.normalize: expected 'data', 'cifar' or 'imagenet', got {normalize!r}")
    if normalize != "data" and not (uint8 and channels == 3):
        raise ValueError("dataset.options.normalize: 'cifar' and 'imagenet' need uint8 = true and 3 channels")
    g = torch.Generator().manual_seed(data_seed)
    protos = torch.randn(num_classes, channels, size, size, generator=g)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(num_classes, (n,), generator=g)
        x = protos[y] + noise * torch.randn(n, channels, size, size, generator=g)
        if uint8:
            x = (128.0 + 32.0 * x).round_().clamp_(0, 255).to(torch.uint8)
        return x, y

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    info = DataInfo("image", num_classes, (channels, size, size))
    if uint8:
        consts = {"cifar": (CIFAR10_MEAN, CIFAR10_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}
        mean, std = consts[normalize] if normalize in consts else _channel_stats(xtr.float() / 255.0)
        data = ImageData(info, xtr, ytr, xte, yte, mean, std, scale=255.0, augment="crop_flip")
    else:
        data = ImageData(info, xtr, ytr, xte, yte, (0.0,) * channels, (1.0,) * channels)
    return finish(data, spec, split_seed)


# ----------------------------------------------------------------------------- CIFAR

_CIFAR = {
    "cifar10": dict(folder="cifar-10-batches-py", train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"],
                    key=b"labels", meta="batches.meta", names=b"label_names", classes=10, tv="CIFAR10"),
    "cifar100": dict(folder="cifar-100-python", train=["train"], test=["test"],
                     key=b"fine_labels", meta="meta", names=b"fine_label_names", classes=100, tv="CIFAR100"),
}
_CIFAR_PIXELS = 3 * 32 * 32


def _find_cifar(root: Path, name: str) -> Optional[Path]:
    folder = _CIFAR[name]["folder"]
    for cand in (root / folder, root / name / folder):
        if (cand / _CIFAR[name]["test"][0]).exists():
            return cand
    return None


def _unpickle(path: Path) -> dict:
    if not path.exists():
        raise DataNotFound(
            f"dataset.root: missing CIFAR file {path} (the folder is incomplete: copy the file there, "
            f"or delete the folder and pass --set dataset.download=true)"
        )
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="bytes")


def read_cifar_batches(folder: Path, files: list[str], key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read python-pickle CIFAR batches: (N, 3, 32, 32) uint8 images and int64 labels.

    Each batch is a dict with ``b"data"`` (N x 3072 uint8, channel-major rows: 1024 red,
    1024 green, 1024 blue values, each plane row by row) and the label list under ``key``.
    The images are copied once, into one preallocated array.
    """
    batches = [_unpickle(folder / f) for f in files]
    sizes = []
    for f, d in zip(files, batches):
        data = np.asarray(d[b"data"])
        if data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS or len(d[key]) != data.shape[0]:
            raise ValueError(f"dataset.root: {folder / f} is not a CIFAR batch (data shape {data.shape})")
        sizes.append(data.shape[0])
    x = np.empty((sum(sizes), _CIFAR_PIXELS), dtype=np.uint8)
    y = np.empty(sum(sizes), dtype=np.int64)
    at = 0
    for d, n in zip(batches, sizes):
        x[at : at + n] = d[b"data"]
        y[at : at + n] = d[key]
        at += n
    return x.reshape(-1, 3, 32, 32), y


def _label_names(folder: Path, meta: dict) -> list[str]:
    """Class names from the batches' meta file, or [] where it is absent (names are cosmetic)."""
    path = folder / meta["meta"]
    if not path.exists():
        return []
    return [n.decode() if isinstance(n, bytes) else str(n) for n in _unpickle(path).get(meta["names"], [])]


def load_cifar(spec, name: str, normalize: str = "cifar", split_seed: int = 0) -> ImageData:
    """CIFAR-10/100 from ``<root>/<folder>/`` or ``<root>/<name>/<folder>/``.

    Images stay uint8 (50k x 3 x 32 x 32 = 150 MB); the task moves them to the device
    once and augments and normalises there. ``normalize``: ``cifar`` statistics (the
    reference's PreResNet / WRN runs) or ``imagenet`` ones (the reference's VGG runs).
    Missing files raise :class:`DataNotFound` naming the root and ``dataset.download``;
    nothing is fetched unless ``dataset.download`` is true.
    """
    meta = _CIFAR[name]
    if normalize not in ("cifar", "imagenet"):
        raise ValueError(f"dataset.options.normalize: expected 'cifar' or 'imagenet', got {normalize!r}")
    root = data_root(spec.root)
    folder = _find_cifar(root, name)
    if folder is None and spec.download:
        import torchvision

        getattr(torchvision.datasets, meta["tv"])(str(root), train=True, download=True)
        folder = _find_cifar(root, name)
    if folder is None:
        raise DataNotFound(
            f"dataset.root: {name} not found under {root.resolve()} (expected {meta['folder']}/ there); "
            f"set dataset.root or WORKBENCH_DATA, or pass --set dataset.download=true"
        )
    xtr, ytr = read_cifar_batches(folder, meta["train"], meta["key"])
    xte, yte = read_cifar_batches(folder, meta["test"], meta["key"])
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if normalize == "cifar" else (IMAGENET_MEAN, IMAGENET_STD)
    info = DataInfo("image", meta["classes"], (3, 32, 32), extra={"classes": _label_names(folder, meta)})
    data = ImageData(
        info,
        torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte),
        mean, std, scale=255.0, augment="crop_flip",
    )
    return finish(data, spec, split_seed)


@DATASETS.register("cifar10", help="CIFAR-10 (python-pickle batches under the data root)", task="image")
def cifar10(spec, *, normalize: str = "cifar", split_seed: int = 0) -> ImageData:
    return load_cifar(spec, "cifar10", normalize, split_seed)


@DATASETS.register("cifar100", help="CIFAR-100 (python-pickle batches under the data root)", task="image")
def cifar100(spec, *, normalize: str = "cifar", split_seed: int = 0) -> ImageData:
    return load_cifar(spec, "cifar100", normalize, split_seed)
