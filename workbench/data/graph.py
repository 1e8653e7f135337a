"""Graph datasets: Planetoid and TU benchmarks read from their raw files, plus offline ones.

Layout under the data root (``dataset.root``, else ``$WORKBENCH_DATA``, else ``./data``),
the same as ``shared/data``::

    planetoid/Cora/raw/ind.cora.{x,tx,allx,y,ty,ally,graph,test.index}   (also CiteSeer, PubMed)
    tu/MUTAG/raw/MUTAG_{A,graph_indicator,graph_labels,node_labels}.txt (also NCI1, DD, PROTEINS)

``<root>/<Name>/raw`` is accepted too. Nothing is downloaded: a missing file raises
:class:`DataNotFound` naming the file and the folder looked in (exit status 2).

**Copy-free, read-only roots.** PyG writes ``processed/`` beside ``raw/``; here it goes to a
cache instead (``$WORKBENCH_CACHE``, else ``~/.cache/workbench``) under
``<kind>/<Name>-<fingerprint>/``. The fingerprint hashes the raw folder's resolved path and
its files' names, sizes and modification times plus the PyG version, so a different or
edited raw folder never reads a stale cache. The cache is written to a temporary folder and
renamed into place, so concurrent runs do not read half-written files.

**Splits** (fixed: they never depend on the run seed, so every seed of a study sees the same
examples):

* Planetoid: the standard public split (20 labels per class, 500 val, 1000 test). Features
  are row-normalised by default (``normalize_features``), as GCN and GAT do.
* TU: a stratified split by class with ``split = [train, val, test]`` fractions and
  ``split_seed``; per class, ``round(n_c * f)`` graphs go to val and test, the rest to train.
  Defaults follow the reference code: 70/10/20 (its MinCutPool/SAGPool configs) and 90/0/10
  for MUTAG (its GIN script, which has no validation set).
* karate: PyG's 4 labelled nodes (one per community) train; the other 30 nodes are split
  stratified 1/3 val, 2/3 test with ``split_seed``.

``dataset.subset`` keeps that many training examples (a fixed draw); ``dataset.val_fraction``
carves a validation part out of the training part, allowed only where the split has none.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from workbench.data.image import DataNotFound, data_root
from workbench.registry import DATASETS
from workbench.spec import SpecError
from workbench.tasks.base import DataInfo


@dataclass
class NodeData:
    """One graph with per-node labels; ``splits`` maps split name -> sorted node indices."""

    info: DataInfo
    graph: "torch_geometric.data.Data"  # noqa: F821  x (N, F), edge_index (2, E), y (N,)
    splits: dict[str, torch.Tensor]


@dataclass
class GraphData:
    """Many small graphs with one label each; ``splits`` maps split name -> graph indices."""

    info: DataInfo
    graphs: Sequence  # Data objects with x, edge_index, y (1,)
    splits: dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- cache


def cache_root() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE") or "~/.cache/workbench").expanduser()


def _fingerprint(raw_dir: Path) -> str:
    import torch_geometric

    h = hashlib.sha1(f"{raw_dir.resolve()}|pyg {torch_geometric.__version__}".encode())
    for f in sorted(raw_dir.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"|{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def load_cached(cls, raw_dir: Path, kind: str, name: str, **kwargs):
    """Build a PyG InMemoryDataset ``cls`` that reads ``raw_dir`` and keeps ``processed/`` in
    the cache. The raw folder is only read, so it may be read-only."""
    final = cache_root() / kind / f"{name}-{_fingerprint(raw_dir)}"

    def make(processed: Path):
        sub = type(cls.__name__, (cls,), {
            "raw_dir": property(lambda self: str(raw_dir)),
            "processed_dir": property(lambda self: str(processed)),
            "log": property(lambda self: False, lambda self, value: None),  # no "Processing..." lines
        })
        return sub(root=str(final.parent), name=name, **kwargs)

    if (final / "data.pt").exists():
        return make(final)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    try:
        ds = make(tmp)
    except OSError as err:  # only failures to write the cache become a spec error
        if not str(err.filename or "").startswith(str(cache_root())):
            raise
        raise SpecError(
            f"WORKBENCH_CACHE: cannot write the processed {name} cache at {err.filename} "
            f"({err.strerror}); point WORKBENCH_CACHE at a writable folder"
        ) from None
    try:
        os.replace(tmp, final)  # atomic; fails if another process got there first
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return ds


def find_raw(spec_root: Optional[str], group: str, folder: str, files: Sequence[str]) -> Path:
    """The raw folder holding ``files``, or DataNotFound naming what is missing and where."""
    root = data_root(spec_root)
    cands = [root / group / folder / "raw", root / folder / "raw"]
    for cand in cands:
        if all((cand / f).is_file() for f in files):
            return cand
    best = next((c for c in cands if c.is_dir()), cands[0])
    missing = [f for f in files if not (best / f).is_file()]
    raise DataNotFound(
        f"dataset.root: {folder} not found: missing {', '.join(missing)} in {best.resolve()} "
        f"(set dataset.root or WORKBENCH_DATA to a folder with {group}/{folder}/raw/; nothing is downloaded)"
    )


# ----------------------------------------------------------------------------- splits


def stratified_split(y: torch.Tensor, fractions: Sequence[float], seed: int) -> dict[str, torch.Tensor]:
    """Per class: shuffle with ``seed``; ``round(n_c * f_val)`` to val, ``round(n_c * f_test)``
    to test, the rest to train. Returns sorted index tensors; val is absent when f_val = 0."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise SpecError(f"dataset.options.split: expected [train, val, test] fractions summing to 1, got {list(fractions)}")
    g = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    for c in torch.unique(y).tolist():
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        n_val, n_test = round(idx.numel() * fractions[1]), round(idx.numel() * fractions[2])
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    out = {k: torch.cat(v).sort().values for k, v in parts.items()}
    return {k: v for k, v in out.items() if v.numel() or k != "val"}


