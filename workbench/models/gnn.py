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

import functools
import math
import warnings
from typing import Optional

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
    Velickovic et al.).

    ``sparse_input``: bag-of-words features are mostly zeros (Cora: 1.3 % dense), so when
    at most a quarter of ``x`` is nonzero the net keeps a CSR copy of it (made once per input
    tensor and cached), drops out only its stored values (Kipf's sparse dropout: the same
    distribution as ``F.dropout``, since a dropped zero stays zero) and feeds it to
    ``conv1``, whose first step is a linear map. On a CPU this turns a 140 ms GCN step on
    Cora into about 25 ms: dense dropout alone drew 3.9M random numbers."""

    def __init__(self, conv1: nn.Module, conv2: nn.Module, act: str = "relu", dropout: float = 0.5,
                 sparse_input: bool = True):
        super().__init__()
        self.conv1, self.conv2 = conv1, conv2
        self.act = {"relu": F.relu, "elu": F.elu}[act]
        self.dropout = dropout
        self.sparse_input = sparse_input
        self._csr: Optional[tuple] = None  # (key of the dense x, its CSR copy or None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x``, or its cached CSR copy when ``sparse_input`` is on and ``x`` is sparse enough."""
        if not self.sparse_input or x.requires_grad or x.layout != torch.strided or x.dim() != 2:
            return x
        key = (x.data_ptr(), x._version, tuple(x.shape), x.device)
        if self._csr is None or self._csr[0] != key:
            sparse = int(torch.count_nonzero(x)) <= x.numel() // 4
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                self._csr = (key, x.to_sparse_csr() if sparse else None)
        return x if self._csr[1] is None else self._csr[1]

    def input_dropout(self, x: torch.Tensor) -> torch.Tensor:
        p = self.dropout
        if x.layout != torch.sparse_csr or not self.training or p == 0:
            return F.dropout(x, p, self.training)
        vals = x.values()
        keep = torch.rand(vals.shape, device=vals.device) >= p
        vals = torch.where(keep, vals / (1 - p), torch.zeros_like(vals)) if p < 1 else torch.zeros_like(vals)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), vals, x.shape, check_invariants=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = self.input_dropout(self.features(x))
        x = self.act(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


@functools.lru_cache(maxsize=None)
def _linear_first_sage():
    g = _pyg()

    class LinearFirstSAGEConv(g.SAGEConv):
        """SAGEConv with a linear (mean or sum) aggregation applied *after* ``lin_l``'s
        weight: aggr_j(x_j) W = aggr_j(x_j W), so the result is identical (the bias is added
        after aggregation, so isolated nodes still get it), the features may be a sparse
        tensor, and the edges carry ``out`` instead of ``in`` channels."""

        def forward(self, x, edge_index, size=None):
            z = F.linear(x, self.lin_l.weight)
            out = self.propagate(edge_index, x=(z, z), size=size)
            if self.lin_l.bias is not None:
                out = out + self.lin_l.bias
            if self.root_weight:
                out = out + self.lin_r(x)
            return F.normalize(out, p=2.0, dim=-1) if self.normalize else out

    return LinearFirstSAGEConv


@MODELS.register("gcn", help="2-layer GCN (Kipf & Welling), hidden 16, dropout 0.5", task="node", requires="torch_geometric")
def gcn(info: DataInfo, *, hidden: int = 16, dropout: float = 0.5, cached: bool = True,
        sparse_input: bool = True) -> nn.Module:
    """GCNConv(F, hidden) -> ReLU -> GCNConv(hidden, C), dropout before each layer (reference
    config: hidden 16, dropout 0.5). ``cached`` keeps the normalised adjacency (see module
    docstring)."""
    g = _pyg()
    return TwoLayerNodeNet(g.GCNConv(info.num_features, hidden, cached=cached),
                           g.GCNConv(hidden, info.num_classes, cached=cached), "relu", dropout, sparse_input)


@MODELS.register("graphsage", help="2-layer GraphSAGE, mean aggregation, hidden 128", task="node", requires="torch_geometric")
def graphsage(info: DataInfo, *, hidden: int = 128, dropout: float = 0.0, aggr: str = "mean",
              sparse_input: bool = True) -> nn.Module:
    """SAGEConv(F, hidden) -> ReLU -> SAGEConv(hidden, C) over the full neighbourhood (the
    reference samples 20 neighbours per hop and has hidden [128, C] and no dropout). Layers
    are :class:`LinearFirstSAGEConv` (same function as PyG's SAGEConv, cheaper)."""
    if aggr not in ("mean", "sum"):
        raise ValueError(f"model.options.aggr: expected 'mean' or 'sum', got {aggr!r}")
    conv = _linear_first_sage()
    return TwoLayerNodeNet(conv(info.num_features, hidden, aggr=aggr),
                           conv(hidden, info.num_classes, aggr=aggr), "relu", dropout, sparse_input)


@MODELS.register("gat", help="2-layer GAT (Velickovic et al.), 8 heads x 8 hidden", task="node", requires="torch_geometric")
def gat(info: DataInfo, *, hidden: int = 8, heads: int = 8, dropout: float = 0.5,
        negative_slope: float = 0.2, sparse_input: bool = True) -> nn.Module:
    """GATConv(F, hidden, heads) -> ELU -> GATConv(hidden * heads, C, 1 head); ``dropout``
    applies to the layer inputs and to the attention coefficients (reference config: 0.5 on
    Cora, 0.7 on CiteSeer and PubMed; LeakyReLU slope 0.2)."""
    g = _pyg()
    c1 = g.GATConv(info.num_features, hidden, heads=heads, dropout=dropout, negative_slope=negative_slope)
    c2 = g.GATConv(hidden * heads, info.num_classes, heads=1, concat=False, dropout=dropout,
                   negative_slope=negative_slope)
    return TwoLayerNodeNet(c1, c2, "elu", dropout, sparse_input)


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


@MODELS.register("gin", help="GIN: 5 layers, hidden 32, BatchNorm in each MLP, sum pooling", task="graph", requires="torch_geometric")
def gin(info: DataInfo, *, hidden: int = 32, layers: int = 5, dropout: float = 0.5) -> nn.Module:
    if layers < 1:
        raise ValueError(f"model.options.layers: expected at least 1, got {layers}")
    return GIN(info.num_features, hidden, info.num_classes, layers, dropout)


class SAGPoolG(nn.Module):
    """SAGPool, global variant (Lee et al. 2019; the reference's ``SAGPoolG``): three GCN
    layers whose outputs are concatenated, one self-attention pooling keeping ``ratio`` of
    each graph's nodes (scores: tanh of a GCN), readout [mean || max], then the MLP
    6h -> h -> ReLU -> dropout -> h/2 -> ReLU -> C.

    ``reference_init`` initialises the GCN weights as the reference's GCN layer does
    (``kaiming_uniform_`` on an (in, out) weight: uniform with bound sqrt(6 / out), bias 0),
    so the one-output scoring GCN starts at bound sqrt(6) and its tanh scores are O(1). With
    PyG's Glorot init (bound sqrt(6 / (in + out))) the scores start near 0.03, pooled
    features near 1e-3, and on NCI1 Adam with weight decay 5e-4 never leaves chance (50 %)."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, ratio: float, dropout: float,
                 reference_init: bool = True):
        super().__init__()
        g = _pyg()
        self.convs = nn.ModuleList(g.GCNConv(in_features if i == 0 else hidden, hidden) for i in range(3))
        self.pool = g.SAGPooling(3 * hidden, ratio=ratio, GNN=g.GCNConv)
        self.lin1 = nn.Linear(6 * hidden, hidden)
        self.lin2 = nn.Linear(hidden, hidden // 2)
        self.lin3 = nn.Linear(hidden // 2, num_classes)
        self.dropout = dropout
        if reference_init:
            for conv in [*self.convs, self.pool.gnn]:
                bound = math.sqrt(6.0 / conv.out_channels)
                nn.init.uniform_(conv.lin.weight, -bound, bound)
                nn.init.zeros_(conv.bias)

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
        return self.lin3(F.relu(self.lin2(x)))


@MODELS.register("sagpool", help="SAGPool-G: 3 GCN layers (hidden 64), self-attention pooling ratio 0.5", task="graph", requires="torch_geometric")
def sagpool(info: DataInfo, *, hidden: int = 64, ratio: float = 0.5, dropout: float = 0.5,
            reference_init: bool = True) -> nn.Module:
    if not 0 < ratio <= 1:
        raise ValueError(f"model.options.ratio: expected a fraction in (0, 1], got {ratio}")
    return SAGPoolG(info.num_features, hidden, info.num_classes, ratio, dropout, reference_init)


def mincut_pool(x: torch.Tensor, adj: torch.Tensor, s: torch.Tensor, mask: Optional[torch.Tensor] = None):
    """PyG's ``dense_mincut_pool`` (same outputs) with three changes: the cut denominator
    trace(S^T D S) is computed from the degree vector instead of a dense diagonal matrix; a
    graph without edges (denominator 0) adds 0 to the mincut loss where PyG's gives NaN; and a
    pooled node of degree 0 is normalised by 1 instead of sqrt(0) (its row is zero either way;
    PyG's gradient there is NaN). Either NaN would poison the batch and, through Adam, every
    weight: MinCutPool on the synthetic smoke graphs (some without edges) died at step 4."""
    b, n, _ = x.shape
    k = s.shape[-1]
    s = torch.softmax(s, dim=-1)
    if mask is not None:
        m = mask.view(b, n, 1).to(x.dtype)
        x, s = x * m, s * m
    st = s.transpose(1, 2)
    out = st @ x
    out_adj = st @ adj @ s
    num = torch.einsum("ijj->i", out_adj)
    den = (adj.sum(-1) * (s * s).sum(-1)).sum(-1)
    mincut = torch.where(den > 0, -num / den.clamp_min(1e-12), torch.zeros_like(num)).mean()
    ss = st @ s
    eye = torch.eye(k, dtype=ss.dtype, device=ss.device)
    ortho = torch.linalg.matrix_norm(ss / torch.linalg.matrix_norm(ss, keepdim=True) - eye / k ** 0.5).mean()
    ind = torch.arange(k, device=x.device)
    out_adj[:, ind, ind] = 0
    deg = out_adj.sum(-1)
    d = torch.sqrt(torch.where(deg > 0, deg, torch.ones_like(deg)))[:, None] + 1e-15  # rows of 0 stay 0
    return out, out_adj / d / d.transpose(1, 2), mincut, ortho


class MinCutPoolNet(nn.Module):
    """MinCutPool (Bianchi et al. 2020) as PyG's ``examples/proteins_mincut_pool.py``:
    GraphConv (sum aggregation) -> dense batch -> [pool to k1 clusters -> DenseGraphConv]
    -> [pool to k2 -> DenseGraphConv] -> mean over clusters -> Linear -> ReLU -> dropout ->
    Linear. k1 = ceil(ratio * average graph size), k2 = ceil(ratio * k1). Returns the logits
    and the sum of both layers' mincut and orthogonality losses (see :func:`mincut_pool`)."""

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

        x, edge_index, batch, num_graphs, max_nodes = _graph_inputs(data)
        x = F.relu(self.conv1(x, edge_index))
        x, mask = to_dense_batch(x, batch, batch_size=num_graphs, max_num_nodes=max_nodes)
        adj = to_dense_adj(edge_index, batch, batch_size=num_graphs, max_num_nodes=x.shape[1])
        x, adj, mc1, o1 = mincut_pool(x, adj, self.pool1(x), mask)
        x = F.relu(self.conv2(x, adj))
        x, adj, mc2, o2 = mincut_pool(x, adj, self.pool2(x))
        x = self.conv3(x, adj).mean(dim=1)
        x = F.dropout(F.relu(self.lin1(x)), self.dropout, self.training)
        return self.lin2(x), mc1 + mc2 + o1 + o2


@MODELS.register("mincutpool", help="MinCutPool: GraphConv + two dense mincut pooling layers", task="graph", requires="torch_geometric")
def mincutpool(info: DataInfo, *, hidden: int = 32, ratio: float = 0.5, dropout: float = 0.2) -> nn.Module:
    """Reference configs: hidden 64 (NCI1), 32 (PROTEINS), 16 (DD); dropout 0.2. The cluster
    counts come from the dataset's average graph size (``info.extra["avg_num_nodes"]``)."""
    if not 0 < ratio <= 1:
        raise ValueError(f"model.options.ratio: expected a fraction in (0, 1], got {ratio}")
    avg = float(info.extra.get("avg_num_nodes", 0)) or 20.0
    k1 = math.ceil(ratio * avg)
    return MinCutPoolNet(info.num_features, hidden, info.num_classes, k1, math.ceil(ratio * k1), dropout)
