"""Benchmark: graph epochs through the workbench vs minimal hand-written PyG loops, in one run.

1. Node classification, one full-batch epoch on Cora (the real one when
   ``$WORKBENCH_DATA`` or ../shared/data has it, else a synthetic graph of Cora's size): the
   engine's epoch (Trainer + node task: one step, then val and test accuracy) against the
   loop of PyG's ``examples/gcn.py`` (one step, then one forward scoring every mask) with the
   same GCN. Goal: ratio <= 1.05. Also shown: the same hand loop with dense input dropout
   (``sparse_input=False``), i.e. what the model's sparse path saves.
2. Graph classification, one training epoch of GIN on PROTEINS (real or a synthetic set of
   its size) with three ways of batching: ``DataLoader(shuffle=True)`` re-collating every
   epoch, batches pre-collated once with only their order shuffled, and the graph task's
   device-side collation (a fresh shuffle of graphs every epoch). Collation alone is timed
   too.

Blocks of epochs of each contender are interleaved and medians taken, so a shared, busy
machine hurts all of them alike. Ratios are printed last.

    python bench/graph.py [--device cpu|cuda] [--threads 1] [--epochs 5] [--rounds 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.registry import DATASETS, MODELS, load_builtins
from workbench.spec import DatasetSpec, validate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def data_root() -> str | None:
    for cand in (os.environ.get("WORKBENCH_DATA"), str(SHARED)):
        if cand and (Path(cand) / "planetoid" / "Cora" / "raw").is_dir():
            return cand
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_ms(xs: list[float]) -> float:
    return 1000 * statistics.median(xs)


# ----------------------------------------------------------------------------- node


def node_bench(device: torch.device, epochs: int, rounds: int) -> tuple[float, float, float, str]:
    from workbench.engine.loop import Trainer
    from workbench.tasks.node import NodeTask

    root = data_root()
    name = "cora" if root else "synthetic_nodes"
    data = DATASETS.get(name).obj(DatasetSpec(name=name, root=root))
    task = NodeTask(data, device=device, seed=0)
    spec = validate({"model": {"name": "gcn"}, "dataset": {"name": name}, "optimizer": {"name": "adam"},
                     "schedule": {"name": "constant", "lr": 0.01}, "averaging": {"variant": "none"},
                     "budget": {"epochs": epochs}, "tracking": {"enabled": False}})
    torch.manual_seed(0)
    ours_model = MODELS.get("gcn").obj(data.info).to(device)
    x, ei, y = task.x, task.edge_index, task.y
    masks = {k: torch.zeros(y.numel(), dtype=torch.bool, device=device).index_fill_(0, v, True)
             for k, v in task.splits.items()}

    def hand(sparse_input: bool):
        model = MODELS.get("gcn").obj(data.info, sparse_input=sparse_input).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)

        def epoch() -> None:  # PyG examples/gcn.py: train(), then test()
            model.train()
            opt.zero_grad()
            out = model(x, ei)
            loss = F.cross_entropy(out[masks["train"]], y[masks["train"]])
            loss.backward()
            opt.step()
            float(loss.detach())
            model.eval()
            with torch.no_grad():
                pred = model(x, ei).argmax(dim=-1)
            [int((pred[m] == y[m]).sum()) / int(m.sum()) for m in masks.values()]

        def block() -> list[float]:
            out = []
            for _ in range(epochs):
                t0 = time.perf_counter()
                epoch()
                sync(device)
                out.append(time.perf_counter() - t0)
            return out

        return block

    def ours_block() -> list[float]:
        trainer = Trainer(spec, task, ours_model)
        return [e["time/epoch_s"] for e in trainer.fit().epochs]

    contenders = {"ours": ours_block, "hand": hand(True)}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(rounds + 1):
        for k in (("ours", "hand") if r % 2 else ("hand", "ours")):  # alternate who goes first
            ts = contenders[k]()
            if r:  # round 0 warms up (caches, allocator, lazy imports)
                times[k] += ts
    dense = hand(False)  # measured apart: its 4M-element dropout would evict the others' caches
    dense()
    return median_ms(times["ours"]), median_ms(times["hand"]), median_ms(dense()), name


# ----------------------------------------------------------------------------- graph


def graph_bench(device: torch.device, epochs: int, rounds: int, batch_size: int) -> dict[str, tuple[float, float]]:
    from torch_geometric.data import Batch
    from torch_geometric.loader import DataLoader

    from workbench.tasks.graph import GraphTask

    root = data_root()
    if root and (Path(root) / "tu" / "PROTEINS" / "raw").is_dir():
        data = DATASETS.get("proteins").obj(DatasetSpec(name="proteins", root=root), use_node_attr=False)
    else:
        data = DATASETS.get("synthetic_graphs").obj(DatasetSpec(name="synthetic_graphs"), num_graphs=1113,
                                                    min_nodes=10, max_nodes=70)
    task = GraphTask(data, device=device, batch_size=batch_size, eval_batch_size=1000, seed=0)
    train = [data.graphs[i] for i in data.splits["train"].tolist()]
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    fixed = [Batch.from_data_list(train[i:i + batch_size]).to(device) for i in range(0, len(train), batch_size)]
    gen = torch.Generator().manual_seed(0)
    ways = {
        "dataloader": lambda: (b.to(device, non_blocking=True) for b in loader),
        "precollated": lambda: (fixed[i] for i in torch.randperm(len(fixed), generator=gen).tolist()),
        "ours": lambda: task.train_batches(0),
    }
    torch.manual_seed(0)
    model = MODELS.get("gin").obj(data.info).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def step(b) -> None:
        opt.zero_grad()
        loss = F.cross_entropy(model(b), b.y)
        loss.backward()
        opt.step()

    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ways}
    model.train()
    for r in range(rounds + 1):
        for _ in range(epochs):
            for k, batches in ways.items():  # alternate epoch by epoch
                t0 = time.perf_counter()
                for b in batches():  # collation only
                    pass
                sync(device)
                t1 = time.perf_counter()
                for b in batches():
                    step(b)
                sync(device)
                t2 = time.perf_counter()
                if r:
                    times[k][0].append(t1 - t0)
                    times[k][1].append(t2 - t1)
    return {k: (median_ms(c), median_ms(e)) for k, (c, e) in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=5, help="epochs per block of one contender (node) / per round (graph)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_builtins()
    device = torch.device(args.device)
    print(f"device {device}, {args.threads} thread(s), torch {torch.__version__}")

    ours, hand, dense, name = node_bench(device, args.epochs, args.rounds)
    print(f"node epoch on {name} (GCN, train step + val/test accuracy), median ms:")
    print(f"  workbench (Trainer + node task)      {ours:8.2f}")
    print(f"  hand-written PyG loop, same model    {hand:8.2f}")
    print(f"  hand-written, dense input dropout    {dense:8.2f}")

    res = graph_bench(device, 1, max(2, args.rounds // 2), args.batch_size)
    print(f"graph epoch (GIN, batch {args.batch_size}), median ms: collation only / collation + training steps")
    for k, (c, e) in res.items():
        print(f"  {k:<12} {c:8.2f} / {e:8.2f}")
    print(f"node_epoch_ratio={ours / hand:.3f} (goal <= 1.05)")
    print(f"sparse_input_speedup={dense / hand:.2f}")
    print(f"graph_ours_vs_precollated={res['ours'][1] / res['precollated'][1]:.3f}")
    print(f"graph_ours_vs_dataloader={res['ours'][1] / res['dataloader'][1]:.3f}")


if __name__ == "__main__":
    main()
