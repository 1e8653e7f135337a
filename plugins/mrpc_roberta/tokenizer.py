"""Tokenizers for the text task, found through a key the model carries.

A text model names its tokenizer in the string attribute ``workbench_tokenizer``:

* ``"hash:<vocab_size>"``: :class:`HashTokenizer`, **test-only** (no files, no
  network; see its pitfalls);
* anything else: a Hugging Face tokenizer folder or cached hub name, loaded with
  ``AutoTokenizer.from_pretrained(key, local_files_only=True)``.

A string, not the tokenizer object, so that copying the model (the trainer
deep-copies it to evaluate the average) copies nothing heavy and both copies
share one cached tokenizer and one encoding of the data.
"""
from __future__ import annotations

import re
import zlib
from typing import Any, Optional

import torch

ATTR = "workbench_tokenizer"
_CACHE: dict[str, Any] = {}
_WORD = re.compile(r"\w+|[^\w\s]")


class HashTokenizer:
    """Offline stand-in for RoBERTa's tokenizer, for tests and smoke runs only.

    Lower-cased words and punctuation marks, each mapped to ``4 + crc32(word) %
    (vocab_size - 4)``. Special ids follow RoBERTa: ``<s>`` 0, ``<pad>`` 1,
    ``</s>`` 2 (3, ``<unk>``, is never produced). A pair is encoded as RoBERTa
    does: ``<s> a </s></s> b </s>``, and truncated longest-first.

    Pitfalls: distinct words collide (no vocabulary), there are no sub-words, and
    the ids mean nothing to a pretrained RoBERTa: use it only with a randomly
    initialised model (``model.options.tiny = true``).
    """

    bos_token_id, pad_token_id, eos_token_id = 0, 1, 2

    def __init__(self, vocab_size: int = 512):
        if vocab_size < 8:
            raise ValueError(f"model.options.config.vocab_size: the hash tokenizer needs at least 8 ids, got {vocab_size}")
        self.vocab_size = vocab_size

    def words(self, text: str) -> list[int]:
        n = self.vocab_size - 4
        return [4 + zlib.crc32(w.encode("utf-8")) % n for w in _WORD.findall(text.lower())]

    def encode(self, a: str, b: Optional[str] = None, max_length: int = 128) -> list[int]:
        wa = self.words(a)
        wb = self.words(b) if b is not None else None
        special = 2 if wb is None else 4
        budget = max(max_length - special, 0)
        if wb is None:
            wa = wa[:budget]
        else:
            while len(wa) + len(wb) > budget:  # longest first, like the HF default
                (wa if len(wa) >= len(wb) else wb).pop()
        if wb is None:
            return [0, *wa, 2]
        return [0, *wa, 2, 2, *wb, 2]


def get_tokenizer(key: str) -> Any:
    """The tokenizer for a model's ``workbench_tokenizer`` key (cached per process)."""
    if key in _CACHE:
        return _CACHE[key]
    if key.startswith("hash:"):
        tok = HashTokenizer(int(key.split(":", 1)[1]))
    else:
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ValueError("model.name: the text task needs the optional package transformers for tokenizer "
                             f"{key!r}; pip install 'swa-workbench[text]'") from None
        try:
            tok = AutoTokenizer.from_pretrained(key, local_files_only=True)
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"model.options.name_or_path: no local tokenizer for {key!r} ({first})") from None
    _CACHE[key] = tok
    return tok


def tokenizer_key(model: Any) -> str:
    """The key a model carries; looks through a ``torch.compile`` wrapper."""
    inner = getattr(model, "_orig_mod", model)
    key = getattr(inner, ATTR, None)
    if key:
        return key
    name = getattr(getattr(inner, "config", None), "_name_or_path", "")
    if name:
        return name
    raise ValueError(f"model: the text task needs a model that names its tokenizer in the attribute {ATTR!r}")


def encode(tok: Any, a: list[str], b: Optional[list[str]], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (N, max_length), padded with the tokenizer's pad id, and lengths (N,)."""
    if isinstance(tok, HashTokenizer):
        seqs = [tok.encode(x, None if b is None else b[i], max_length) for i, x in enumerate(a)]
    else:
        out = tok(a, b, truncation=True, max_length=max_length) if b is not None else \
            tok(a, truncation=True, max_length=max_length)
        seqs = out["input_ids"]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(seqs), max_length), pad, dtype=torch.int64)
    lengths = torch.zeros(len(seqs), dtype=torch.int64)
    for i, s in enumerate(seqs):
        s = s[:max_length]
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.int64)
        lengths[i] = len(s)
    return ids, lengths
