"""Graph presets: the paper's settings (Tables 5-8, Appendix 6.1), offline smoke runs, the
studies they expand to, and real-data checks that skip without ../shared/data."""
import math
from pathlib import Path

import pytest
import torch

from workbench.engine.run import run
from workbench.launch.study import load_study
from workbench.presets import load_spec, preset_names
from workbench.registry import DATASETS, load_builtins
from workbench.spec import DatasetSpec

load_builtins()
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GRAPH_PRESETS = ["table1", "table2", "mutag"] + [p for p in preset_names() if p.startswith("graph-")]

# preset -> (model, lr, epochs, t_SWA, swa_lr, weight decay, batch size or None for full batch)
PAPER = {
    "table1": ("gcn", 0.01, 200, 180, 0.02, 5e-4, None),  # Table 5
    "graph-table1-gat": ("gat", 0.005, 300, 270, 0.01, 5e-4, None),
    "graph-table1-gat-citeseer": ("gat", 0.005, 300, 270, 0.01, 5e-4, None),
    "graph-table1-graphsage": ("graphsage", 0.003, 400, 300, 0.01, 5e-4, None),  # 20 x 20 steps, t = 15 x 20
    "table2": ("sagpool", 0.003, 300, 270, 0.01, 5e-4, 64),  # Tables 6 and 8
    "graph-table2-sagpool-dd": ("sagpool", 0.003, 150, 120, 0.005, 5e-4, 64),  # Table 7
    "graph-table2-mincutpool-nci1": ("mincutpool", 0.001, 1000, 900, 0.01, 5e-4, 64),  # Table 6
    "graph-table2-mincutpool-dd": ("mincutpool", 0.001, 50, 35, 0.01, 5e-4, 8),  # Table 7
    "graph-table2-mincutpool-proteins": ("mincutpool", 1e-4, 500, 450, 0.001, 5e-4, 32),  # Table 8 (+ ref. SWA lr)
    "mutag": ("gin", 0.01, 300, 270, 0.02, 0.0, 64),  # Appendix 6.1
}


def test_every_graph_preset_is_checked_against_the_paper():
    assert sorted(PAPER) == sorted(GRAPH_PRESETS)


@pytest.mark.parametrize("preset", sorted(PAPER))
def test_preset_carries_the_paper_settings(preset):
    model, lr, epochs, start, swa_lr, wd, batch = PAPER[preset]
    s = load_spec(preset)
    assert (s.model.name, s.optimizer.name, s.optimizer.weight_decay) == (model, "adam", wd)
    assert (s.schedule.name, s.schedule.lr, s.schedule.swa_phase, s.schedule.swa_lr) == ("constant", lr, "constant", swa_lr)
    assert (s.averaging.variant, s.averaging.start, s.budget.epochs) == ("swa", start, epochs)
    if batch is not None:
        assert s.budget.batch_size == batch
    assert s.averaging.cycle == (20 if model == "graphsage" else 0)  # GraphSAGE: a sample per 20 steps


def test_model_settings_follow_the_reference_configs():
    assert load_spec("table1").model.options == {"hidden": 16, "dropout": 0.5}
    assert load_spec("graph-table1-gat").model.options["dropout"] == 0.5
    assert load_spec("graph-table1-gat-citeseer").model.options["dropout"] == 0.7
    assert load_spec("table2").model.options == {"hidden": 64, "ratio": 0.5, "dropout": 0.5}
    assert load_spec("graph-table2-mincutpool-nci1").model.options["hidden"] == 64
    assert load_spec("graph-table2-mincutpool-proteins").model.options["hidden"] == 32
    assert load_spec("mutag").model.options == {"hidden": 32, "layers": 5, "dropout": 0.5}


def test_studies_expand_to_the_table_cells():
    t1 = load_study("table1")
    assert t1.grid == {"dataset.name": ["cora", "citeseer", "pubmed"]} and len(t1.cells) == 15
    t2 = load_study("table2")
    assert t2.grid == {"dataset.name": ["nci1", "proteins"]} and len(t2.cells) == 10
    assert len(load_study("mutag").cells) == 5


@pytest.mark.parametrize("preset", GRAPH_PRESETS)
def test_smoke_studies_stay_offline(preset):
    cells = load_study(preset, scale="smoke").cells
    assert {c.spec.dataset.name for c in cells} <= {"karate", "synthetic_graphs"} and len(cells) <= 2


@pytest.mark.parametrize("preset", GRAPH_PRESETS)
def test_smoke_scale_runs_offline(preset, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))  # empty: smoke must not need shared data
    spec = load_spec(preset, scale="smoke", overrides=["tracking.enabled=false", "threads=1"])
    assert spec.dataset.name in ("karate", "synthetic_graphs")
    r = run(spec)
    assert all(math.isfinite(v) for v in r.metrics.values())
    assert r.metrics["final/average_test_acc"] >= 0 and r.average_state_dict is not None


# ----------------------------------------------------------------------------- real data

needs_data = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present")


@needs_data
def test_real_loaders_match_the_published_statistics(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    spec = lambda name: DatasetSpec(name=name, root=str(SHARED))  # noqa: E731
    for name, nodes, edges, feats, classes, split in [("cora", 2708, 10556, 1433, 7, (140, 500, 1000)),
                                                       ("citeseer", 3327, 9104, 3703, 6, (120, 500, 1000))]:
        d = DATASETS.get(name).obj(spec(name))
        assert (d.graph.num_nodes, d.graph.edge_index.shape[1], d.info.num_features, d.info.num_classes) == (
            nodes, edges, feats, classes)
        assert tuple(d.splits[k].numel() for k in ("train", "val", "test")) == split
    for name, graphs, nodes, feats in [("mutag", 188, 3371, 7), ("proteins", 1113, 43471, 4), ("nci1", 4110, 122747, 37)]:
        d = DATASETS.get(name).obj(spec(name))
        assert (len(d.graphs), sum(g.num_nodes for g in d.graphs), d.info.num_features) == (graphs, nodes, feats)
    assert not list(SHARED.rglob("processed*"))


@needs_data
def test_gcn_on_cora_at_paper_settings_reaches_the_papers_region(tmp_path, monkeypatch):
    """Paper Table 1: Adam 81.2 +- 0.47, SWA 81.3 +- 0.21."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    r = run("table1", overrides=[f"dataset.root={SHARED}", "tracking.enabled=false", "threads=1"])
    assert r.metrics["final/backbone_test_acc"] >= 79.0
    assert r.metrics["final/average_test_acc"] >= 79.0
