"""CPU benchmark: one epoch of the device-resident image path against the reference DataLoader path.

    python bench/image_epoch.py [--size 5000] [--model toy_cnn|vgg16] [--threads 1]

Both paths train the same model from the same initial weights on the same CIFAR-shaped
synthetic uint8 images (batch 128, SGD, fp32), in one process, one after the other:

* fast:      workbench's ImageTask: the images held as uint8 tensors, pad 4 + random crop
             + flip as one gather per batch, normalised in place; loss and accuracy
             summed on the device and read once per epoch.
* reference: what the reference code does (timgaripov/swa, ZJLAB-AMMI/PSWA): a Dataset of
             PIL images through RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor
             + Normalize, a shuffling DataLoader (num_workers 0 here), and ``loss.item()``
             and ``correct.item()`` after every step.

Printed: seconds and images/s for the data alone (batches built, no model) and for the
full epoch, then the ratios, the full-epoch ratio last. On a CPU the model's compute
dominates the epoch, so the full-epoch ratio is far smaller than the data-only one.
Run from the repository root with the project installed (or PYTHONPATH=.).
"""
from __future__ import annotations

import argparse
import copy
import platform
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from workbench.data.image import CIFAR10_MEAN, CIFAR10_STD, ImageData
from workbench.tasks.base import DataInfo
from workbench.tasks.image import ImageTask


def cifar_like(n: int, num_classes: int = 10, seed: int = 0) -> ImageData:
    """Random uint8 images shaped like CIFAR (N, 3, 32, 32), CIFAR's normalisation and augmentation."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, num_classes, (n,), generator=g)
    return ImageData(DataInfo("image", num_classes, (3, 32, 32)), x, y, x[:1000], y[:1000],
                     CIFAR10_MEAN, CIFAR10_STD, scale=255.0, augment="crop_flip")


class PilImages(torch.utils.data.Dataset):
    """The reference's view of CIFAR: one PIL image per item, through torchvision transforms."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.images = x.permute(0, 2, 3, 1).contiguous().numpy()  # HWC, as torchvision's CIFAR10 keeps it
        self.labels = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def reference_loader(data: ImageData, batch_size: int, workers: int, pin: bool, seed: int = 0):
    from torchvision import transforms as T

    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(data.mean, data.std)])
    return torch.utils.data.DataLoader(
        PilImages(data.train_x, data.train_y, tf), batch_size=batch_size, shuffle=True, num_workers=workers,
        pin_memory=pin, generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0)


def fast_epoch(task, model, opt, autocast, limit: int = 0) -> tuple[float, int]:
    """The engine's hot loop (engine/loop.py Trainer._train_epoch, minus sampling):
    metrics stay on the device, one host read at the end."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=task.device)
    correct = torch.zeros((), dtype=torch.int64, device=task.device)
    count = 0
    for k, batch in enumerate(task.train_batches(0)):
        if limit and k >= limit:
            break
        with autocast():
            loss, c, n = task.loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach().double() * n
        correct += c
        count += n
    return loss_sum.item() / max(count, 1), count  # the epoch's one host sync


def reference_epoch(loader, model, opt, device, limit: int = 0) -> tuple[float, int]:
    """timgaripov/swa utils.train_epoch: per-step host reads of loss and accuracy."""
    loss_sum, correct, count = 0.0, 0, 0
    for k, (x, y) in enumerate(loader):
        if limit and k >= limit:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum += loss.item() * x.shape[0]  # host sync every step
        correct += out.argmax(1).eq(y).sum().item()
        count += x.shape[0]
    return loss_sum / max(count, 1), count


def build_model(name: str, info: DataInfo, width: float):
    from workbench.models.cnn import toy_cnn
    from workbench.models.vgg import vgg16

    return toy_cnn(info) if name == "toy_cnn" else vgg16(info, width=width)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=5000, help="training images per epoch")
    ap.add_argument("--model", choices=["toy_cnn", "vgg16"], default="toy_cnn")
    ap.add_argument("--width", type=float, default=1 / 16, help="vgg16 width multiplier")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="tries per path (alternating); the fastest counts")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = cifar_like(args.size)
    dev = torch.device("cpu")
    model0 = build_model(args.model, data.info, args.width)
    print(f"# image_epoch: {args.model}, {args.size} CIFAR-shaped uint8 images, batch {args.batch_size}, "
          f"{args.threads} thread(s); torch {torch.__version__}, {platform.processor() or platform.machine()}")

    task = ImageTask(data, device=dev, batch_size=args.batch_size, eval_batch_size=1000, seed=0)
    loader = reference_loader(data, args.batch_size, workers=0, pin=False)
    models = {name: copy.deepcopy(model0) for name in ("fast", "reference")}
    opts = {name: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            for name, m in models.items()}
    batches = {"fast": lambda: task.train_batches(0), "reference": lambda: loader}
    epoch = {
        "fast": lambda limit=0: fast_epoch(task, models["fast"], opts["fast"], nullcontext, limit),
        "reference": lambda limit=0: reference_epoch(loader, models["reference"], opts["reference"], dev, limit),
    }
    for name in ("fast", "reference"):  # warm-up: allocator, first-call overheads
        for _ in zip(range(3), batches[name]()):
            pass
        epoch[name](limit=3)
    # The machine is shared: alternate the two paths and keep each one's fastest try.
    t: dict[str, float] = {}
    for _ in range(args.repeat):
        for name in ("fast", "reference"):
            t0 = time.perf_counter()
            for _ in batches[name]():
                pass
            t1 = time.perf_counter()
            epoch[name]()
            t2 = time.perf_counter()
            t[f"{name} data"] = min(t.get(f"{name} data", float("inf")), t1 - t0)
            t[f"{name} epoch"] = min(t.get(f"{name} epoch", float("inf")), t2 - t1)

    for key, sec in t.items():
        print(f"{key:16s} {sec:8.3f} s  {args.size / sec:10.0f} images/s")
    print(f"# fastest of {args.repeat} alternating tries per path")
    print(f"ratio data  (reference / fast): {t['reference data'] / t['fast data']:.2f}x")
    print(f"ratio epoch (reference / fast): {t['reference epoch'] / t['fast epoch']:.2f}x")


if __name__ == "__main__":
    main()
