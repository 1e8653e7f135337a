"""RoBERTa fine-tuned on GLUE MRPC (the paper's text experiment), as a workbench plugin.

Registers:

* dataset ``mrpc``: GLUE MRPC sentence pairs from ``<root>/mrpc/{train,dev}.tsv``
  (the "test" split is GLUE's dev set, as in the paper's code);
* model ``roberta``: ``RobertaForSequenceClassification`` from local weights, or
  ``tiny = true`` for a small random model with a test-only tokenizer;
* task ``text``: tokenisation with the model's tokenizer (max length 128),
  dynamic padding, cross-entropy and accuracy.

Paper settings: ``workbench run plugins/mrpc_roberta/mrpc.toml`` (needs RoBERTa
weights on disk); ``--scale smoke`` runs the tiny model on the test fixture.
Needs the optional ``text`` extra (``transformers``) only when a model is built.
"""
from . import data, model, task  # noqa: F401  (their decorators register the entries)
