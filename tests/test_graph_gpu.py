"""Graph tasks on a CUDA device (skipped without one): every GNN trains through the engine
there, batches are built on the device, and host synchronisations are bounded."""

import pytest
import torch
import torch.nn.functional as F

from workbench.engine.run import run
from workbench.registry import DATASETS, MODELS, load_builtins
from workbench.spec import DatasetSpec
from workbench.tasks.graph import GraphTask
from workbench.tasks.node import NodeTask

from gpu_util import count_syncs  # tests/gpu_util.py

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
load_builtins()
CUDA = torch.device("cuda")




@pytest.mark.parametrize("name", ["gcn", "graphsage", "gat", "gin", "sagpool", "mincutpool"])
def test_one_averaging_window_on_cuda(name):
    node = MODELS.get(name).meta["task"] == "node"
    r = run({
        "model": {"name": name}, "device": "cuda",
        "dataset": {"name": "karate"} if node else {"name": "synthetic_graphs", "options": {"num_graphs": 60}},
        "optimizer": {"name": "adam"}, "schedule": {"name": "constant", "lr": 0.01, "swa_phase": "constant", "swa_lr": 0.02},
        "averaging": {"variant": "swa", "start": 2, "keep_samples": True}, "budget": {"epochs": 4, "batch_size": 16},
        "tracking": {"enabled": False},
    })
    assert all(v.is_cuda for v in r.average_state_dict.values())
    for key, value in r.samples[-1][2].items():
        mean = torch.stack([s[key] for _, _, s in r.samples]).mean(0)
        assert torch.allclose(r.average_state_dict[key].cpu(), mean, atol=1e-6), key
    assert r.metrics["final/average_test_acc"] >= 0


def test_graph_batches_are_built_on_the_device_without_syncs():
    data = DATASETS.get("synthetic_graphs").obj(DatasetSpec(name="synthetic_graphs"), num_graphs=300)
    task = GraphTask(data, device=CUDA, batch_size=32, eval_batch_size=1000, seed=0)
    assert task.train.x.is_cuda and task.train.edge_index.is_cuda
    batches = []
    n = count_syncs(lambda: batches.extend(task.train_batches(0)))
    assert all(b.x.is_cuda and b.edge_index.is_cuda and b.batch.is_cuda for b in batches)
    print(f"syncs while building an epoch of {len(batches)} graph batches: {n}")
    assert n == 0


def test_gin_epoch_on_cuda_does_not_sync_per_step():
    data = DATASETS.get("synthetic_graphs").obj(DatasetSpec(name="synthetic_graphs"), num_graphs=300)
    task = GraphTask(data, device=CUDA, batch_size=32, eval_batch_size=1000, seed=0)
    model = MODELS.get("gin").obj(data.info).to(CUDA)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def epoch():
        for b in task.train_batches(0):
            loss, _, _ = task.loss(model, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    epoch()  # warm-up (lazy initialisation may sync)
    n = count_syncs(epoch)
    print(f"GIN epoch of {task.iters_per_epoch} steps: {n} syncs")
    assert n < task.iters_per_epoch


def test_node_epoch_on_cuda_syncs_a_bounded_number_of_times():
    data = DATASETS.get("synthetic_nodes").obj(DatasetSpec(name="synthetic_nodes"))
    task = NodeTask(data, device=CUDA, seed=0)
    model = MODELS.get("gcn").obj(data.info).to(CUDA)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    (batch,) = task.train_batches(0)

    def steps():
        for _ in range(10):
            loss, _, _ = task.loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    steps()  # warm-up: the CSR copy of the features and GCN's cached normalisation
    n = count_syncs(steps)
    print(f"10 full-batch GCN steps with sparse input: {n} syncs")
    assert n <= 10
    dense = MODELS.get("gcn").obj(data.info, sparse_input=False).to(CUDA)
    dense.load_state_dict(model.state_dict())
    model.eval(), dense.eval()
    with torch.no_grad():
        assert torch.allclose(model(task.x, task.edge_index), dense(task.x, task.edge_index), atol=1e-5)
    assert F.cross_entropy(model(task.x, task.edge_index)[task.splits["test"]], task.targets["test"]).isfinite()
