"""ImageNet (ILSVRC-2012) from an image folder, streamed through DataLoader workers.

Layout (torchvision ``ImageFolder``), under the data root::

    <root>/imagenet/train/<wnid>/*.JPEG   and   <root>/imagenet/val/<wnid>/*.JPEG
    (or <root>/train/... and <root>/val/...)

The validation images must already be sorted into one folder per class (what
torchvision's ``ImageNet`` preparation or the usual ``valprep.sh`` produce). A
class's index is its folder's position in sorted order; for the 1000 wnid
folders that is torchvision's class order, so the heads of the pretrained
``tv_*`` models line up with the labels.

Transforms, torchvision's reference recipe:

* train: ``RandomResizedCrop(crop)`` + ``RandomHorizontalFlip()``
* eval:  ``Resize(resize)`` + ``CenterCrop(crop)``

both ending in ``PILToTensor``: batches travel as uint8 (a quarter of float's
host-to-device traffic) and the task converts and normalises them on the device
with the ImageNet mean and std, bit-identical to ``ToTensor`` + ``Normalize``.
The ImageNet validation set is the ``test`` split (the paper reports it as test
accuracy); ``dataset.val_fraction`` carves a ``val`` split out of train.

Nothing is ever downloaded (ImageNet cannot be): a missing folder raises
:class:`~workbench.data.image.DataNotFound` naming the path. ``fake = N`` swaps the
folders for torchvision's ``FakeData`` (N random images per split, random labels):
the same transforms, task and loader with nothing on disk, for smoke runs and
benchmarks. torchvision is imported on first use only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from workbench.data.image import IMAGENET_MEAN, IMAGENET_STD, DataNotFound, data_root
from workbench.registry import DATASETS
from workbench.tasks.base import DataInfo


@dataclass
class FolderImageData:
    """Datasets that yield (uint8 (C, H, W) tensor, label) pairs, plus how to normalise them."""

    info: DataInfo
    train: Any  # torch Dataset, training transforms
    test: Any  # torch Dataset, eval transforms
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val: Any = None
    scale: float = 255.0
    workers: int = 0  # DataLoader worker processes per pass


def find_imagenet(root: Path) -> Optional[Path]:
    """The folder holding ``train/`` and ``val/``: ``root/imagenet`` or ``root`` itself."""
    for cand in (root / "imagenet", root):
        if (cand / "train").is_dir() and (cand / "val").is_dir():
            return cand
    return None


def imagenet_transforms(crop: int, resize: int, augment: bool):
    """(train, eval) torchvision transforms; both end in uint8 ``PILToTensor``."""
    from torchvision import transforms as T

    evaluate = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.PILToTensor()])
    if not augment:
        return evaluate, evaluate
    train = T.Compose([T.RandomResizedCrop(crop), T.RandomHorizontalFlip(), T.PILToTensor()])
    return train, evaluate


def default_workers() -> int:
    """One DataLoader worker per core but one, at most 16 (0 on a single core)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(16, cores - 1))


@DATASETS.register("imagenet", help="ImageNet from an image folder (train/, val/), streamed by DataLoader workers",
                   task="image")
def imagenet(
    spec,
    *,
    crop: int = 224,
    resize: int = 256,
    workers: Optional[int] = None,
    fake: int = 0,
    fake_classes: int = 1000,
    split_seed: int = 0,
) -> FolderImageData:
    """ImageNet as :class:`FolderImageData`; see the module docstring.

    ``workers``: DataLoader processes (None: :func:`default_workers`). ``fake``: use
    N random images per split instead of the folders (``fake_classes`` classes).
    ``dataset.subset`` and ``dataset.val_fraction`` pick examples with a fixed
    ``split_seed``, so every run of a study sees the same ones.
    """
    from torchvision import datasets

    train_tf, eval_tf = imagenet_transforms(crop, resize, spec.augment)
    if fake:
        size = (3, resize, resize)
        train = datasets.FakeData(fake, size, fake_classes, transform=train_tf, random_offset=0)
        test = datasets.FakeData(fake, size, fake_classes, transform=eval_tf, random_offset=10**6)
        train_eval = datasets.FakeData(fake, size, fake_classes, transform=eval_tf, random_offset=0)
        classes = [str(i) for i in range(fake_classes)]
    else:
        root = data_root(spec.root)
        folder = find_imagenet(root)
        if folder is None:
            raise DataNotFound(
                f"dataset.root: imagenet not found under {root.resolve()} (expected imagenet/train/ and "
                f"imagenet/val/, or train/ and val/, one folder per class); nothing can be downloaded "
                f"(dataset.download cannot fetch ImageNet): copy it there, or set dataset.root or WORKBENCH_DATA"
            )
        train = datasets.ImageFolder(str(folder / "train"), transform=train_tf)
        test = datasets.ImageFolder(str(folder / "val"), transform=eval_tf)
        if test.classes != train.classes:
            raise ValueError(f"dataset.root: {folder}/val has other class folders than {folder}/train")
        train_eval = datasets.ImageFolder(str(folder / "train"), transform=eval_tf) if spec.val_fraction else None
        classes = train.classes
    val = None
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(split_seed))
    if spec.val_fraction:
        n_val = max(1, int(round(len(train) * spec.val_fraction)))
        val = torch.utils.data.Subset(train_eval, perm[:n_val].sort().values.tolist())
        perm = perm[n_val:]
    if spec.val_fraction or (spec.subset and spec.subset < len(perm)):
        keep = perm[: spec.subset] if spec.subset else perm
        train = torch.utils.data.Subset(train, keep.sort().values.tolist())
    info = DataInfo("image", len(classes), (3, crop, crop), extra={"classes": list(classes)})
    return FolderImageData(info, train, test, IMAGENET_MEAN, IMAGENET_STD, val=val,
                           workers=default_workers() if workers is None else int(workers))
