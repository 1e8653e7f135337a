"""GPU benchmark: one timed CIFAR-sized epoch of VGG16, PreResNet-164 and WRN-28-10,
workbench's fast path against a plain eager fp32 DataLoader loop, in one run.

    python bench/gpu_epoch.py [--epochs-size 50000] [--compile] [--models vgg16,wrn28_10]
    python bench/gpu_epoch.py --device cpu --size 512        # smoke run, to know it works

Per model, on the same synthetic CIFAR-shaped uint8 images (``--epochs-size`` of them)
and from the same initial weights, SGD (momentum 0.9, wd 5e-4), batch 128:

* fast:  workbench's ImageTask (images resident on the device as uint8, pad + crop +
         flip as one gather per batch, permutation / offsets / flips drawn on the device
         once per epoch), channels_last, bf16 autocast with fp32 weights, metrics summed
         on the device, one host read per epoch; ``--compile`` adds torch.compile.
* plain: what the reference code does: torchvision transforms (RandomCrop(32, padding=4),
         RandomHorizontalFlip, ToTensor, Normalize) on PIL images in a DataLoader with
         ``--workers`` processes and pinned memory, an eager fp32 contiguous model,
         ``loss.item()`` and ``correct.item()`` every step.

Each path is warmed up first (``--warmup`` steps: cuDNN autotuning, DataLoader workers,
compilation, whose time is printed apart), then one full epoch is timed with CUDA
events. Printed per model: images/s of each path and the ratio, then a summary; the
header gives torch, GPU and settings. cudnn.benchmark is on for both paths, as in the
reference code. Without a CUDA device (and without ``--device cpu``) it says so and
exits cleanly. Run from the repository root with the project importable (installed,
or PYTHONPATH=.).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/ itself, for image_epoch
from image_epoch import cifar_like, fast_epoch, reference_epoch, reference_loader  # noqa: E402

from workbench.tasks.image import ImageTask  # noqa: E402

MODELS = ("vgg16", "preresnet164", "wrn28_10")


def build(name: str, info, tiny: bool) -> torch.nn.Module:
    """The paper's networks; ``tiny`` (the CPU smoke run) shrinks them to seconds."""
    from workbench.models.preresnet import preresnet
    from workbench.models.vgg import vgg16
    from workbench.models.wide_resnet import wide_resnet

    if name == "vgg16":
        return vgg16(info, width=1 / 16 if tiny else 1.0)
    if name == "preresnet164":
        return preresnet(info, depth=11 if tiny else 164)
    return wide_resnet(info, depth=10 if tiny else 28, widen=1 if tiny else 10)


class Timer:
    """Seconds between start() and stop(): CUDA events on CUDA (no host sync until the
    read), perf_counter on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        if self.cuda:
            self.a, self.b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.a.record()
        else:
            self.t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self.b.record()
            self.b.synchronize()
            return self.a.elapsed_time(self.b) / 1000.0
        return time.perf_counter() - self.t0


def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def remainder_step(model, opt, batch, rem: int, autocast) -> None:
    """One step on a batch of the epoch's last, partial size, so that cuDNN autotuning
    (and, with --compile, the recompilation for that shape) happens before timing."""
    if rem:
        x, y = batch[0][:rem], batch[1][:rem]
        with autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bench_model(name: str, data, args, device: torch.device) -> dict[str, float]:
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model0 = build(name, data.info, tiny=not cuda)
    params = sum(p.numel() for p in model0.parameters()) / 1e6
    timer = Timer(device)
    out: dict[str, float] = {"params_M": params}

    # -- fast path ----------------------------------------------------------------------
    model = copy.deepcopy(model0).to(device)
    task = ImageTask(data, device=device, batch_size=args.batch_size, eval_batch_size=1000, seed=0)
    if cuda:
        task.channels_last = True
        model = model.to(memory_format=torch.channels_last)
    opt = sgd(model)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    train_model = torch.compile(model) if args.compile else model
    rem = data.train_x.shape[0] % args.batch_size
    t0 = time.perf_counter()
    fast_epoch(task, train_model, opt, autocast, limit=args.warmup)
    remainder_step(train_model, opt, next(iter(task.train_batches(0))), rem, autocast)
    out["fast_warmup_s"] = time.perf_counter() - t0  # includes compilation with --compile
    timer.start()
    _, n = fast_epoch(task, train_model, opt, autocast)
    out["fast_s"] = timer.stop()
    del model, train_model, opt, task

    # -- plain eager fp32 DataLoader path -------------------------------------------------
    model = copy.deepcopy(model0).to(device)
    opt = sgd(model)
    loader = reference_loader(data, args.batch_size, args.workers, pin=cuda)
    reference_epoch(loader, model, opt, device, limit=args.warmup)
    x, y = next(iter(loader))
    remainder_step(model, opt, (x.to(device), y.to(device)), rem, contextlib.nullcontext)
    timer.start()
    _, n_ref = reference_epoch(loader, model, opt, device)
    out["plain_s"] = timer.stop()
    assert n == n_ref == data.train_x.shape[0]
    del loader
    out["fast_ips"], out["plain_ips"] = n / out["fast_s"], n / out["plain_s"]
    out["ratio"] = out["plain_s"] / out["fast_s"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs-size", "--size", dest="size", type=int, default=50_000,
                    help="images in the timed epoch (CIFAR: 50000)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the fast path's model")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke run)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    ap.add_argument("--workers", type=int, default=None, help="plain path's DataLoader workers (default: 4 on CUDA, 0 on CPU)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=30, help="untimed steps per path before its epoch")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_epoch: no CUDA device here, nothing to time (for a CPU smoke run: --device cpu --size 512)")
        return 0
    if args.workers is None:
        args.workers = 4 if device.type == "cuda" else 0  # 4: the reference code's loaders
    models = [m for m in args.models.split(",") if m]
    unknown = set(models) - set(MODELS)
    if unknown:
        ap.error(f"--models: unknown {sorted(unknown)}; choose from {', '.join(MODELS)}")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        where = torch.cuda.get_device_name(device)
    else:
        torch.set_num_threads(1)
        args.warmup = min(args.warmup, 2)
        where = "CPU (smoke: tiny model variants)"
    print(f"# gpu_epoch: torch {torch.__version__}, {where}; {args.size} images/epoch, batch {args.batch_size}, "
          f"warm-up {args.warmup} steps, compile={args.compile}, plain-path workers={args.workers}")
    data = cifar_like(args.size)
    results = {}
    for name in models:
        r = results[name] = bench_model(name, data, args, device)
        print(f"{name:13s} {r['params_M']:6.2f}M params | fast {r['fast_ips']:9.0f} img/s ({r['fast_s']:7.2f} s, "
              f"warm-up {r['fast_warmup_s']:6.1f} s) | plain fp32 DataLoader {r['plain_ips']:9.0f} img/s "
              f"({r['plain_s']:7.2f} s) | ratio {r['ratio']:5.2f}x", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print("summary: " + ", ".join(f"{m} {r['ratio']:.2f}x" for m, r in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
