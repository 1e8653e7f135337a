"""GLUE MRPC as sentence pairs in memory: the ``mrpc`` dataset.

Reads GLUE's ``MRPC/`` layout (what ``download_glue_data.py`` writes): ``train.tsv``
and ``dev.tsv``, tab-separated, header ``Quality  #1 ID  #2 ID  #1 String  #2 String``.
As in the paper's code, the "test" split is GLUE's dev set (GLUE's own
``test.tsv`` has no labels and is not read).

Pitfalls of the real files, handled here:

* they start with a UTF-8 BOM (read with ``utf-8-sig``, else the first column is
  ``\\ufeffQuality``);
* sentences contain unbalanced ``"`` characters, so quoting must be off
  (``csv.QUOTE_NONE``); the default csv dialect silently merges rows;
* one training sentence holds the control byte 0x12 (kept as is).

Tokenisation is not done here: the text task encodes the pairs with the
model's tokenizer (see ``task.py``), so one dataset serves any text model.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import torch

from workbench.data.image import DataNotFound, data_root
from workbench.registry import DATASETS
from workbench.tasks.base import DataInfo

COLUMNS = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
LABELS = ("not_equivalent", "equivalent")


class DataFormatError(ValueError):
    """A data file that is not in the expected layout; the message names file and line."""


@dataclass
class TextSplit:
    """Sentences (pairs when ``b`` is set) and their int64 labels."""

    a: list[str]
    b: Optional[list[str]]
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.a)

    def take(self, idx: torch.Tensor) -> "TextSplit":
        ids = idx.tolist()
        return TextSplit([self.a[i] for i in ids], None if self.b is None else [self.b[i] for i in ids], self.y[idx])


@dataclass
class TextData:
    """What the ``text`` task consumes. ``info.extra["max_length"]`` caps tokens per example."""

    info: DataInfo
    train: TextSplit
    test: TextSplit
    val: Optional[TextSplit] = None


def read_mrpc_tsv(path: Path) -> TextSplit:
    """One GLUE MRPC file (``train.tsv`` or ``dev.tsv``) as a pair split.

    Raises DataFormatError naming the file and line for a wrong header, a row
    without 5 fields, or a label other than 0/1.
    """
    a, b, y = [], [], []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows, None)
        if header != COLUMNS:
            raise DataFormatError(
                f"dataset.root: {path} is not a GLUE MRPC file: header {header!r}, expected {COLUMNS!r} "
                "(GLUE's test.tsv has no labels and cannot be used)"
            )
        for line, row in enumerate(rows, start=2):
            if not row:  # a trailing blank line
                continue
            if len(row) != 5:
                raise DataFormatError(f"dataset.root: {path}:{line}: expected 5 tab-separated fields, got {len(row)}")
            if row[0] not in ("0", "1"):
                raise DataFormatError(f"dataset.root: {path}:{line}: label (Quality) must be 0 or 1, got {row[0]!r}")
            y.append(int(row[0]))
            a.append(row[3])
            b.append(row[4])
    return TextSplit(a, b, torch.tensor(y, dtype=torch.int64))


def find_mrpc(root: Path) -> Optional[Path]:
    """The folder holding ``train.tsv`` and ``dev.tsv``: ``<root>/mrpc``, ``<root>/MRPC``,
    ``<root>/glue_data/MRPC`` or ``<root>`` itself."""
    for cand in (root / "mrpc", root / "MRPC", root / "glue_data" / "MRPC", root):
        if (cand / "train.tsv").is_file() and (cand / "dev.tsv").is_file():
            return cand
    return None


def finish_text(data: TextData, spec, split_seed: int = 0) -> TextData:
    """The spec's generic options: ``val_fraction`` (held out of train) and ``subset``.

    Both use a fixed seed (``split_seed``), not the run's, so every run of a study
    sees the same examples. ``augment`` has no meaning for text and is ignored.
    """
    g = torch.Generator().manual_seed(split_seed)
    n = len(data.train)
    perm = torch.randperm(n, generator=g)
    if spec.val_fraction:
        n_val = max(1, round(n * spec.val_fraction))
        data = replace(data, val=data.train.take(perm[:n_val].sort().values),
                       train=data.train.take(perm[n_val:].sort().values))
        perm = torch.randperm(len(data.train), generator=g)
    if spec.subset and spec.subset < len(data.train):
        data = replace(data, train=data.train.take(perm[: spec.subset].sort().values))
    return data


@DATASETS.register("mrpc", help="GLUE MRPC sentence pairs (train.tsv / dev.tsv under <root>/mrpc); test = GLUE dev",
                   task="text")
def mrpc(spec, *, max_length: int = 128, split_seed: int = 0) -> TextData:
    """GLUE MRPC: 3668 training and 408 test (GLUE dev) pairs, 2 classes.

    ``max_length``: tokens per pair after tokenisation (the paper's code uses 128);
    longer pairs are truncated by the task.
    """
    if not isinstance(max_length, int) or max_length < 8:
        raise DataFormatError(f"dataset.options.max_length: expected an integer >= 8, got {max_length!r}")
    root = data_root(spec.root)
    folder = find_mrpc(root)
    if folder is None:
        raise DataNotFound(
            f"dataset.root: GLUE MRPC not found under {root.resolve()} (expected mrpc/train.tsv and mrpc/dev.tsv "
            "there); set dataset.root or WORKBENCH_DATA"
            + (" (dataset.download is not supported for mrpc)" if spec.download else "")
        )
    train, test = read_mrpc_tsv(folder / "train.tsv"), read_mrpc_tsv(folder / "dev.tsv")
    info = DataInfo("text", 2, extra={"max_length": max_length, "pairs": True, "labels": LABELS,
                                      "folder": str(folder)})
    return finish_text(TextData(info, train, test), spec, split_seed)
