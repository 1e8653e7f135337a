"""Graph neural networks (torch_geometric) for the paper's graph experiments.

Two calling conventions, matching the two graph tasks:

* node models (``task="node"``: gcn, graphsage, gat) take ``model(x, edge_index)`` and return
  logits for every node;
* graph models (``task="graph"``: gin, sagpool, mincutpool) take ``model(batch)``, where
  ``batch`` has ``x``, ``edge_index``, ``batch`` (node -> graph), ``num_graphs`` and
  optionally ``max_num_nodes`` (a PyG ``Batch`` works too), and return graph logits, or
  ``(logits, auxiliary loss)`` (mincutpool's cut and orthogonality losses, which the task adds
  to the cross-entropy, as the reference does).

Models return logits; the softmax lives in the loss. Architectures follow the reference code
(ZJLAB-AMMI/PSWA ``Graph/``) where it is readable and the original papers otherwise; each
factory's docstring says which.

Pitfalls:

* ``gcn`` caches its normalised adjacency by default (``cached=True``: transductive runs on
  one fixed graph). The cache fills on the first forward and is never checked again, so a
  cached model called on a *different* graph silently uses the first one's. Set
  ``cached=false`` to reuse a model across graphs.
* Only ``gin`` has BatchNorm (inside each GIN MLP, as the reference), so its average needs BN
  recalibration: the engine does it through the task's ``forward`` on training batches.
* ``sagpool`` keeps the top ``ratio`` nodes of every graph (data-dependent sizes: it
  synchronises with the host once per forward on a GPU). ``mincutpool`` pads each batch to
  ``max_num_nodes`` dense nodes; with it given (the graph task gives it) it does not sync.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workbench.registry import MODELS
from workbench.tasks.base import DataInfo


def _pyg():
    import torch_geometric.nn as pyg_nn

    return pyg_nn


# ----------------------------------------------------------------------------- node models


class TwoLayerNodeNet(nn.Module):
    """dropout -> conv1 -> activation -> dropout -> conv2: the shape shared by the paper's
    GCN, GraphSAGE and GAT (dropout on the input features too, as Kipf & Welling and
    Velickovic et al.)."""

    def __init__(self, conv1: nn.Module, conv2: nn.Module, act: str = "relu", dropout: float = 0.5):
        super().__init__()
        self.conv1, self.conv2 = conv1, conv2
        self.act = {"relu": F.relu, "elu": F.elu}[act]
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = self.act(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


@MODELS.register("gcn", help="2-layer GCN (Kipf & Welling), hidden 16, dropout 0.5", task="node")
def gcn(info: DataInfo, *, hidden: int = 16, dropout: float = 0.5, cached: bool = True) -> nn.Module:
    """GCNConv(F, hidden) -> ReLU -> GCNConv(hidden, C), dropout before each layer (reference
    config: hidden 16, dropout 0.5). ``cached`` keeps the normalised adjacency (see module
    docstring)."""
    g = _pyg()
    return TwoLayerNodeNet(g.GCNConv(info.num_features, hidden, cached=cached),
                           g.GCNConv(hidden, info.num_classes, cached=cached), "relu", dropout)


@MODELS.register("graphsage", help="2-layer GraphSAGE, mean aggregation, hidden 128", task="node")
def graphsage(info: DataInfo, *, hidden: int = 128, dropout: float = 0.0, aggr: str = "mean") -> nn.Module:
    """SAGEConv(F, hidden) -> ReLU -> SAGEConv(hidden, C) over the full neighbourhood (the
    reference samples 20 neighbours per hop and has hidden [128, C] and no dropout)."""
    g = _pyg()
    return TwoLayerNodeNet(g.SAGEConv(info.num_features, hidden, aggr=aggr),
                           g.SAGEConv(hidden, info.num_classes, aggr=aggr), "relu", dropout)


@MODELS.register("gat", help="2-layer GAT (Velickovic et al.), 8 heads x 8 hidden", task="node")
def gat(info: DataInfo, *, hidden: int = 8, heads: int = 8, dropout: float = 0.5,
        negative_slope: float = 0.2) -> nn.Module:
    """GATConv(F, hidden, heads) -> ELU -> GATConv(hidden * heads, C, 1 head); ``dropout``
    applies to the layer inputs and to the attention coefficients (reference config: 0.5 on
    Cora, 0.7 on CiteSeer and PubMed; LeakyReLU slope 0.2)."""
    g = _pyg()
    c1 = g.GATConv(info.num_features, hidden, heads=heads, dropout=dropout, negative_slope=negative_slope)
    c2 = g.GATConv(hidden * heads, info.num_classes, heads=1, concat=False, dropout=dropout,
                   negative_slope=negative_slope)
    return TwoLayerNodeNet(c1, c2, "elu", dropout)


# ----------------------------------------------------------------------------- graph models


def _graph_inputs(data):
    max_nodes = getattr(data, "max_num_nodes", None)
    return data.x, data.edge_index, data.batch, int(data.num_graphs), max_nodes


class GIN(nn.Module):
    """The reference GIN (``GIN/gin_swa.py``): ``layers`` GINConv, each with the MLP
    Linear -> BatchNorm1d -> ReLU -> Linear -> ReLU; sum pooling; Linear -> ReLU -> dropout ->
    Linear."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, layers: int, dropout: float):
        super().__init__()
        g = _pyg()
        self.convs = nn.ModuleList(
            g.GINConv(nn.Sequential(nn.Linear(in_features if i == 0 else hidden, hidden), nn.BatchNorm1d(hidden),
                                    nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()))
            for i in range(layers)
        )
        self.lin1, self.lin2 = nn.Linear(hidden, hidden), nn.Linear(hidden, num_classes)
        self.dropout = dropout

    def forward(self, data) -> torch.Tensor:
        x, edge_index, batch, num_graphs, _ = _graph_inputs(data)
        for conv in self.convs:
            x = conv(x, edge_index)
        x = _pyg().global_add_pool(x, batch, size=num_graphs)
        x = F.dropout(F.relu(self.lin1(x)), self.dropout, self.training)
        return self.lin2(x)


