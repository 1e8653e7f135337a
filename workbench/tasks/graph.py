"""Graph classification: mini-batches of small graphs, collated on the device by indexing.

Every split's graphs are concatenated once into device tensors (features, edges in one
global numbering, labels), with each graph's node and edge counts kept on the host. An
epoch draws a permutation of the training graphs from the task's generator and builds *all*
of its batches with a handful of vectorised index operations: the node and edge index of the
permuted order are computed on the host from the counts (no device sync), the features and
edges are gathered once on the device, and each batch is then a contiguous slice with its
edge and graph indices shifted to start at zero. So every epoch reshuffles graphs across
batches exactly as ``DataLoader(shuffle=True)`` does (last partial batch kept), at close to
the cost of pre-collated batches.

Why not the alternatives (``bench/graph.py``: GIN, batch 32, PROTEINS, 1 CPU thread on the
shared 2-core machine; medians per epoch): ``torch_geometric.loader.DataLoader`` re-collates
in Python (``Batch.from_data_list``) every epoch: 77 ms of collation per epoch against 9.5 ms
here, and its epochs were 15-20 % slower; collating fixed batches once and shuffling only
their order costs 0.1 ms and its epochs were within +-3 % of these (noise), but it freezes
which graphs share a batch for the whole run, a different SGD from the reference's
``DataLoader(shuffle=True)``. So: exact per-epoch reshuffling at pre-collated speed.

A batch is a :class:`GraphBatch` with ``num_graphs`` and ``max_num_nodes`` known on the host,
so pooling (``size=num_graphs``) and dense batching need no sync. Models take ``model(batch)``
and return logits or ``(logits, auxiliary loss)``; the auxiliary loss is added to the
cross-entropy (and to the reported loss), as the reference MinCutPool does.

Randomness: shuffling draws from the task's generator (seeded from the run seed); BN
recalibration batches from a second generator, so how often the average is evaluated never
changes the backbone's batches. Evaluation batches are built once, in dataset order.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F

from workbench.data.graph import GraphData
from workbench.registry import TASKS


class GraphBatch(NamedTuple):
    x: torch.Tensor  # (N, F) node features
    edge_index: torch.Tensor  # (2, E), node ids local to the batch
    batch: torch.Tensor  # (N,) graph of each node, 0..num_graphs-1
    y: torch.Tensor  # (num_graphs,)
    num_graphs: int
    max_num_nodes: int


def _exclusive_cumsum(t: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(t, 0) - t


class GraphStore:
    """The graphs of one split as concatenated device tensors plus host-side counts."""

    def __init__(self, graphs: Sequence, index: torch.Tensor, device: torch.device):
        sel = [graphs[i] for i in index.tolist()]
        self.n_nodes = torch.tensor([g.num_nodes for g in sel], dtype=torch.long)
        self.n_edges = torch.tensor([g.edge_index.shape[1] for g in sel], dtype=torch.long)
        self.node_ptr = _exclusive_cumsum(self.n_nodes)
        self.edge_ptr = _exclusive_cumsum(self.n_edges)
        shift = torch.repeat_interleave(self.node_ptr, self.n_edges)
        self.x = torch.cat([g.x for g in sel]).float().to(device)
        self.edge_index = (torch.cat([g.edge_index for g in sel], 1) + shift).to(device)
        self.y = torch.cat([g.y.view(-1) for g in sel]).to(device)
        self.device = device

    def __len__(self) -> int:
        return self.n_nodes.numel()

    def batches(self, order: Optional[torch.Tensor], batch_size: int) -> Iterator[GraphBatch]:
        """Batches of ``batch_size`` graphs in ``order`` (a host permutation; None: stored order)."""
        n_graphs = len(self)
        nn_, ne = (self.n_nodes, self.n_edges) if order is None else (self.n_nodes[order], self.n_edges[order])
        new_nptr, new_eptr = _exclusive_cumsum(nn_), _exclusive_cumsum(ne)
        n_tot, e_tot = int(nn_.sum()), int(ne.sum())
        gpos = torch.repeat_interleave(torch.arange(n_graphs), nn_, output_size=n_tot)
        if order is None:
            x, ei, y = self.x, self.edge_index, self.y
        else:
            old_nptr, old_eptr = self.node_ptr[order], self.edge_ptr[order]
            node_idx = old_nptr[gpos] + torch.arange(n_tot) - new_nptr[gpos]
            epos = torch.repeat_interleave(torch.arange(n_graphs), ne, output_size=e_tot)
            edge_idx = old_eptr[epos] + torch.arange(e_tot) - new_eptr[epos]
            shift = (old_nptr - new_nptr)[epos]
            dev = self.device
            x = self.x[node_idx.to(dev, non_blocking=True)]
            ei = self.edge_index[:, edge_idx.to(dev, non_blocking=True)] - shift.to(dev, non_blocking=True)
            y = self.y[order.to(dev, non_blocking=True)]
        gpos = gpos.to(self.device, non_blocking=True)
        nptr, eptr = new_nptr.tolist() + [n_tot], new_eptr.tolist() + [e_tot]
        for s in range(0, n_graphs, batch_size):
            e = min(s + batch_size, n_graphs)
            n0, n1, e0, e1 = nptr[s], nptr[e], eptr[s], eptr[e]
            yield GraphBatch(x[n0:n1], ei[:, e0:e1] - n0, gpos[n0:n1] - s, y[s:e], e - s, int(nn_[s:e].max()))


@TASKS.register("graph", help="Graph classification on mini-batches of graphs", requires="torch_geometric")
class GraphTask:
    def __init__(self, data: GraphData, *, device: torch.device, batch_size: int, eval_batch_size: int, seed: int):
        self.info = data.info
        self.device = device
        self.batch_size = batch_size
        self.train = GraphStore(data.graphs, data.splits["train"], device)
        self.eval_splits = tuple(s for s in ("val", "test") if s in data.splits)
        self._eval = {s: list(GraphStore(data.graphs, data.splits[s], device).batches(None, eval_batch_size))
                      for s in self.eval_splits}
        self.iters_per_epoch = math.ceil(len(self.train) / batch_size)
        self.gen = torch.Generator().manual_seed(seed)
        self.bn_gen = torch.Generator().manual_seed(seed + 7919)

    # -- batches -----------------------------------------------------------------
    def train_batches(self, epoch: int):
        return self.train.batches(torch.randperm(len(self.train), generator=self.gen), self.batch_size)

    def bn_batches(self):
        return self.train.batches(torch.randperm(len(self.train), generator=self.bn_gen), self.batch_size)

    def eval_batches(self, split: str):
        return iter(self._eval[split])

    # -- model contract ----------------------------------------------------------
    def forward(self, model, batch: GraphBatch):
        return model(batch)

    def loss(self, model, batch: GraphBatch):
        out = model(batch)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits, batch.y)
        if aux is not None:
            loss = loss + aux
        correct = (logits.argmax(1) == batch.y).sum()
        return loss, correct, batch.num_graphs

    # -- state (for resume) ------------------------------------------------------
    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "bn_gen": self.bn_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.bn_gen.set_state(state["bn_gen"])
