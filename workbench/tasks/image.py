"""Image classification: device-resident tensors (CIFAR & co), or a streamed image folder (ImageNet).

:class:`ImageTask`, the fast path, for in-memory :class:`~workbench.data.image.ImageData`:

* The dataset moves to the training device once, as stored (uint8 for CIFAR: 150 MB
  for 50k images). Augmented training images are kept zero-padded and NHWC
  (50k x 40 x 40 x 3 uint8 = 240 MB), so a single gather per batch selects the
  batch's images, crops them and mirrors them (:func:`crop_flip`).
* Per epoch, the permutation, the crop offsets and the flips are drawn in three
  calls from the task's generator, which lives on the device: a CUDA generator on
  CUDA (no host-to-device copy at all), a CPU generator on CPU (deterministic for
  a seed).
* Conversion and normalisation happen on the device, op for op as ToTensor +
  Normalize do them, in ``channels_last`` when the run asks for it (run.py sets
  the ``channels_last`` attribute). No DataLoader, no workers, no host sync:
  ``loss`` returns device tensors.
* ``cudnn.benchmark`` is run.py's to set (on for CUDA unless ``deterministic``).

The augmentation has the reference transforms' distribution (``RandomCrop(32,
padding=4)`` with zero fill, then ``RandomHorizontalFlip()``): row and column
offsets independent and uniform over 0..2*pad, a flip with probability 1/2
independent of the crop, drawn independently for every image of every epoch.

:class:`FolderImageTask` streams :class:`~workbench.data.imagenet.FolderImageData`
through a torch DataLoader with worker processes, uint8 batches in pinned memory,
normalised on the device (see its docstring). Both are served under the one
task name ``image`` (:func:`image_task` picks by the data's type), because models
declare ``task="image"`` and the engine checks that against ``data.info.task``.

Randomness: training batches and BN-recalibration batches draw from two separate
generators seeded from the run seed, so how often the average is evaluated never
changes the backbone's trajectory.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F

from workbench.data.image import ImageData
from workbench.registry import TASKS

BN_SEED_OFFSET = 7919  # the BN-recalibration generator's seed is the run seed + this


def crop_flip(src: torch.Tensor, idx: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
              size: tuple[int, int]) -> torch.Tensor:
    """Images ``idx`` of ``src`` cropped at ``offsets`` and mirrored where ``flips``.

    ``src`` is (N, H + 2 pad, W + 2 pad, C), already zero-padded and contiguous;
    ``offsets`` is (B, 2) = (row, col) of each crop's top-left corner, ``flips`` (B,)
    bool. Returns a (B, C, H, W) tensor with channels_last strides (a view of the
    gathered NHWC block). A flipped crop reads its columns right to left, which is
    exactly crop-then-flip. The gather takes whole pixels (C values) by one flat index:
    on a CPU three times faster than indexing with three broadcast index tensors.
    """
    n, hp, wp, c = src.shape
    h, w = size
    ar_h = torch.arange(h, device=src.device)
    ar_w = torch.arange(w, device=src.device)
    rows = offsets[:, :1] + ar_h  # (B, H)
    cols = offsets[:, 1:] + torch.where(flips[:, None], (w - 1) - ar_w, ar_w)  # (B, W)
    pixel = (idx[:, None, None] * hp + rows[:, :, None]) * wp + cols[:, None, :]  # (B, H, W)
    out = src.view(n * hp * wp, c).index_select(0, pixel.reshape(-1))  # one gather
    return out.view(-1, h, w, c).permute(0, 3, 1, 2)


def random_crop_flip(x: torch.Tensor, pad: int, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Zero-pad a (B, C, H, W) batch by ``pad``, crop it back to H x W at ``offsets``
    (B, 2) = (row, col) in [0, 2 pad], then flip the images where ``flips``.

    Padding happens on the raw values (before normalisation), as the reference
    ``RandomCrop(32, padding=4)`` does on PIL images.
    """
    src = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1).contiguous()
    idx = torch.arange(x.shape[0], device=x.device)
    return crop_flip(src, idx, offsets, flips, tuple(x.shape[-2:]))


