"""The ``roberta`` model: ``RobertaForSequenceClassification`` from ``transformers``.

``transformers`` is imported when the model is built, not when the plugin
loads, so the workbench starts (and ``workbench plugins`` lists this plugin)
without the optional ``text`` extra installed.

Weights are never downloaded: ``name_or_path`` is a local folder (``config.json``,
weights and tokenizer files, e.g. written by ``save_pretrained``) or a hub name
already in the Hugging Face cache (``local_files_only=True``). A missing one is
a one-line error naming ``model.options.name_or_path``.

Pitfalls:

* RoBERTa has LayerNorm only, no BatchNorm, so averages need no statistics
  recomputed (the BN pass is skipped).
* The model trains in train mode, i.e. with dropout 0.1. The paper's script calls
  ``model.train`` without parentheses and so fine-tunes without dropout; to
  reproduce that, pass ``config = {hidden_dropout_prob = 0.0,
  attention_probs_dropout_prob = 0.0}``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from workbench.registry import MODELS
from workbench.tasks.base import DataInfo

from .tokenizer import ATTR, get_tokenizer

# A RoBERTa small enough to train in seconds on a CPU (about 40k parameters).
TINY_CONFIG: dict[str, Any] = dict(
    vocab_size=512, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=130, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
)


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ValueError("model.name: roberta needs the optional package transformers; "
                         "install it with pip install 'swa-workbench[text]'") from None
    return transformers


def _check_config(config: Any, fields: set[str]) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"model.options.config: expected a table of RobertaConfig fields, got {config!r}")
    for key in config:
        if key not in fields:  # RobertaConfig would accept (and ignore) a misspelt field
            raise ValueError(f"model.options.config.{key}: not a RobertaConfig field")
    return dict(config)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or Path(name).expanduser().exists()


@MODELS.register("roberta", help="RoBERTa sequence(-pair) classifier (transformers): local weights, or tiny=true",
                 task="text", requires="transformers")
def roberta(info: DataInfo, *, name_or_path: str = "roberta-base", tiny: bool = False,
            config: Optional[dict] = None):
    """RoBERTa with a classification head of ``info.num_classes`` outputs.

    ``tiny``: a small randomly initialised model (:data:`TINY_CONFIG`) with the
    test-only hash tokenizer; for tests and smoke runs, never for results.
    ``config``: RobertaConfig fields, over the tiny config or over the loaded
    checkpoint's (e.g. dropout).
    """
    tf = _transformers()
    fields = set(tf.RobertaConfig().to_dict())
    extra = _check_config(config, fields)
    max_length = int(info.extra.get("max_length", 128))
    if tiny:
        cfg = tf.RobertaConfig(**{**TINY_CONFIG, **extra, "num_labels": info.num_classes})
        if cfg.max_position_embeddings < max_length + 2:  # RoBERTa's positions start at pad_token_id + 1
            raise ValueError(f"model.options.config.max_position_embeddings: {cfg.max_position_embeddings} is too "
                             f"small for {max_length} tokens (needs max_length + 2)")
        model = tf.RobertaForSequenceClassification(cfg)
        key = f"hash:{cfg.vocab_size}"
    else:
        name = str(name_or_path)
        if _looks_like_path(name):
            path = Path(name).expanduser()
            if not path.is_dir():
                raise ValueError(f"model.options.name_or_path: folder {name} does not exist ({path.resolve()})")
            name = str(path)
        try:
            model = tf.RobertaForSequenceClassification.from_pretrained(
                name, num_labels=info.num_classes, local_files_only=True, **extra)
        except OSError as err:
            if _looks_like_path(name):
                first = str(err).strip().splitlines()[0]
                raise ValueError(f"model.options.name_or_path: cannot load RoBERTa from {name} ({first})") from None
            raise ValueError(
                f"model.options.name_or_path: {name!r} is neither a local folder nor in the Hugging Face cache, and "
                "weights are never downloaded at run time; give a folder with config.json and weights, "
                "or set model.options.tiny = true for a test model") from None
        key = name
    get_tokenizer(key)  # fail now, before any run is recorded, if the tokenizer is missing
    setattr(model, ATTR, key)
    return model
