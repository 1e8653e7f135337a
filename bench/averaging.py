"""Benchmark: one averaging update on a WideResNet-28-10 parameter set, ours vs AveragedModel.

Both averagers update from the same model (the real WRN-28-10 tensor shapes,
about 36.5M parameters) in the same process; each timing is the minimum over
repeats after a warm-up. Also measures a plain flat tensor copy to express the
update's bandwidth as a fraction of what a copy achieves on this machine.

    python bench/averaging.py [--repeats 15] [--threads N] [--model wrn28_10]

Prints ``speedup_vs_AveragedModel=<x>`` as its last line (goal: >= 3 on CPU).
"""
from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.optim.swa_utils import AveragedModel

from workbench import registry
from workbench.engine.averaging import WeightAverage
from workbench.tasks.base import DataInfo


def best_of(fn, repeats: int) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--model", default="wrn28_10")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (on a GPU, times are synchronised per call)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    registry.load_builtins()
    dev = torch.device(args.device)
    model = registry.MODELS.get(args.model).obj(DataInfo("image", 10, (3, 32, 32))).to(dev)
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    nbytes = 4 * n
    print(f"{args.model}: {n / 1e6:.2f}M parameters in {len(params)} tensors, "
          f"{sum(1 for _ in model.buffers())} buffers; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, device {dev}")

    ours = WeightAverage(model)
    ours.add()  # past the first (copying) update: time the real lerp path
    ref = AveragedModel(model)
    ref.update_parameters(model)

    t_ours = best_of(ours.add, args.repeats)
    t_ref = best_of(lambda: ref.update_parameters(model), args.repeats)

    src = torch.randn(n, device=dev)
    dst = torch.empty(n, device=dev)
    t_copy = best_of(lambda: dst.copy_(src), args.repeats)

    # An update reads the average and the weights and writes the average: 3 x model bytes.
    bw_update = 3 * nbytes / t_ours / 1e9
    bw_copy = 2 * nbytes / t_copy / 1e9  # read + write
    print(f"ours (foreach lerp, fp32 shadow):       {t_ours * 1e3:8.2f} ms/update  {bw_update:6.1f} GB/s")
    print(f"AveragedModel.update_parameters:        {t_ref * 1e3:8.2f} ms/update")
    print(f"plain flat copy of the same {nbytes / 1e6:.0f} MB:     {t_copy * 1e3:8.2f} ms  {bw_copy:6.1f} GB/s")
    print(f"update bandwidth / copy bandwidth = {bw_update / bw_copy:.2f}")
    print(f"update time / copy time = {t_ours / t_copy:.2f} (an update moves 1.5x the bytes of a copy)")
    print(f"speedup_vs_AveragedModel={t_ref / t_ours:.2f}")


if __name__ == "__main__":
    main()