class _Classifier:
    """Shared by both tasks: on-device normalisation, forward, loss and accuracy."""

    device: torch.device
    channels_last: bool
    scale: float
    mean: torch.Tensor
    std: torch.Tensor

    def _init_common(self, data, device, batch_size: int, eval_batch_size: int, channels_last: bool) -> None:
        self.info = data.info
        self.device = torch.device(device)
        self.data = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.channels_last = channels_last

    def _set_norm(self, mean, std, scale: float) -> None:
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(shape)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(shape)
        self.scale = float(scale)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        # ToTensor + Normalize, op for op (float, / scale, - mean, / std), so the result
        # is bit-identical to the reference transforms. copy=True: never write into the
        # stored dataset (an eval batch of float data is a view of it).
        x = x.to(torch.float32, copy=True)
        if self.scale != 1.0:
            x.div_(self.scale)
        x.sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def forward(self, model, batch):
        return model(batch[0])

    def loss(self, model, batch):
        x, y = batch
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        correct = (logits.argmax(1) == y).sum()  # stays on the device: no host sync
        return loss, correct, y.shape[0]


class ImageTask(_Classifier):
    """In-memory image data held on the training device; see the module docstring."""

    def __init__(self, data: ImageData, *, device: torch.device, batch_size: int, eval_batch_size: int, seed: int,
                 channels_last: bool = False):
        self._init_common(data, device, batch_size, eval_batch_size, channels_last)
        self.augment = data.augment == "crop_flip"
        self.pad = data.pad
        self.size = tuple(data.train_x.shape[-2:])
        x = data.train_x.to(self.device)
        if self.augment:
            p = self.pad
            self.train_src = F.pad(x, (p, p, p, p)).permute(0, 2, 3, 1).contiguous()  # padded once, NHWC
        else:
            self.train_src = x
        self.train_y = data.train_y.to(self.device)
        put = lambda t: t.to(self.device)  # noqa: E731
        self.splits = {"test": (put(data.test_x), put(data.test_y))}
        if data.val_x is not None:
            self.splits["val"] = (put(data.val_x), put(data.val_y))
        self.eval_splits = tuple(s for s in ("val", "test") if s in self.splits)
        self._set_norm(data.mean, data.std, data.scale)
        self.n = self.train_src.shape[0]
        self.iters_per_epoch = math.ceil(self.n / batch_size)
        # On CUDA the generators live on the device, so the per-epoch draws need no
        # host-to-device copy; CUDA and CPU streams differ for the same seed.
        gen_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        self.gen = torch.Generator(device=gen_device).manual_seed(seed)
        self.bn_gen = torch.Generator(device=gen_device).manual_seed(seed + BN_SEED_OFFSET)

    # -- batches -----------------------------------------------------------------
    def _train_iter(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs, dev = self.n, self.batch_size, gen.device
        # The epoch's randomness in three draws (not per batch): no per-step copies.
        perm = torch.randperm(n, generator=gen, device=dev).to(self.device, non_blocking=True)
        if self.augment:
            offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=gen, device=dev)
            flips = torch.rand(n, generator=gen, device=dev) < 0.5
            offsets = offsets.to(self.device, non_blocking=True)
            flips = flips.to(self.device, non_blocking=True)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            if self.augment:
                x = crop_flip(self.train_src, idx, offsets[i : i + bs], flips[i : i + bs], self.size)
            else:
                x = self.train_src[idx]
            yield self._prepare(x), self.train_y[idx]

    def train_batches(self, epoch: int):
        return self._train_iter(self.gen)

    def bn_batches(self):
        return self._train_iter(self.bn_gen)

    def eval_batches(self, split: str):
        x, y = self.splits[split]
        for i in range(0, x.shape[0], self.eval_batch_size):
            yield self._prepare(x[i : i + self.eval_batch_size]), y[i : i + self.eval_batch_size]

    # -- state (for resume) ------------------------------------------------------
    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "bn_gen": self.bn_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        # Generator states are CPU byte tensors, even for a CUDA generator; a checkpoint
        # loaded with map_location="cuda" hands them over on the device.
        self.gen.set_state(state["gen"].cpu())
        self.bn_gen.set_state(state["bn_gen"].cpu())


