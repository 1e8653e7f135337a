"""The device-resident image task: its augmentation has the reference transforms'
distribution and values, its batches are deterministic for a seed, and BN passes,
resumes and memory formats do not change what the backbone sees.

Device cases run on CPU everywhere and on CUDA where there is one (marked ``gpu``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.data.image import CIFAR10_MEAN, CIFAR10_STD, ImageData
from workbench.tasks.base import DataInfo
from workbench.tasks.image import ImageTask, crop_flip, image_task, random_crop_flip

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, CUDA])]


def _task(data: ImageData, device="cpu", seed=0, batch_size=64, **kw) -> ImageTask:
    return image_task(data, device=torch.device(device), batch_size=batch_size, eval_batch_size=50, seed=seed, **kw)


def _random_cifar(n=96, seed=0, **kw) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    return ImageData(DataInfo("image", 10, (3, 32, 32)), x, y, x[:40].clone(), y[:40].clone(),
                     CIFAR10_MEAN, CIFAR10_STD, scale=255.0, augment="crop_flip", **kw)


def _coded(n=256) -> ImageData:
    """Images whose pixels say where they come from: channel 0 = row + 1, channel 1 =
    column + 1, channel 2 = the image's index (zero padding reads as 0). Identity
    normalisation, so a batch holds the raw codes."""
    rows = torch.arange(1, 33, dtype=torch.uint8)[:, None].expand(32, 32)
    cols = torch.arange(1, 33, dtype=torch.uint8)[None, :].expand(32, 32)
    x = torch.empty(n, 3, 32, 32, dtype=torch.uint8)
    x[:, 0], x[:, 1] = rows, cols
    x[:, 2] = torch.arange(n, dtype=torch.uint8)[:, None, None]
    y = torch.arange(n) % 10
    return ImageData(DataInfo("image", 10, (3, 32, 32)), x, y, x, y, (0.0,) * 3, (1.0,) * 3,
                     scale=1.0, augment="crop_flip")


def _decode(batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row offset, col offset, flipped, image index) of each image of a coded batch.

    Pixel (16, 16) of a crop at (r0, c0) always lies inside the original image: its row
    code is r0 + 16 - pad + 1; its column code is c0 + 16 - 3 unflipped (c0 + 15 - 3
    flipped), and the column codes fall from (16, 16) to (16, 17) exactly when flipped.
    """
    b = batch.cpu().numpy().astype(np.int64)
    r0 = b[:, 0, 16, 16] - 13
    flipped = b[:, 1, 16, 17] < b[:, 1, 16, 16]
    c0 = b[:, 1, 16, 16] - np.where(flipped, 12, 13)
    return r0, c0, flipped, b[:, 2, 16, 16]


# ----------------------------------------------------------------------------- distribution


@pytest.mark.parametrize("device", DEVICES)
def test_offsets_uniform_flips_half_and_every_image_once_per_epoch(device):
    task = _task(_coded(), device, seed=3)
    r_all, c_all, f_all = [], [], []
    for epoch in range(40):  # 40 x 256 = 10240 draws
        seen = []
        for x, _ in task.train_batches(epoch):
            r0, c0, fl, idx = _decode(x)
            r_all.append(r0), c_all.append(c0), f_all.append(fl), seen.append(idx)
        assert sorted(np.concatenate(seen).tolist()) == list(range(256))  # a permutation
    r, c, f = np.concatenate(r_all), np.concatenate(c_all), np.concatenate(f_all)
    n = len(r)
    assert r.min() == 0 and r.max() == 8 and c.min() == 0 and c.max() == 8
    # Chi-square against uniform over 0..8 per axis (8 dof; p = 0.001 at 26.1) and for
    # the joint (row, col, flip) cells (161 dof; p = 0.001 at 222): independent draws.
    for v in (r, c):
        counts = np.bincount(v, minlength=9)
        assert ((counts - n / 9) ** 2 / (n / 9)).sum() < 26.1
    joint = np.bincount(r * 18 + c * 2 + f, minlength=162)
    assert ((joint - n / 162) ** 2 / (n / 162)).sum() < 222.0
    assert abs(f.mean() - 0.5) < 4 * math.sqrt(0.25 / n)


