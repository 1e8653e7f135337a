"""Image classification: device-resident tensors, per-batch augmentation on the device.

The whole dataset is moved to the training device once (uint8 for CIFAR: 150 MB
for 50k images). Each batch is gathered by index, augmented (zero-pad 4, random
32x32 crop, horizontal flip with probability 1/2: the reference transforms'
distribution) and normalised on the device; no DataLoader workers.

Randomness: shuffling and augmentation draw from the task's own generator,
seeded from the run seed; BN recalibration batches draw from a second generator,
so how often the average is evaluated never changes the backbone's trajectory.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F

from workbench.data.image import ImageData
from workbench.registry import TASKS


def random_crop_flip(
    x: torch.Tensor, pad: int, offsets: torch.Tensor, flips: torch.Tensor
) -> torch.Tensor:
    """Zero-pad by ``pad``, crop back to the input size at per-image ``offsets``
    (B, 2) = (row, col) in [0, 2 * pad], then flip the images where ``flips``.

    Padding happens on the raw values (before normalisation), as the reference
    ``RandomCrop(32, padding=4)`` does on PIL images.
    """
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # (B, W)
    idx_b = torch.arange(b, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    out = out.permute(0, 3, 1, 2)
    return torch.where(flips[:, None, None, None], out.flip(3), out)


@TASKS.register("image", help="Image classification with cross-entropy and accuracy")
class ImageTask:
    def __init__(self, data: ImageData, *, device: torch.device, batch_size: int, eval_batch_size: int, seed: int,
                 channels_last: bool = False):
        self.info = data.info
        self.device = device
        self.data = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.channels_last = channels_last
        put = lambda t: None if t is None else t.to(device)  # noqa: E731
        self.train_x, self.train_y = put(data.train_x), put(data.train_y)
        self.splits = {"test": (put(data.test_x), put(data.test_y))}
        if data.val_x is not None:
            self.splits["val"] = (put(data.val_x), put(data.val_y))
        self.eval_splits = tuple(s for s in ("val", "test") if s in self.splits)
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(data.mean, device=device).view(shape)
        self.std = torch.tensor(data.std, device=device).view(shape)
        self.n = self.train_x.shape[0]
        self.iters_per_epoch = math.ceil(self.n / batch_size)
        self.gen = torch.Generator().manual_seed(seed)
        self.bn_gen = torch.Generator().manual_seed(seed + 7919)

    # -- batches -----------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() / self.data.scale - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _train_iter(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(self.n, generator=gen).to(self.device, non_blocking=True)
        aug = self.data.augment == "crop_flip"
        for i in range(0, self.n, self.batch_size):
            idx = perm[i : i + self.batch_size]
            x = self.train_x[idx]
            if aug:
                b, p = idx.shape[0], self.data.pad
                offsets = torch.randint(0, 2 * p + 1, (b, 2), generator=gen).to(self.device, non_blocking=True)
                flips = (torch.rand(b, generator=gen) < 0.5).to(self.device, non_blocking=True)
                x = random_crop_flip(x, p, offsets, flips)
            yield self._prepare(x), self.train_y[idx]

    def train_batches(self, epoch: int):
        return self._train_iter(self.gen)

    def bn_batches(self):
        return self._train_iter(self.bn_gen)

    def eval_batches(self, split: str):
        x, y = self.splits[split]
        for i in range(0, x.shape[0], self.eval_batch_size):
            yield self._prepare(x[i : i + self.eval_batch_size]), y[i : i + self.eval_batch_size]

    # -- model contract ----------------------------------------------------------
    def forward(self, model, batch):
        return model(batch[0])

    def loss(self, model, batch):
        x, y = batch
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        correct = (logits.argmax(1) == y).sum()
        return loss, correct, y.shape[0]

    # -- state (for resume) ------------------------------------------------------
    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "bn_gen": self.bn_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.bn_gen.set_state(state["bn_gen"])