def finish_splits(splits: dict[str, torch.Tensor], y: torch.Tensor, spec, name: str,
                  split_seed: int) -> dict[str, torch.Tensor]:
    """Apply ``dataset.val_fraction`` (carved from train, stratified) and ``dataset.subset``."""
    splits = dict(splits)
    if spec.val_fraction:
        if "val" in splits:
            raise SpecError(f"dataset.val_fraction: {name} already has a validation split; leave it at 0")
        tr = splits["train"]
        inner = stratified_split(y[tr], [1 - spec.val_fraction, spec.val_fraction, 0.0], split_seed)
        splits["train"], splits["val"] = tr[inner["train"]], tr[inner["val"]]
    if spec.subset and spec.subset < splits["train"].numel():
        tr = splits["train"]
        keep = torch.randperm(tr.numel(), generator=torch.Generator().manual_seed(split_seed))[: spec.subset]
        splits["train"] = tr[keep.sort().values]
    for k, v in splits.items():
        if v.numel() == 0:
            raise SpecError(f"dataset.options.split: the {k} split of {name} is empty")
    return splits


def _normalize_rows(x: torch.Tensor) -> torch.Tensor:
    return x / x.sum(1, keepdim=True).clamp_min(1e-12)


# ----------------------------------------------------------------------------- Planetoid

_PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}


