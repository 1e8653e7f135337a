"""Graph dataset loaders: Planetoid and TU raw formats written here on tiny graphs, the
processed cache (read-only roots stay untouched), splits, and the missing-data errors."""
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.cli import main as cli_main
from workbench.engine.run import build_task, run
from workbench.presets import load_spec
from workbench.registry import DATASETS, load_builtins
from workbench.spec import DatasetSpec, SpecError

load_builtins()


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WORKBENCH_DATA", raising=False)
    yield
    torch.set_num_threads(old)


# ----------------------------------------------------------------------------- raw writers


def write_planetoid(root: Path, name: str = "cora", n_train: int = 14, n_other: int = 520, n_test: int = 30,
                    features: int = 6, classes: int = 3, seed: int = 0) -> dict:
    """Planetoid's raw files (pickled CSR x/tx/allx, one-hot y/ty/ally, adjacency dict,
    shuffled test.index). Returns what was written, by node id."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n_all = n_train + n_other  # allx: labelled + unlabelled nodes; the first n_train are x
    n = n_all + n_test
    feats = (rng.random((n, features)) < 0.3).astype(np.float32)
    feats[np.arange(n), rng.integers(features, size=n)] = 1.0  # no empty rows
    labels = rng.integers(classes, size=n)
    onehot = np.eye(classes, dtype=np.int64)[labels]
    test_index = rng.permutation(np.arange(n_all, n))  # tx row k is node test_index[k]
    graph = {i: [] for i in range(n)}
    for a, b in zip(rng.integers(n, size=3 * n), rng.integers(n, size=3 * n)):
        if a != b and b not in graph[a]:
            graph[a].append(int(b))
            graph[b].append(int(a))
    raw = root / "planetoid" / {"cora": "Cora", "citeseer": "CiteSeer"}[name] / "raw"
    raw.mkdir(parents=True)
    items = {"x": sp.csr_matrix(feats[:n_train]), "tx": sp.csr_matrix(feats[test_index]),
             "allx": sp.csr_matrix(feats[:n_all]), "y": onehot[:n_train], "ty": onehot[test_index],
             "ally": onehot[:n_all], "graph": graph}
    for key, obj in items.items():
        with open(raw / f"ind.{name}.{key}", "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    (raw / f"ind.{name}.test.index").write_text("".join(f"{i}\n" for i in test_index))
    edges = sum(len(v) for v in graph.values())
    return dict(raw=raw, feats=feats, labels=labels, n=n, n_train=n_train, test=np.sort(test_index), edges=edges)


def write_tu(root: Path, name: str = "MUTAG", n_graphs: int = 12, seed: int = 0, labels=None) -> dict:
    """TU's raw text files: 1-based edges, graph indicator, graph labels (-1 / 1), node labels."""
    rng = np.random.default_rng(seed)
    labels = labels if labels is not None else [(-1 if i % 2 else 1) for i in range(n_graphs)]
    edges, indicator, node_labels, sizes = [], [], [], []
    offset = 0
    for g in range(n_graphs):
        n = int(rng.integers(3, 7))
        sizes.append(n)
        for i in range(n):  # a ring, both directions
            a, b = offset + i + 1, offset + (i + 1) % n + 1
            edges += [(a, b), (b, a)]
        indicator += [g + 1] * n
        node_labels += rng.integers(0, 3, size=n).tolist()
        offset += n
    raw = root / "tu" / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / f"{name}_graph_indicator.txt").write_text("".join(f"{g}\n" for g in indicator))
    (raw / f"{name}_graph_labels.txt").write_text("".join(f"{y}\n" for y in labels))
    (raw / f"{name}_node_labels.txt").write_text("".join(f"{v}\n" for v in node_labels))
    return dict(raw=raw, sizes=sizes, labels=labels, node_labels=node_labels)


def load(name: str, root: Path, **kw):
    options = kw.pop("options", {})
    return DATASETS.get(name).obj(DatasetSpec(name=name, root=str(root), **kw), **options)


def files_under(path: Path) -> set:
    return {p.relative_to(path) for p in path.rglob("*")}


# ----------------------------------------------------------------------------- Planetoid


