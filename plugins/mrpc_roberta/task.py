"""The ``text`` task: sequence(-pair) classification with cross-entropy and accuracy.

Data flow. The task is built before it sees a model, but tokenisation depends on
the model's tokenizer; so the first ``loss``/``forward`` call with a model
encodes every split once with that model's tokenizer (found through its
``workbench_tokenizer`` key, see ``tokenizer.py``) and keeps the token ids on the
device: (N, max_length) int64, padded. Batches are then indices:

* ``idx`` on the host, used to find the batch's longest example (dynamic
  padding: a batch is cut to its own longest length, not to max_length) without
  a device-to-host sync;
* ``idx_dev`` and the labels ``y`` on the device; the ids and the attention mask
  are gathered there.

The model contract: ``model(input_ids=..., attention_mask=...)`` returns logits
or an object with ``.logits`` (any Hugging Face ``...ForSequenceClassification``).

Randomness: shuffling draws from the task's own generator, seeded from the run
seed; the (unused for LayerNorm models) BN-recalibration batches from a second
one, so evaluating the average never shifts the backbone's trajectory.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, NamedTuple

import torch
import torch.nn.functional as F

from workbench.registry import TASKS

from .data import TextData, TextSplit
from .tokenizer import encode, get_tokenizer, tokenizer_key


class TextBatch(NamedTuple):
    split: str
    idx: torch.Tensor  # host int64: rows of the split (for the padding width)
    idx_dev: torch.Tensor  # the same rows on the device
    y: torch.Tensor  # labels on the device


class Encoded(NamedTuple):
    ids: torch.Tensor  # (N, max_length) int64 on the device, padded
    mask: torch.Tensor  # (N, max_length) int64 on the device, 1 for real tokens
    lengths: torch.Tensor  # (N,) int64 on the host


@TASKS.register("text", help="Sentence(-pair) classification with a transformer: cross-entropy and accuracy")
class TextTask:
    def __init__(self, data: TextData, *, device: torch.device, batch_size: int, eval_batch_size: int, seed: int):
        self.info = data.info
        self.device = device
        self.data = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_length = int(data.info.extra.get("max_length", 128))
        self.splits: dict[str, TextSplit] = {"train": data.train, "test": data.test}
        if data.val is not None:
            self.splits["val"] = data.val
        self.eval_splits = tuple(s for s in ("val", "test") if s in self.splits)
        self.labels = {name: s.y.to(device) for name, s in self.splits.items()}
        self.n = len(data.train)
        if self.n == 0:
            raise ValueError("dataset: the training split is empty")
        self.iters_per_epoch = math.ceil(self.n / batch_size)
        self.gen = torch.Generator().manual_seed(seed)
        self.bn_gen = torch.Generator().manual_seed(seed + 7919)
        self._encoded: dict[str, dict[str, Encoded]] = {}  # tokenizer key -> split -> Encoded

    # -- batches -------------------------------------------------------------------
    def _batch(self, split: str, idx: torch.Tensor) -> TextBatch:
        idx_dev = idx.to(self.device, non_blocking=True)
        return TextBatch(split, idx, idx_dev, self.labels[split][idx_dev])

    def _train_iter(self, gen: torch.Generator) -> Iterator[TextBatch]:
        perm = torch.randperm(self.n, generator=gen)
        for i in range(0, self.n, self.batch_size):
            yield self._batch("train", perm[i : i + self.batch_size])

    def train_batches(self, epoch: int):
        return self._train_iter(self.gen)

    def bn_batches(self):
        return self._train_iter(self.bn_gen)

    def eval_batches(self, split: str):
        n = len(self.splits[split])
        for i in range(0, n, self.eval_batch_size):
            yield self._batch(split, torch.arange(i, min(i + self.eval_batch_size, n)))

    # -- tokens ----------------------------------------------------------------------
    def encoded(self, model: Any) -> dict[str, Encoded]:
        """Every split encoded with ``model``'s tokenizer (once per tokenizer)."""
        key = tokenizer_key(model)
        if key not in self._encoded:
            tok = get_tokenizer(key)
            out = {}
            for name, s in self.splits.items():
                ids, lengths = encode(tok, s.a, s.b, self.max_length)
                mask = (torch.arange(self.max_length)[None, :] < lengths[:, None]).long()
                out[name] = Encoded(ids.to(self.device), mask.to(self.device), lengths)
            self._encoded[key] = out
        return self._encoded[key]

    def inputs(self, model: Any, batch: TextBatch) -> dict[str, torch.Tensor]:
        enc = self.encoded(model)[batch.split]
        width = int(enc.lengths[batch.idx].max())  # host tensors: no device sync
        return {"input_ids": enc.ids[batch.idx_dev, :width], "attention_mask": enc.mask[batch.idx_dev, :width]}

    # -- model contract ----------------------------------------------------------------
    def forward(self, model, batch: TextBatch) -> torch.Tensor:
        out = model(**self.inputs(model, batch))
        return out.logits if hasattr(out, "logits") else out

    def loss(self, model, batch: TextBatch):
        logits = self.forward(model, batch)
        loss = F.cross_entropy(logits.float(), batch.y)
        correct = (logits.argmax(-1) == batch.y).sum()
        return loss, correct, batch.y.shape[0]

    # -- state (for resume) ------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "bn_gen": self.bn_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.bn_gen.set_state(state["bn_gen"])