def load_planetoid(spec, key: str, normalize_features: bool) -> NodeData:
    from torch_geometric.datasets import Planetoid

    name = _PLANETOID[key]
    files = [f"ind.{key}.{s}" for s in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")]
    raw = find_raw(spec.root, "planetoid", name, files)
    g = load_cached(Planetoid, raw, "planetoid", name, split="public")[0]
    x = _normalize_rows(g.x) if normalize_features else g.x
    graph = type(g)(x=x, edge_index=g.edge_index, y=g.y)
    splits = {s: getattr(g, f"{s}_mask").nonzero().flatten() for s in ("train", "val", "test")}
    info = DataInfo("node", int(g.y.max()) + 1, num_features=x.shape[1],
                    extra={"num_nodes": g.num_nodes, "dataset": key})
    return NodeData(info, graph, finish_splits(splits, g.y, spec, key, 0))


@DATASETS.register("cora", help="Planetoid Cora (2708 nodes, 7 classes), public split", task="node", requires="torch_geometric")
def cora(spec, *, normalize_features: bool = True) -> NodeData:
    return load_planetoid(spec, "cora", normalize_features)


@DATASETS.register("citeseer", help="Planetoid CiteSeer (3327 nodes, 6 classes), public split", task="node", requires="torch_geometric")
def citeseer(spec, *, normalize_features: bool = True) -> NodeData:
    return load_planetoid(spec, "citeseer", normalize_features)


@DATASETS.register("pubmed", help="Planetoid PubMed (19717 nodes, 3 classes), public split", task="node", requires="torch_geometric")
def pubmed(spec, *, normalize_features: bool = True) -> NodeData:
    return load_planetoid(spec, "pubmed", normalize_features)


# ----------------------------------------------------------------------------- TU

_TU = {"mutag": "MUTAG", "nci1": "NCI1", "dd": "DD", "proteins": "PROTEINS"}


def graph_info(graphs: Sequence, num_classes: int, extra: Optional[dict] = None) -> DataInfo:
    sizes = [g.num_nodes for g in graphs]
    return DataInfo("graph", num_classes, num_features=graphs[0].x.shape[1], extra={
        "num_graphs": len(graphs), "avg_num_nodes": sum(sizes) / len(sizes), "max_num_nodes": max(sizes),
        **(extra or {}),
    })


def load_tu(spec, key: str, split: Sequence[float], split_seed: int, use_node_attr: bool) -> GraphData:
    from torch_geometric.data import Data
    from torch_geometric.datasets import TUDataset

    name = _TU[key]
    raw = find_raw(spec.root, "tu", name, [f"{name}_{s}.txt" for s in ("A", "graph_indicator", "graph_labels")])
    ds = load_cached(TUDataset, raw, "tu", name, use_node_attr=use_node_attr)
    whole, slices = ds._data, ds.slices  # the collated tensors: split them (10x faster than ds[i])
    if whole.x is None or whole.x.shape[1] == 0:  # no node labels or attributes: a constant feature
        graphs = [Data(x=torch.ones(g.num_nodes, 1), edge_index=g.edge_index, y=g.y) for g in ds]
    else:
        xs = whole.x.split(torch.diff(slices["x"]).tolist())
        eis = whole.edge_index.split(torch.diff(slices["edge_index"]).tolist(), dim=1)
        graphs = [Data(x=x, edge_index=ei, y=whole.y[i:i + 1]) for i, (x, ei) in enumerate(zip(xs, eis))]
    y = torch.cat([g.y for g in graphs])
    splits = finish_splits(stratified_split(y, split, split_seed), y, spec, key, split_seed)
    return GraphData(graph_info(graphs, int(y.max()) + 1, {"dataset": key}), graphs, splits)


_REF_SPLIT = [0.7, 0.1, 0.2]  # reference MinCutPool / SAGPool configs: test 0.2, valid 0.1


@DATASETS.register("mutag", help="TU MUTAG (188 graphs, 2 classes), stratified 90/0/10 split", task="graph", requires="torch_geometric")
def mutag(spec, *, split: list[float] = [0.9, 0.0, 0.1], split_seed: int = 0, use_node_attr: bool = False) -> GraphData:
    return load_tu(spec, "mutag", split, split_seed, use_node_attr)


@DATASETS.register("nci1", help="TU NCI1 (4110 graphs, 2 classes), stratified 70/10/20 split", task="graph", requires="torch_geometric")
def nci1(spec, *, split: list[float] = _REF_SPLIT, split_seed: int = 0, use_node_attr: bool = False) -> GraphData:
    return load_tu(spec, "nci1", split, split_seed, use_node_attr)


@DATASETS.register("dd", help="TU D&D (1178 graphs, 2 classes), stratified 70/10/20 split", task="graph", requires="torch_geometric")
def dd(spec, *, split: list[float] = _REF_SPLIT, split_seed: int = 0, use_node_attr: bool = False) -> GraphData:
    return load_tu(spec, "dd", split, split_seed, use_node_attr)


@DATASETS.register("proteins", help="TU PROTEINS (1113 graphs, 2 classes; 3 labels + 1 attribute), 70/10/20 split",
                   task="graph", requires="torch_geometric")
def proteins(spec, *, split: list[float] = _REF_SPLIT, split_seed: int = 0, use_node_attr: bool = True) -> GraphData:
    return load_tu(spec, "proteins", split, split_seed, use_node_attr)


# ----------------------------------------------------------------------------- offline sets


@DATASETS.register("karate", help="Zachary's karate club (34 nodes, 4 classes): the offline node default", task="node", requires="torch_geometric")
def karate(spec, *, split_seed: int = 0) -> NodeData:
    from torch_geometric.datasets import KarateClub

    g = KarateClub()[0]
    train = g.train_mask.nonzero().flatten()
    rest = (~g.train_mask).nonzero().flatten()
    inner = stratified_split(g.y[rest], [0.0, 1 / 3, 2 / 3], split_seed)
    splits = {"train": train, "val": rest[inner["val"]], "test": rest[inner["test"]]}
    graph = type(g)(x=g.x, edge_index=g.edge_index, y=g.y)
    info = DataInfo("node", 4, num_features=g.x.shape[1], extra={"num_nodes": 34, "dataset": "karate"})
    return NodeData(info, graph, finish_splits(splits, g.y, spec, "karate", split_seed))


@DATASETS.register("synthetic_nodes", help="A seeded homophilous citation-like graph (Cora's size by default)",
                   task="node", requires="torch_geometric")
def synthetic_nodes(spec, *, num_nodes: int = 2708, num_features: int = 1433, num_classes: int = 7,
                    avg_degree: float = 3.9, homophily: float = 0.8, words: int = 18,
                    train_per_class: int = 20, num_val: int = 500, num_test: int = 1000,
                    data_seed: int = 0) -> NodeData:
    """Labels uniform; each undirected edge joins a random node to one of its class with
    probability ``homophily``; each node has ``words`` binary features, half drawn from its
    class's block of the vocabulary. Split Planetoid-style: ``train_per_class`` per class,
    then ``num_val`` and ``num_test`` of the rest."""
    from torch_geometric.data import Data
    from torch_geometric.utils import to_undirected

    g = torch.Generator().manual_seed(data_seed)
    y = torch.randint(num_classes, (num_nodes,), generator=g)
    m = int(num_nodes * avg_degree / 2)
    src = torch.randint(num_nodes, (m,), generator=g)
    order = torch.argsort(y)  # nodes grouped by class, for drawing a same-class partner
    counts = torch.bincount(y, minlength=num_classes)
    start = torch.cumsum(counts, 0) - counts
    same = order[start[y[src]] + (torch.rand(m, generator=g) * counts[y[src]]).long()]
    dst = torch.where(torch.rand(m, generator=g) < homophily, same, torch.randint(num_nodes, (m,), generator=g))
    keep = src != dst
    edge_index = to_undirected(torch.stack([src[keep], dst[keep]]), num_nodes=num_nodes)
    block = max(num_features // num_classes, 1)
    own = y[:, None] * block + torch.randint(block, (num_nodes, words // 2), generator=g)
    any_ = torch.randint(num_features, (num_nodes, words - words // 2), generator=g)
    x = torch.zeros(num_nodes, num_features)
    x.scatter_(1, torch.cat([own.clamp_max(num_features - 1), any_], 1), 1.0)
    perm = torch.randperm(num_nodes, generator=g)
    train = torch.cat([perm[y[perm] == c][:train_per_class] for c in range(num_classes)])
    rest = perm[~torch.isin(perm, train)]
    splits = {"train": train.sort().values, "val": rest[:num_val].sort().values,
              "test": rest[num_val:num_val + num_test].sort().values}
    info = DataInfo("node", num_classes, num_features=num_features,
                    extra={"num_nodes": num_nodes, "dataset": "synthetic_nodes"})
    return NodeData(info, Data(x=_normalize_rows(x), edge_index=edge_index, y=y),
                    finish_splits(splits, y, spec, "synthetic_nodes", 0))


@DATASETS.register("synthetic_graphs", help="Seeded random graphs whose class sets their density (offline graph default)",
                   task="graph", requires="torch_geometric")
def synthetic_graphs(spec, *, num_graphs: int = 200, min_nodes: int = 8, max_nodes: int = 24,
                     num_classes: int = 2, data_seed: int = 0, split: list[float] = [0.8, 0.1, 0.1],
                     split_seed: int = 0) -> GraphData:
    """Class c: an Erdos-Renyi graph with edge probability 0.1 + 0.15 c; node features are
    one-hot degrees (capped at 9), as TU node labels are one-hot."""
    from torch_geometric.data import Data
    from torch_geometric.utils import degree, to_undirected

    g = torch.Generator().manual_seed(data_seed)
    graphs = []
    for _ in range(num_graphs):
        c = int(torch.randint(num_classes, (1,), generator=g))
        n = int(torch.randint(min_nodes, max_nodes + 1, (1,), generator=g))
        upper = torch.triu(torch.rand(n, n, generator=g) < 0.1 + 0.15 * c, diagonal=1)
        ei = to_undirected(upper.nonzero().t(), num_nodes=n)
        deg = degree(ei[0], n).long().clamp_max(9)
        graphs.append(Data(x=torch.nn.functional.one_hot(deg, 10).float(), edge_index=ei, y=torch.tensor([c])))
    y = torch.cat([d.y for d in graphs])
    splits = finish_splits(stratified_split(y, split, split_seed), y, spec, "synthetic_graphs", split_seed)
    return GraphData(graph_info(graphs, num_classes, {"dataset": "synthetic_graphs"}), graphs, splits)
