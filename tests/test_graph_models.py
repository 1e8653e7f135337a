"""GNN models and the node / graph tasks: forward and backward per model, one averaging
window per model through the real engine, BN recalibration of GIN's average through the
graph forward, exact collation, memoised node evaluation, sparse inputs."""
import math

import pytest
import torch
import torch.nn.functional as F

from workbench.engine.loop import evaluate
from workbench.engine.run import build_task, run
from workbench.presets import load_spec
from workbench.registry import DATASETS, MODELS, load_builtins
from workbench.spec import DatasetSpec, SpecError
from workbench.tasks.graph import GraphTask
from workbench.tasks.node import NodeTask

load_builtins()
GNN = sorted(e.name for e in MODELS if e.obj.__module__ == "workbench.models.gnn")
CPU = torch.device("cpu")


def data_for(task: str, **opts):
    name = "karate" if task == "node" else "synthetic_graphs"
    if task == "graph":
        opts = {"num_graphs": 40, **opts}
    return DATASETS.get(name).obj(DatasetSpec(name=name), **opts)


def spec_for(name: str, **over) -> dict:
    task = MODELS.get(name).meta["task"]
    spec = {
        "model": {"name": name},
        "dataset": {"name": "karate"} if task == "node" else {"name": "synthetic_graphs", "options": {"num_graphs": 40}},
        "optimizer": {"name": "adam", "weight_decay": 5e-4},
        "schedule": {"name": "constant", "lr": 0.01, "swa_phase": "constant", "swa_lr": 0.02},
        "averaging": {"variant": "swa", "start": 2, "keep_samples": True},
        "budget": {"epochs": 5, "batch_size": 16},
        "tracking": {"enabled": False}, "threads": 1, "seed": 0,
    }
    for key, value in over.items():
        section, field = key.split("__")
        spec[section] = {**spec[section], field: value}
    return spec


def test_the_paper_models_are_registered_for_their_task():
    tasks = {n: MODELS.get(n).meta["task"] for n in GNN}
    assert {k: tasks[k] for k in ("gcn", "graphsage", "gat")} == dict.fromkeys(("gcn", "graphsage", "gat"), "node")
    assert {k: tasks[k] for k in ("gin", "sagpool", "mincutpool")} == dict.fromkeys(("gin", "sagpool", "mincutpool"), "graph")


@pytest.mark.parametrize("name", GNN)
def test_forward_and_backward(name):
    task_name = MODELS.get(name).meta["task"]
    data = data_for(task_name)
    torch.manual_seed(0)
    model = MODELS.get(name).obj(data.info)
    if task_name == "node":
        task = NodeTask(data, device=CPU, seed=0)
        (batch,) = task.train_batches(0)
        assert task.forward(model, batch).shape == (34, data.info.num_classes)
    else:
        task = GraphTask(data, device=CPU, batch_size=8, eval_batch_size=100, seed=0)
        batch = next(iter(task.train_batches(0)))
        out = task.forward(model, batch)
        logits = out[0] if isinstance(out, tuple) else out
        assert logits.shape == (8, data.info.num_classes)
    loss, correct, n = task.loss(model, batch)
    assert loss.dim() == 0 and isinstance(n, int) and 0 <= int(correct) <= n
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", GNN)
def test_one_averaging_window_through_the_engine(name):
    r = run(spec_for(name))
    h = r.history
    assert [e["lr"] for e in h] == [0.01, 0.01, 0.02, 0.02, 0.02]  # constant SWA lr from t_SWA
    assert [e.get("average/n_samples") for e in h] == [None, None, 1.0, 2.0, 3.0]
    assert "final/average_test_acc" in r.metrics and "final/backbone_test_acc" in r.metrics
    samples = [sd for _, _, sd in r.samples]
    assert len(samples) == 3
    for key, value in samples[-1].items():  # the last sample is the final backbone
        assert torch.equal(value, r.backbone_state_dict[key].float()), key
        mean = torch.stack([s[key] for s in samples]).mean(0)
        assert torch.allclose(r.average_state_dict[key], mean, atol=1e-6), key


def _bn_inputs(model, batch):
    seen = []
    hooks = [bn.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach()))
             for bn in model.modules() if isinstance(bn, torch.nn.BatchNorm1d)]
    model.train()
    with torch.no_grad():
        model(batch)
    for hk in hooks:
        hk.remove()
    return seen