def test_planetoid_raw_files_load_with_public_split_and_test_order(tmp_path):
    w = write_planetoid(tmp_path / "data")
    d = load("cora", tmp_path / "data", options={"normalize_features": False})
    assert d.info.task == "node" and d.info.num_classes == 3 and d.info.num_features == 6
    assert torch.equal(d.graph.x, torch.from_numpy(w["feats"]))  # tx rows land on their test.index nodes
    assert torch.equal(d.graph.y, torch.from_numpy(w["labels"]))
    assert d.graph.edge_index.shape[1] == w["edges"]
    assert torch.equal(d.splits["train"], torch.arange(w["n_train"]))
    assert torch.equal(d.splits["val"], torch.arange(w["n_train"], w["n_train"] + 500))
    assert torch.equal(d.splits["test"], torch.from_numpy(w["test"]))
    normed = load("cora", tmp_path / "data")  # default: row-normalised, as GCN / GAT
    assert torch.allclose(normed.graph.x.sum(1), torch.ones(w["n"]))


def test_read_only_root_is_never_written_and_the_cache_is_reused(tmp_path):
    w = write_planetoid(tmp_path / "data")
    write_tu(tmp_path / "data")
    before = files_under(tmp_path / "data")
    modes = {p: p.stat().st_mode for p in (tmp_path / "data").rglob("*")}
    for p in modes:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        a = load("cora", tmp_path / "data")
        b = load("mutag", tmp_path / "data")
        assert files_under(tmp_path / "data") == before  # no processed/ beside raw/
    finally:
        for p, m in modes.items():
            p.chmod(m)
    cached = sorted((tmp_path / "cache").rglob("data.pt"))
    assert [p.parent.parent.name for p in cached] == ["planetoid", "tu"]
    assert not list((tmp_path / "cache").rglob("*.tmp-*"))  # the temporary folder was renamed
    stamp = [p.stat().st_mtime_ns for p in cached]
    again = load("cora", tmp_path / "data")
    assert [p.stat().st_mtime_ns for p in cached] == stamp  # read back, not processed again
    assert torch.equal(again.graph.x, a.graph.x) and len(b.graphs) == 12
    assert w["raw"].is_dir()


def test_edited_raw_files_are_not_served_from_a_stale_cache(tmp_path):
    write_tu(tmp_path / "data")
    first = load("mutag", tmp_path / "data")
    raw = tmp_path / "data" / "tu" / "MUTAG" / "raw"
    flipped = [1 if i % 2 else -1 for i in range(12)]
    (raw / "MUTAG_graph_labels.txt").write_text("".join(f"{y}\n" for y in flipped))
    os.utime(raw / "MUTAG_graph_labels.txt", ns=(1, 1))  # a different fingerprint even on coarse clocks
    second = load("mutag", tmp_path / "data")
    y1 = torch.cat([g.y for g in first.graphs])
    y2 = torch.cat([g.y for g in second.graphs])
    assert torch.equal(y2, 1 - y1)


def test_unwritable_cache_is_a_one_line_spec_error(tmp_path, monkeypatch):
    write_tu(tmp_path / "data")
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "afile" / "cache"))
    with pytest.raises(SpecError, match=r"^WORKBENCH_CACHE: cannot write the processed MUTAG cache") as err:
        load("mutag", tmp_path / "data")
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- TU


