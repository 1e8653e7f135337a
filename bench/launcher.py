"""Benchmark: 4 smoke runs one after another vs through the launcher, in one run.

Three ways, same four specs (``quickstart`` at smoke scale, seeds 0-3, tracking
off so the store is not what is measured):

1. sequential: one ``workbench run`` child at a time, torch's default threads;
2. launcher, oversubscribed: 2 workers, each child with as many threads as cores;
3. launcher, thread budget: 2 workers, each child with cores / workers threads
   (what ``threads = "auto"`` gives under the launcher).

Prints wall times, then ``throughput_ratio=<launcher with budget / sequential>``
last (runs per second, higher is better).

    python bench/launcher.py [--runs 4] [--workers 2] [--preset quickstart] [--epochs N]
"""
from __future__ import annotations

import argparse
import os
import time

from workbench.launch.local import LocalLauncher, default_workers
from workbench.presets import load_spec


def timed(specs, workers: int, env: dict[str, str]) -> float:
    launcher = LocalLauncher(workers=workers, gpus=[], env=env)
    t0 = time.perf_counter()
    handles = [launcher.submit(s) for s in specs]
    launcher.wait()
    elapsed = time.perf_counter() - t0
    launcher.shutdown()
    bad = [h for h in handles if h.status != "FINISHED"]
    if bad:
        raise SystemExit(f"a benchmark run failed: {bad[0].error}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0, help="parallel runs (0 = one per core)")
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--epochs", type=int, default=0, help="override the smoke epochs (0 = keep)")
    args = ap.parse_args()
    workers = args.workers or default_workers([])
    cores = default_workers([])
    extra = [f"budget.epochs={args.epochs}"] if args.epochs else []
    specs = [load_spec(args.preset, scale="smoke", overrides=["tracking.enabled=false", f"seed={i}", *extra])
             for i in range(args.runs)]
    print(f"{args.runs} x {args.preset} (smoke), {cores} cores, {workers} workers")
    # Sequential: each run alone, so it may use every core (threads = cores).
    t_seq = timed(specs, 1, {})
    print(f"sequential                      {t_seq:7.1f} s  {args.runs / t_seq:.3f} runs/s")
    # Parallel with every child claiming all cores: the oversubscription the budget avoids.
    over = [s.model_copy(update={"threads": cores}) for s in specs]
    t_over = timed(over, workers, {})
    print(f"launcher, {workers} x {cores} threads        {t_over:7.1f} s  {args.runs / t_over:.3f} runs/s")
    t_par = timed(specs, workers, {})
    per = max(1, cores // workers)
    print(f"launcher, {workers} x {per} thread(s) (auto) {t_par:7.1f} s  {args.runs / t_par:.3f} runs/s")
    print(f"oversubscribed/budget time ratio={t_over / t_par:.2f}")
    print(f"throughput_ratio={t_seq / t_par:.2f}")


if __name__ == "__main__":
    main()