def test_gin_average_gets_bn_statistics_recomputed_through_the_graph_forward():
    spec = spec_for("gin", budget__batch_size=64)  # 32 training graphs: one batch
    r = run(spec)
    task, model = build_task(load_spec(spec), CPU)
    model.load_state_dict(r.average_state_dict)
    (batch,) = list(task.train_batches(0))
    inputs = _bn_inputs(model, batch)
    assert len(inputs) == 5  # one BN per GIN layer
    for i, x in enumerate(inputs):
        prefix = f"convs.{i}.nn.1."
        mean, var = r.average_state_dict[prefix + "running_mean"], r.average_state_dict[prefix + "running_var"]
        assert torch.allclose(mean, x.mean(0), atol=1e-5) and torch.allclose(var, x.var(0), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(mean, r.backbone_state_dict[prefix + "running_mean"], atol=1e-3)


def test_gin_pooled_bn_estimator_over_several_batches_matches_the_exact_statistics():
    spec = spec_for("gin", budget__batch_size=8, averaging__bn_estimator="pooled")
    r = run(spec)
    task, model = build_task(load_spec(spec), CPU)
    model.load_state_dict(r.average_state_dict)
    whole = next(iter(GraphTask(data_for("graph"), device=CPU, batch_size=1000, eval_batch_size=1000,
                                seed=0).train_batches(0)))
    x = _bn_inputs(model, whole)[0]  # the first BN's input does not depend on the batching
    assert torch.allclose(r.average_state_dict["convs.0.nn.1.running_mean"], x.mean(0), atol=1e-5)
    assert torch.allclose(r.average_state_dict["convs.0.nn.1.running_var"], x.var(0), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- tasks


def test_graph_batches_equal_pyg_collation_of_the_task_permutation():
    from torch_geometric.data import Batch

    data = data_for("graph")
    task = GraphTask(data, device=CPU, batch_size=12, eval_batch_size=100, seed=3)
    train = data.splits["train"]
    assert task.iters_per_epoch == math.ceil(train.numel() / 12) == 3
    perm = torch.randperm(train.numel(), generator=torch.Generator().manual_seed(3))
    batches = list(task.train_batches(0))
    assert [b.num_graphs for b in batches] == [12, 12, 8]  # last partial batch kept
    for k, b in enumerate(batches):
        ref = Batch.from_data_list([data.graphs[i] for i in train[perm[12 * k:12 * (k + 1)]]])
        for field in ("x", "edge_index", "batch", "y"):
            assert torch.equal(getattr(b, field), getattr(ref, field)), field
        assert b.max_num_nodes == int(ref.ptr.diff().max())
    (ev,) = list(task.eval_batches("test"))
    ref = Batch.from_data_list([data.graphs[i] for i in data.splits["test"]])
    assert torch.equal(ev.edge_index, ref.edge_index) and torch.equal(ev.y, ref.y)


def test_graph_shuffling_ignores_bn_batches_and_resumes_from_its_state():
    data = data_for("graph")
    a = GraphTask(data, device=CPU, batch_size=8, eval_batch_size=100, seed=1)
    b = GraphTask(data, device=CPU, batch_size=8, eval_batch_size=100, seed=1)
    a.train_batches(0)
    b.train_batches(0)
    list(b.bn_batches())
    state = b.state_dict()
    ya, yb = [x.y for x in a.train_batches(1)], [x.y for x in b.train_batches(1)]
    assert all(torch.equal(p, q) for p, q in zip(ya, yb))
    b.load_state_dict(state)
    assert all(torch.equal(p, q.y) for p, q in zip(yb, b.train_batches(1)))
    c = GraphTask(data, device=CPU, batch_size=8, eval_batch_size=100, seed=2)
    assert not all(torch.equal(p, q.y) for p, q in zip(ya, c.train_batches(0)))


def test_mincutpool_auxiliary_loss_is_added_to_the_cross_entropy():
    data = data_for("graph")
    task = GraphTask(data, device=CPU, batch_size=8, eval_batch_size=100, seed=0)
    model = MODELS.get("mincutpool").obj(data.info).eval()
    batch = next(iter(task.eval_batches("test")))
    logits, aux = model(batch)
    loss, _, _ = task.loss(model, batch)
    assert aux.item() != 0 and torch.allclose(loss, F.cross_entropy(logits, batch.y) + aux)


def test_node_evaluation_reuses_one_forward_until_the_weights_change():
    data = data_for("node")
    task = NodeTask(data, device=CPU, seed=0)
    model = MODELS.get("gcn").obj(data.info)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    val, test = evaluate(task, model, "val"), evaluate(task, model, "test")
    assert len(calls) == 1 and task.eval_splits == ("val", "test")
    with torch.no_grad():
        logits = model.eval()(data.graph.x, data.graph.edge_index)
        model.conv2.bias.add_(1.0)  # an in-place update, as an optimizer step or a weight copy
    idx, y = data.splits["test"], data.graph.y[data.splits["test"]]
    assert test[1] == pytest.approx(100.0 * float((logits[idx].argmax(1) == y).float().mean()))
    assert test[0] == pytest.approx(float(F.cross_entropy(logits[idx], y)))
    evaluate(task, model, "test")
    assert len(calls) == 3  # recomputed after the change (plus the direct call above)
    task.train_batches(0)
    evaluate(task, model, "test")
    assert len(calls) == 4 and val[1] >= 0


def test_class_major_cross_entropy_equals_cross_entropy():
    from workbench.tasks.node import class_major_cross_entropy

    g = torch.Generator().manual_seed(0)
    for rows, classes, scale in [(1000, 7, 1.0), (37, 3, 80.0), (5, 40, 1e-3)]:
        logits = torch.randn(rows, classes, generator=g) * scale
        target = torch.randint(0, classes, (rows,), generator=g)
        assert torch.allclose(class_major_cross_entropy(logits, target), F.cross_entropy(logits, target), rtol=1e-6)


@pytest.mark.parametrize("name", ["gcn", "graphsage", "gat"])
def test_sparse_input_path_computes_the_same_function(name):
    data = DATASETS.get("synthetic_nodes").obj(DatasetSpec(name="synthetic_nodes"), num_nodes=300,
                                               num_features=80, num_val=50, num_test=100)
    torch.manual_seed(0)
    sparse = MODELS.get(name).obj(data.info).eval()
    dense = MODELS.get(name).obj(data.info, sparse_input=False).eval()
    dense.load_state_dict(sparse.state_dict())
    x, ei = data.graph.x, data.graph.edge_index
    assert sparse.features(x).layout == torch.sparse_csr
    with torch.no_grad():
        assert torch.allclose(sparse(x, ei), dense(x, ei), atol=1e-5)


def test_sparse_input_dropout_has_dropout_semantics():
    data = DATASETS.get("synthetic_nodes").obj(DatasetSpec(name="synthetic_nodes"), num_nodes=400, num_features=200,
                                               num_val=50, num_test=100)
    model = MODELS.get("gcn").obj(data.info, dropout=0.5).train()
    x = data.graph.x
    torch.manual_seed(0)
    out = model.input_dropout(model.features(x)).to_dense()
    kept = out != 0
    assert not (kept & (x == 0)).any()  # zeros stay zero
    assert torch.allclose(out[kept], 2 * x[kept])  # survivors scaled by 1 / (1 - p)
    assert abs(kept.sum() / (x != 0).sum() - 0.5) < 0.03
    model.eval()
    assert torch.equal(model.input_dropout(model.features(x)).to_dense(), x)


def test_linear_first_sage_equals_pyg_sageconv_with_isolated_nodes():
    from torch_geometric.nn import SAGEConv

    from workbench.models.gnn import _linear_first_sage

    torch.manual_seed(0)
    ours, ref = _linear_first_sage()(12, 5), SAGEConv(12, 5)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(6, 12)
    ei = torch.tensor([[0, 1, 1, 2, 3], [1, 0, 2, 1, 1]])  # nodes 4 and 5 have no neighbours
    assert torch.allclose(ours(x, ei), ref(x, ei), atol=1e-6)


def test_bad_model_options_are_spec_errors():
    with pytest.raises(SpecError, match=r"model.options.ratio: expected a fraction"):
        run(spec_for("sagpool", model__options={"ratio": 0.0}))
    with pytest.raises(SpecError, match=r"model.options.aggr: expected 'mean' or 'sum'"):
        run(spec_for("graphsage", model__options={"aggr": "max"}))
    spec = spec_for("gin")
    spec["dataset"] = {"name": "karate"}
    with pytest.raises(SpecError, match=r"model.name: gin is a graph model, but dataset karate is a node task"):
        run(spec)


def test_sagpool_reference_init_gives_attention_scores_of_order_one():
    """PyG's Glorot init leaves tanh scores near 0.05, which stalled SAGPool on NCI1 at chance."""
    data = data_for("graph")
    batch = next(iter(GraphTask(data, device=CPU, batch_size=16, eval_batch_size=100, seed=0).eval_batches("test")))

    @torch.no_grad()
    def mean_score(reference_init: bool) -> float:
        torch.manual_seed(0)
        m = MODELS.get("sagpool").obj(data.info, reference_init=reference_init)
        x, outs = batch.x, []
        for conv in m.convs:
            x = F.relu(conv(x, batch.edge_index))
            outs.append(x)
        return float(m.pool.gnn(torch.cat(outs, 1), batch.edge_index).tanh().abs().mean())

    assert mean_score(True) > 0.2 > 0.1 > mean_score(False)
