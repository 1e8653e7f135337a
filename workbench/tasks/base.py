"""The task contract: what the training loop needs from a model + data pair.

A task owns its data and knows how to turn a batch into a loss and a count of
correct predictions. The loop never looks inside a batch, so image tensors,
dict batches and graph batches all work, and BN recalibration goes through the
task's own ``forward`` (the reference ``update_bn`` only knows ``model(x)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol


@dataclass(frozen=True)
class DataInfo:
    """What a model factory may know of the data it will see."""

    task: str  # "image", "node", "graph", "text", ...
    num_classes: int
    input_shape: tuple[int, ...] = ()  # (C, H, W) for images
    num_features: int = 0  # node / graph feature width
    extra: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    """A model bound to its data. Everything here runs on ``device``."""

    info: DataInfo
    iters_per_epoch: int
    eval_splits: tuple[str, ...]  # e.g. ("test",) or ("val", "test")

    def train_batches(self, epoch: int) -> Iterable[Any]:
        """One epoch of training batches (shuffled, augmented) on the device."""

    def bn_batches(self) -> Iterable[Any]:
        """Training batches for BN recalibration (the reference uses the augmented
        training loader)."""

    def eval_batches(self, split: str) -> Iterable[Any]:
        """Batches of an evaluation split, in a fixed order."""

    def forward(self, model: Any, batch: Any) -> Any:
        """The model's output for a batch (used by BN recalibration)."""

    def loss(self, model: Any, batch: Any) -> tuple[Any, Any, Any]:
        """(mean loss, number correct, number of examples) as device tensors:
        no host synchronisation here."""