@MODELS.register("gin", help="GIN: 5 layers, hidden 32, BatchNorm in each MLP, sum pooling", task="graph")
def gin(info: DataInfo, *, hidden: int = 32, layers: int = 5, dropout: float = 0.5) -> nn.Module:
    if layers < 1:
        raise ValueError(f"model.options.layers: expected at least 1, got {layers}")
    return GIN(info.num_features, hidden, info.num_classes, layers, dropout)


class SAGPoolG(nn.Module):
    """SAGPool, global variant (Lee et al. 2019; the reference's ``SAGPoolG``): three GCN
    layers whose outputs are concatenated, one self-attention pooling keeping ``ratio`` of
    each graph's nodes (scores from a GCN), readout [mean || max], then an MLP
    (6h -> h -> h/2 -> C, ReLU and dropout between)."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, ratio: float, dropout: float):
        super().__init__()
        g = _pyg()
        self.convs = nn.ModuleList(g.GCNConv(in_features if i == 0 else hidden, hidden) for i in range(3))
        self.pool = g.SAGPooling(3 * hidden, ratio=ratio, GNN=g.GCNConv)
        self.lin1 = nn.Linear(6 * hidden, hidden)
        self.lin2 = nn.Linear(hidden, hidden // 2)
        self.lin3 = nn.Linear(hidden // 2, num_classes)
        self.dropout = dropout

    def forward(self, data) -> torch.Tensor:
        g = _pyg()
        x, edge_index, batch, num_graphs, _ = _graph_inputs(data)
        outs = []
        for conv in self.convs:
            x = F.relu(conv(x, edge_index))
            outs.append(x)
        x, edge_index, _, batch, _, _ = self.pool(torch.cat(outs, 1), edge_index, batch=batch)
        x = torch.cat([g.global_mean_pool(x, batch, size=num_graphs), g.global_max_pool(x, batch, size=num_graphs)], 1)
        x = F.dropout(F.relu(self.lin1(x)), self.dropout, self.training)
        x = F.dropout(F.relu(self.lin2(x)), self.dropout, self.training)
        return self.lin3(x)


@MODELS.register("sagpool", help="SAGPool-G: 3 GCN layers (hidden 64), self-attention pooling ratio 0.5", task="graph")
def sagpool(info: DataInfo, *, hidden: int = 64, ratio: float = 0.5, dropout: float = 0.5) -> nn.Module:
    if not 0 < ratio <= 1:
        raise ValueError(f"model.options.ratio: expected a fraction in (0, 1], got {ratio}")
    return SAGPoolG(info.num_features, hidden, info.num_classes, ratio, dropout)


class MinCutPoolNet(nn.Module):
    """MinCutPool (Bianchi et al. 2020) as PyG's ``examples/proteins_mincut_pool.py``:
    GraphConv (sum aggregation) -> dense batch -> [pool to k1 clusters -> DenseGraphConv]
    -> [pool to k2 -> DenseGraphConv] -> mean over clusters -> Linear -> ReLU -> dropout ->
    Linear. k1 = ceil(ratio * average graph size), k2 = ceil(ratio * k1). Returns the logits
    and the sum of both layers' mincut and orthogonality losses."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, k1: int, k2: int, dropout: float):
        super().__init__()
        g = _pyg()
        self.conv1 = g.GraphConv(in_features, hidden, aggr="add")
        self.pool1, self.conv2 = nn.Linear(hidden, k1), g.DenseGraphConv(hidden, hidden)
        self.pool2, self.conv3 = nn.Linear(hidden, k2), g.DenseGraphConv(hidden, hidden)
        self.lin1, self.lin2 = nn.Linear(hidden, hidden), nn.Linear(hidden, num_classes)
        self.dropout = dropout

    def forward(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        from torch_geometric.utils import to_dense_adj, to_dense_batch

        g = _pyg()
        x, edge_index, batch, num_graphs, max_nodes = _graph_inputs(data)
        x = F.relu(self.conv1(x, edge_index))
        x, mask = to_dense_batch(x, batch, batch_size=num_graphs, max_num_nodes=max_nodes)
        adj = to_dense_adj(edge_index, batch, batch_size=num_graphs, max_num_nodes=x.shape[1])
        x, adj, mc1, o1 = g.dense_mincut_pool(x, adj, self.pool1(x), mask)
        x = F.relu(self.conv2(x, adj))
        x, adj, mc2, o2 = g.dense_mincut_pool(x, adj, self.pool2(x))
        x = self.conv3(x, adj).mean(dim=1)
        x = F.dropout(F.relu(self.lin1(x)), self.dropout, self.training)
        return self.lin2(x), mc1 + mc2 + o1 + o2


@MODELS.register("mincutpool", help="MinCutPool: GraphConv + two dense mincut pooling layers", task="graph")
def mincutpool(info: DataInfo, *, hidden: int = 32, ratio: float = 0.5, dropout: float = 0.2) -> nn.Module:
    """Reference configs: hidden 64 (NCI1), 32 (PROTEINS), 16 (DD); dropout 0.2. The cluster
    counts come from the dataset's average graph size (``info.extra["avg_num_nodes"]``)."""
    if not 0 < ratio <= 1:
        raise ValueError(f"model.options.ratio: expected a fraction in (0, 1], got {ratio}")
    avg = float(info.extra.get("avg_num_nodes", 0)) or 20.0
    k1 = math.ceil(ratio * avg)
    return MinCutPoolNet(info.num_features, hidden, info.num_classes, k1, math.ceil(ratio * k1), dropout)
