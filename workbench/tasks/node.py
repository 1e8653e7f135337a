"""Node classification, full batch: one optimizer step per epoch on the whole graph.

The graph (features, edges, labels) and the split index tensors live on the device. Every
"batch" is the whole graph plus the nodes whose loss and accuracy count; so
``iters_per_epoch`` is 1, an epoch is one optimizer step, and SWA's one sample per epoch is
one sample per step (the reference's setting for GCN and GAT). ``budget.batch_size`` is
ignored. A model is called as ``model(x, edge_index)`` and returns logits for every node.

Evaluation reuses one forward for every split: ``val`` and ``test`` are rows of the same
logits, so the task memoises the eval-mode, no-grad output of a model and returns it for the
next split. The memo is dropped whenever the first evaluation split, training or BN batches
are asked for, and it is keyed on the model object (held, so its identity stays unique) and
the in-place version counters of its parameters and buffers, which every optimizer step,
weight copy or BN update bumps. Pitfalls: writes through ``tensor.data`` do not bump the
counter, and replacing a parameter object is not looked for; code that changes weights that
way between two splits' evaluations would see the old logits. The engine never does (it
evaluates every split of a model back to back). Training forwards are never memoised.

Randomness: full batch has nothing to shuffle; dropout draws from the global torch RNG as in
every task. The task still owns its generators (``state_dict``) for the uniform contract.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from workbench.data.graph import NodeData
from workbench.registry import TASKS


class NodeBatch(NamedTuple):
    x: torch.Tensor  # (N, F)
    edge_index: torch.Tensor  # (2, E)
    y: torch.Tensor  # (N,) labels of every node
    index: torch.Tensor  # nodes that count (device, int64)
    target: torch.Tensor  # y[index], gathered once
    n: int  # index.numel(), known on the host


def class_major_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy, the log-softmax taken over a class-major copy of ``logits``.

    Same value as ``F.cross_entropy``; on a CPU, a log-softmax along a narrow, contiguous
    class dimension (7 classes on Cora) runs row by row, while along the outer dimension it
    vectorises over nodes: 1.5x faster for a 1000 x 7 split, which is a few per cent of a
    full-batch GCN epoch (the evaluation losses of val and test)."""
    return F.nll_loss(torch.log_softmax(logits.t().contiguous(), 0).t(), target)


@TASKS.register("node", help="Node classification, full batch (one step per epoch)", requires="torch_geometric")
class NodeTask:
    def __init__(self, data: NodeData, *, device: torch.device, batch_size: int = 0, eval_batch_size: int = 0,
                 seed: int = 0):
        self.info = data.info
        self.device = device
        g = data.graph
        self.x = g.x.to(device)
        self.edge_index = g.edge_index.to(device)
        self.y = g.y.to(device)
        self.splits = {k: v.to(device) for k, v in data.splits.items()}
        self.targets = {k: self.y[v] for k, v in self.splits.items()}
        self.sizes = {k: int(v.numel()) for k, v in data.splits.items()}
        self.eval_splits = tuple(s for s in ("val", "test") if s in self.splits)
        self.iters_per_epoch = 1
        self.gen = torch.Generator().manual_seed(seed)
        self.bn_gen = torch.Generator().manual_seed(seed + 7919)
        self._memo: Optional[tuple] = None  # (model, its tensors, their versions, eval logits)

    def batch(self, split: str) -> NodeBatch:
        return NodeBatch(self.x, self.edge_index, self.y, self.splits[split], self.targets[split], self.sizes[split])

    # -- batches -----------------------------------------------------------------
    def train_batches(self, epoch: int):
        self._memo = None
        return [self.batch("train")]

    def bn_batches(self):
        self._memo = None
        return [self.batch("train")]

    def eval_batches(self, split: str):
        if split == self.eval_splits[0]:
            self._memo = None
        return [self.batch(split)]

    # -- model contract ----------------------------------------------------------
    def forward(self, model, batch: NodeBatch) -> torch.Tensor:
        return model(batch.x, batch.edge_index)

    def _logits(self, model, batch: NodeBatch) -> torch.Tensor:
        if model.training or torch.is_grad_enabled():
            return self.forward(model, batch)
        memo = self._memo
        if memo is None or memo[0] is not model or memo[2] != tuple(t._version for t in memo[1]):
            tensors = [*model.parameters(), *model.buffers()]
            memo = self._memo = (model, tensors, tuple(t._version for t in tensors), self.forward(model, batch))
        return memo[3]

    def loss(self, model, batch: NodeBatch):
        logits = self._logits(model, batch)[batch.index]
        if logits.device.type == "cpu" and not torch.is_grad_enabled():
            loss = class_major_cross_entropy(logits, batch.target)
        else:
            loss = F.cross_entropy(logits, batch.target)
        correct = (logits.argmax(1) == batch.target).sum()
        return loss, correct, batch.n

    # -- state (for resume) ------------------------------------------------------
    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "bn_gen": self.bn_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.bn_gen.set_state(state["bn_gen"])