class _EpochBatches:
    """A DataLoader batch sampler: one pass over ``n`` examples per ``iter()``, each
    index paired with a seed for its augmentation. Runs in the main process, so the
    draws come from the task's generator whatever the number of workers."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator | None):
        self.n, self.batch_size, self.gen = n, batch_size, gen

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        if self.gen is None:  # evaluation: fixed order, deterministic transforms
            order, seeds = list(range(self.n)), [0] * self.n
        else:
            order = torch.randperm(self.n, generator=self.gen).tolist()
            seeds = torch.randint(0, 2**62, (self.n,), generator=self.gen).tolist()
        for i in range(0, self.n, self.batch_size):
            yield list(zip(order[i : i + self.batch_size], seeds[i : i + self.batch_size]))


class _Seeded(torch.utils.data.Dataset):
    """``dataset[(index, seed)]``: the item with torch's CPU RNG seeded to ``seed``.

    torchvision's random transforms draw from torch's global RNG; seeding it per item
    makes an epoch's augmentation a function of the task's generator alone: the same
    with 0 or 16 workers, and the main process's RNG (dropout) is left untouched.
    """

    def __init__(self, base):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item):
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.base[index]


class FolderImageTask(_Classifier):
    """An image-folder dataset streamed through DataLoader workers (ImageNet).

    Workers decode and transform images to uint8 (C, H, W) tensors; batches arrive in
    pinned memory on CUDA, are copied without blocking and converted and normalised on
    the device. Shuffling and augmentation seeds come from the task's generators (see
    :class:`_Seeded`), so results do not depend on ``dataset.options.workers``.
    Workers are started per pass (train epoch, BN pass, evaluation) and stopped after;
    on ImageNet that costs seconds against minutes per epoch.
    """

    def __init__(self, data, *, device: torch.device, batch_size: int, eval_batch_size: int, seed: int,
                 channels_last: bool = False):
        self._init_common(data, device, batch_size, eval_batch_size, channels_last)
        self.workers = data.workers
        self.splits = {"test": data.test}
        if data.val is not None:
            self.splits["val"] = data.val
        self.eval_splits = tuple(s for s in ("val", "test") if s in self.splits)
        self._set_norm(data.mean, data.std, data.scale)
        self.n = len(data.train)
        self.iters_per_epoch = math.ceil(self.n / batch_size)
        self.gen = torch.Generator().manual_seed(seed)
        self.bn_gen = torch.Generator().manual_seed(seed + BN_SEED_OFFSET)

    def _stream(self, dataset, batch_size: int, gen: torch.Generator | None):
        loader = torch.utils.data.DataLoader(
            _Seeded(dataset), batch_sampler=_EpochBatches(len(dataset), batch_size, gen),
            num_workers=self.workers, pin_memory=self.device.type == "cuda",
            # The loader draws a base seed per pass; from its own generator, not torch's
            # global one (which dropout uses). Items are seeded by _Seeded anyway.
            generator=torch.Generator().manual_seed(0),
        )
        for x, y in loader:
            yield self._prepare(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True)

    def train_batches(self, epoch: int):
        return self._stream(self.data.train, self.batch_size, self.gen)

    def bn_batches(self):
        return self._stream(self.data.train, self.batch_size, self.bn_gen)

    def eval_batches(self, split: str):
        return self._stream(self.splits[split], self.eval_batch_size, None)

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "bn_gen": self.bn_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"].cpu())
        self.bn_gen.set_state(state["bn_gen"].cpu())


@TASKS.register("image", help="Image classification with cross-entropy and accuracy")
def image_task(data, **kwargs):
    """:class:`ImageTask` (device-resident) for in-memory ImageData, :class:`FolderImageTask`
    (streamed through DataLoader workers) for folder data such as ImageNet."""
    if isinstance(data, ImageData):
        return ImageTask(data, **kwargs)
    return FolderImageTask(data, **kwargs)