def test_tu_raw_files_load_with_remapped_labels_and_one_hot_node_labels(tmp_path):
    w = write_tu(tmp_path / "data")
    d = load("mutag", tmp_path / "data")
    assert d.info.task == "graph" and d.info.num_classes == 2 and d.info.num_features == 3
    assert [g.num_nodes for g in d.graphs] == w["sizes"]
    assert [int(g.y) for g in d.graphs] == [(y + 1) // 2 for y in w["labels"]]  # -1/1 -> 0/1
    x = torch.cat([g.x for g in d.graphs])
    assert torch.equal(x.argmax(1), torch.tensor(w["node_labels"])) and torch.all(x.sum(1) == 1)
    assert [g.edge_index.shape[1] for g in d.graphs] == [2 * n for n in w["sizes"]]
    assert d.info.extra["max_num_nodes"] == max(w["sizes"])
    assert d.info.extra["avg_num_nodes"] == pytest.approx(sum(w["sizes"]) / 12)


def test_tu_split_is_stratified_fixed_and_independent_of_the_run_seed(tmp_path):
    write_tu(tmp_path / "data", n_graphs=40, labels=[1] * 30 + [-1] * 10)
    d = load("mutag", tmp_path / "data", options={"split": [0.6, 0.2, 0.2]})
    y = torch.cat([g.y for g in d.graphs])
    parts = [d.splits[k] for k in ("train", "val", "test")]
    assert sorted(torch.cat(parts).tolist()) == list(range(40))  # a partition
    for part, n in zip(parts, (24, 8, 8)):
        assert part.numel() == n and int((y[part] == 0).sum()) == n // 4  # class ratio 1:3 kept
    again = load("mutag", tmp_path / "data", options={"split": [0.6, 0.2, 0.2]})
    other = load("mutag", tmp_path / "data", options={"split": [0.6, 0.2, 0.2], "split_seed": 1})
    assert torch.equal(again.splits["test"], d.splits["test"])
    assert not torch.equal(other.splits["test"], d.splits["test"])
    default = load("mutag", tmp_path / "data")  # the reference GIN's 90/10, no validation set
    assert set(default.splits) == {"train", "test"} and default.splits["test"].numel() == 4
    tasks = []
    for seed in (0, 1):
        spec = load_spec("mutag", scale="smoke", overrides=[
            "dataset.name=mutag", f"dataset.root={tmp_path / 'data'}", f"seed={seed}", "threads=1"])
        tasks.append(build_task(spec, torch.device("cpu"))[0])
    assert torch.equal(tasks[0].train.y, tasks[1].train.y)  # same training graphs for every seed


def test_val_fraction_and_subset_act_on_the_training_part(tmp_path):
    write_tu(tmp_path / "data", n_graphs=40)
    base = load("mutag", tmp_path / "data")
    d = load("mutag", tmp_path / "data", val_fraction=0.25, subset=10)
    assert torch.equal(d.splits["test"], base.splits["test"])
    assert d.splits["val"].numel() == 8 and d.splits["train"].numel() == 10  # round(18 * 0.25) = 4 per class
    assert set(d.splits["val"].tolist()) | set(d.splits["train"].tolist()) <= set(base.splits["train"].tolist())
    assert not set(d.splits["val"].tolist()) & set(d.splits["train"].tolist())
    with pytest.raises(SpecError, match="dataset.val_fraction: nci1 already has a validation split"):
        write_tu(tmp_path / "data", name="NCI1")
        load("nci1", tmp_path / "data", val_fraction=0.1)


def test_bad_split_fractions_name_the_option(tmp_path):
    write_tu(tmp_path / "data")
    with pytest.raises(SpecError, match=r"dataset.options.split: expected \[train, val, test\]"):
        load("mutag", tmp_path / "data", options={"split": [0.5, 0.2]})


# ----------------------------------------------------------------------------- offline sets


def test_karate_split_is_fixed_and_disjoint():
    d = DATASETS.get("karate").obj(DatasetSpec(name="karate"))
    assert d.splits["train"].tolist() == [0, 4, 8, 24]  # PyG's one labelled node per community
    assert (d.splits["val"].numel(), d.splits["test"].numel()) == (10, 20)
    allnodes = torch.cat(list(d.splits.values()))
    assert sorted(allnodes.tolist()) == list(range(34))


def test_synthetic_sets_are_seeded():
    a = DATASETS.get("synthetic_graphs").obj(DatasetSpec(name="synthetic_graphs"), num_graphs=30)
    b = DATASETS.get("synthetic_graphs").obj(DatasetSpec(name="synthetic_graphs"), num_graphs=30)
    assert all(torch.equal(g.edge_index, h.edge_index) for g, h in zip(a.graphs, b.graphs))
    n = DATASETS.get("synthetic_nodes").obj(DatasetSpec(name="synthetic_nodes"), num_nodes=300, num_features=50,
                                            num_val=50, num_test=100)
    assert n.graph.x.shape == (300, 50) and n.splits["train"].numel() == 140
    same = (n.graph.y[n.graph.edge_index[0]] == n.graph.y[n.graph.edge_index[1]]).float().mean()
    assert same > 0.7  # homophilous, as citation graphs


# ----------------------------------------------------------------------------- missing data


def test_missing_dataset_is_one_line_naming_files_and_folder(tmp_path):
    with pytest.raises(SpecError) as err:
        run({"dataset": {"name": "cora", "root": str(tmp_path)}, "model": {"name": "gcn"},
             "tracking": {"enabled": False}, "threads": 1})
    msg = str(err.value)
    assert msg.startswith("dataset.root: Cora not found: missing ind.cora.x, ind.cora.tx")
    assert str(tmp_path / "planetoid" / "Cora" / "raw") in msg and "\n" not in msg
    w = write_tu(tmp_path)
    (w["raw"] / "MUTAG_graph_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing MUTAG_graph_labels\.txt in .*tu/MUTAG/raw") as err:
        load("mutag", tmp_path)
    assert "MUTAG_A.txt" not in str(err.value)  # only what is missing


def test_cli_exits_2_with_the_missing_files_on_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    assert cli_main(["run", "mutag", "--no-track", "--quiet", "--set", "threads=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "MUTAG not found: missing MUTAG_A.txt" in err and str(tmp_path) in err