def test_crop_flip_equals_reference_transforms_pixel_for_pixel():
    """The device path against torchvision's RandomCrop(32, padding=4) +
    RandomHorizontalFlip + ToTensor + Normalize, on the same offsets and flips."""
    from PIL import Image
    from torchvision import transforms as T
    from torchvision.transforms import functional as TF

    data = _random_cifar(n=24)
    task = _task(data)
    g = torch.Generator().manual_seed(1)
    offsets = torch.randint(0, 9, (24, 2), generator=g)
    flips = torch.rand(24, generator=g) < 0.5
    flips[:2] = torch.tensor([True, False])
    ours = task._prepare(random_crop_flip(data.train_x, 4, offsets, flips))
    tail = T.Compose([T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    for k in range(24):
        img = Image.fromarray(data.train_x[k].permute(1, 2, 0).numpy())
        img = TF.crop(TF.pad(img, 4, fill=0), int(offsets[k, 0]), int(offsets[k, 1]), 32, 32)
        if flips[k]:
            img = TF.hflip(img)
        assert torch.equal(ours[k], tail(img)), f"image {k}"


def test_crop_flip_gathers_from_the_padded_store():
    data = _random_cifar(n=16)
    src = torch.nn.functional.pad(data.train_x, (4, 4, 4, 4)).permute(0, 2, 3, 1).contiguous()
    idx = torch.tensor([5, 0, 15, 5])
    offsets = torch.tensor([[0, 8], [8, 0], [4, 4], [3, 7]])
    flips = torch.tensor([False, True, True, False])
    out = crop_flip(src, idx, offsets, flips, (32, 32))
    assert out.shape == (4, 3, 32, 32) and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, random_crop_flip(data.train_x[idx], 4, offsets, flips))
    assert torch.equal(out[2], data.train_x[15].flip(2))  # centre crop, mirrored
    # Crop at (0, 8): 4 rows of padding on top, 4 columns of padding on the right.
    assert (out[0, :, :4] == 0).all() and (out[0, :, :, 28:] == 0).all()
    assert torch.equal(out[0, :, 4:, :28], data.train_x[5, :, :28, 4:])


# ----------------------------------------------------------------------------- determinism


def _epochs(task, n=2):
    return [[(x.clone(), y.clone()) for x, y in task.train_batches(e)] for e in range(n)]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        len(ea) == len(eb) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(ea, eb))
        for ea, eb in zip(a, b))


@pytest.mark.parametrize("device", DEVICES)
def test_batches_deterministic_for_a_seed_and_differ_across_seeds(device):
    data = _random_cifar()
    first = _epochs(_task(data, device, seed=5))
    assert _same(first, _epochs(_task(data, device, seed=5)))
    assert not _same(first, _epochs(_task(data, device, seed=6)))
    assert not torch.equal(first[0][0][0], first[1][0][0])  # epochs differ


def test_bn_passes_do_not_shift_the_training_stream():
    data = _random_cifar()
    plain = _task(data, seed=2)
    busy = _task(data, seed=2)
    expected = _epochs(plain, 3)
    got = []
    for e in range(3):
        got.append([(x.clone(), y.clone()) for x, y in busy.train_batches(e)])
        for _ in busy.bn_batches():  # a BN recalibration between epochs
            pass
    assert _same(expected, got)


def test_state_dict_resumes_the_stream():
    data = _random_cifar()
    a = _task(data, seed=4)
    _epochs(a, 1)
    state = a.state_dict()
    rest = _epochs(a, 2)
    b = _task(data, seed=4)
    b.load_state_dict(state)
    assert _same(rest, _epochs(b, 2))


def test_partial_last_batch_and_iters_per_epoch():
    task = _task(_random_cifar(n=100), batch_size=32)
    sizes = [y.shape[0] for _, y in task.train_batches(0)]
    assert task.iters_per_epoch == math.ceil(100 / 32) == len(sizes) and sizes == [32, 32, 32, 4]
    assert [y.shape[0] for _, y in task.eval_batches("test")] == [40]
    assert task.eval_splits == ("test",)


def test_channels_last_changes_layout_not_values():
    data = _random_cifar()
    cl, plain = _task(data, seed=1), _task(data, seed=1)
    cl.channels_last = True  # what run.py does on CUDA
    for (xa, ya), (xb, yb) in zip(cl.train_batches(0), plain.train_batches(0)):
        assert xa.is_contiguous(memory_format=torch.channels_last) and xb.is_contiguous()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    xe = next(iter(cl.eval_batches("test")))[0]
    assert xe.is_contiguous(memory_format=torch.channels_last)


def test_float_data_is_never_written_by_normalisation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (30,), generator=g)
    data = ImageData(DataInfo("image", 3, (1, 8, 8)), x, y, x, y, (0.5,), (2.0,))  # no augmentation
    task = _task(data)
    before = x.clone()
    batch = next(iter(task.eval_batches("test")))[0]
    for _ in task.train_batches(0):
        pass
    assert torch.equal(x, before)
    assert torch.allclose(batch, (before - 0.5) / 2.0)


def test_loss_returns_device_tensors_without_a_host_read():
    task = _task(_random_cifar())
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    batch = next(iter(task.train_batches(0)))
    loss, correct, n = task.loss(model, batch)
    assert loss.dim() == 0 and loss.requires_grad and isinstance(correct, torch.Tensor) and n == 64


@pytest.mark.gpu
@CUDA
def test_cuda_draws_live_on_the_device():
    task = _task(_random_cifar(), "cuda")
    assert task.gen.device.type == "cuda" and task.train_src.is_cuda
    x, y = next(iter(task.train_batches(0)))
    assert x.is_cuda and y.is_cuda and x.dtype == torch.float32


@pytest.mark.gpu
@CUDA
def test_cuda_epoch_of_batches_never_syncs_with_the_host():
    """Permutation, offsets and flips are drawn on the device: building an epoch's
    batches issues no host synchronisation (no copies, no reads)."""
    import warnings

    task = _task(_random_cifar(n=1000), "cuda", batch_size=128)
    task.channels_last = True
    for _ in task.train_batches(0):  # warm-up: allocator, kernels
        pass
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in task.train_batches(1):
                pass
            for _ in task.bn_batches():
                pass
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert not [str(w.message) for w in caught if "synchroniz" in str(w.message)]
