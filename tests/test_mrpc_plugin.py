"""The mrpc_roberta plugin: GLUE MRPC loader, test-only tokenizer, text task, and the
tiny RoBERTa trained end to end through the engine with SWA.

Loader and tokenizer tests need no ``transformers``; model tests skip without it
(``pytest.importorskip``). Data: ``tests/fixtures/mrpc/`` holds synthetic pairs
in GLUE's layout (BOM, header, an unbalanced quote), not copies of MRPC. The
real-data checks skip when ``../shared/data/mrpc`` or local RoBERTa weights
are absent.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch

import workbench
from workbench import plugins
from workbench.engine.schedules import RunShape, build_schedule, per_epoch
from workbench.presets import load_spec
from workbench.spec import SpecError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PRESET = str(REPO / "plugins" / "mrpc_roberta" / "mrpc.toml")
FAST = ["tracking.enabled=false", "device=cpu", "threads=1", "precision=fp32"]


@pytest.fixture(scope="module")
def mrpc():
    """The plugin package, freshly loaded through its ``workbench.plugins`` entry point."""
    with pytest.MonkeyPatch.context() as mp, plugins.isolated():
        mp.delenv("WORKBENCH_PLUGINS", raising=False)
        st = {s.name: s for s in plugins.reload_plugins()}["mrpc_roberta"]
        assert st.ok, st.error
        assert set(st.registered) == {"dataset:mrpc", "model:roberta", "task:text"}
        yield plugins.module("mrpc_roberta")


@pytest.fixture
def tf():
    return pytest.importorskip("transformers")


def dataset_spec(root, **kw):
    from workbench.spec import DatasetSpec

    return DatasetSpec(name="mrpc", root=str(root), **kw)


# ----------------------------------------------------------------------------- loader


def test_reads_glue_layout(mrpc):
    data = mrpc.data.mrpc(dataset_spec(FIXTURES))
    assert (len(data.train), len(data.test), data.val) == (48, 18, None)
    assert data.info.task == "text" and data.info.num_classes == 2 and data.info.extra["max_length"] == 128
    assert data.train.y.dtype == torch.int64 and set(data.train.y.tolist()) == {0, 1}
    assert not data.train.a[0].startswith("\ufeff")
    quoted = [s for s in data.train.a if '"' in s]  # unbalanced quotes stay inside their field
    assert quoted and all(s.count('"') == 1 for s in quoted)


def test_val_fraction_and_subset_are_fixed(mrpc):
    data = mrpc.data.mrpc(dataset_spec(FIXTURES, val_fraction=0.25, subset=20))
    assert (len(data.train), len(data.val), len(data.test)) == (20, 12, 18)
    again = mrpc.data.mrpc(dataset_spec(FIXTURES, val_fraction=0.25, subset=20))
    assert again.train.a == data.train.a and again.val.a == data.val.a
    full, split = (mrpc.data.mrpc(dataset_spec(FIXTURES, **kw)) for kw in ({}, {"val_fraction": 0.25}))

    def pairs(s):
        return list(zip(s.a, s.b, s.y.tolist()))

    assert sorted(pairs(split.train) + pairs(split.val)) == sorted(pairs(full.train))  # a partition of train


def test_loader_errors_are_one_line(mrpc, tmp_path):
    bad = tmp_path / "mrpc"
    bad.mkdir()
    (bad / "train.tsv").write_text("index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\ta\tb\n")
    (bad / "dev.tsv").write_text((FIXTURES / "mrpc" / "dev.tsv").read_text(encoding="utf-8-sig"))
    with pytest.raises(mrpc.data.DataFormatError, match=r"^dataset.root: .*train.tsv is not a GLUE MRPC file"):
        mrpc.data.mrpc(dataset_spec(tmp_path))
    (bad / "train.tsv").write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tonly four\n")
    with pytest.raises(mrpc.data.DataFormatError, match=r"train.tsv:2: expected 5 tab-separated fields, got 4$"):
        mrpc.data.mrpc(dataset_spec(tmp_path))
    with pytest.raises(mrpc.data.DataFormatError, match="dataset.options.max_length"):
        mrpc.data.mrpc(dataset_spec(FIXTURES), max_length=2)
    # through the engine: missing data is bad input, reported before anything runs
    with pytest.raises(SpecError, match=r"^dataset.root: GLUE MRPC not found under .*empty") as err:
        workbench.run(PRESET, scale="smoke", overrides=FAST + [f"dataset.root={tmp_path / 'empty'}"])
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- tokenizer


def test_hash_tokenizer_pairs_and_truncation(mrpc):
    tok = mrpc.tokenizer.HashTokenizer(64)
    ids = tok.encode("Hello, world", "Bye now", max_length=128)
    assert ids[0] == 0 and ids[-1] == 2 and ids[4:6] == [2, 2] and len(ids) == 9  # <s> a </s></s> b </s>
    assert ids == tok.encode("hello , WORLD", "bye now")  # lower-cased, punctuation split off
    assert all(4 <= i < 64 for i in ids[1:4] + ids[6:8])
    long = tok.encode("a " * 200, "b " * 10, max_length=32)
    assert len(long) == 32 and long.count(2) == 3
    ids_t, lengths = mrpc.tokenizer.encode(tok, ["x y", "z " * 300], None, 16)
    assert ids_t.shape == (2, 16) and lengths.tolist() == [4, 16] and ids_t[0, 4:].eq(1).all()


# ----------------------------------------------------------------------------- model and task


def test_tiny_model_and_task_contract(mrpc, tf):
    from workbench.registry import DATASETS, MODELS, TASKS

    torch.manual_seed(0)
    data = DATASETS.get("mrpc").obj(dataset_spec(FIXTURES))
    model = MODELS.get("roberta").obj(data.info, tiny=True)
    assert model.workbench_tokenizer == "hash:512" and not any("BatchNorm" in type(m).__name__ for m in model.modules())
    task = TASKS.get("text").obj(data, device=torch.device("cpu"), batch_size=16, eval_batch_size=7, seed=0)
    assert task.iters_per_epoch == 3 and task.eval_splits == ("test",)
    batch = next(iter(task.train_batches(0)))
    enc = task.encoded(model)["train"]
    inputs = task.inputs(model, batch)
    assert inputs["input_ids"].shape == (16, int(enc.lengths[batch.idx].max()))  # dynamic padding
    loss, correct, n = task.loss(model, batch)
    assert loss.ndim == 0 and loss.requires_grad and correct.dtype == torch.int64 and n == 16
    assert sum(b.y.shape[0] for b in task.eval_batches("test")) == 18
    task.loss(copy.deepcopy(model), batch)  # the trainer's copy for the average shares the encoding
    assert len(task._encoded) == 1


def test_tiny_run_end_to_end_with_swa(mrpc, tf):
    result = workbench.run(PRESET, scale="smoke", overrides=FAST + [f"dataset.root={FIXTURES}"])
    m = result.metrics
    assert {"final/backbone_test_acc", "final/average_test_acc", "final/average_test_loss"} <= set(m)
    assert 0.0 <= m["final/average_test_acc"] <= 100.0
    last = result.history[-1]
    assert last["average/n_samples"] == 2.0  # epochs 2 and 3: one sample per epoch
    assert last["lr"] == pytest.approx(0.002)  # the SWA cycle ends at swa_lr_min, where the sample is taken
    avg, bb = result.average_state_dict, result.backbone_state_dict
    floats = [k for k, v in bb.items() if v.is_floating_point()]
    assert any(not torch.equal(avg[k], bb[k]) for k in floats)  # the average is not the backbone


def _save_local_roberta(tf, folder: Path) -> None:
    """A tiny random RoBERTa and a real (character-level byte-BPE) tokenizer in one
    folder, as ``save_pretrained`` leaves them: the local-weights path, offline."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]  # byte-level BPE's map of bytes to characters
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    vocab["<mask>"] = len(vocab)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))  # the files RobertaTokenizer reads
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: one token per character
    cfg = tf.RobertaConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=130, num_labels=2)
    tf.RobertaForSequenceClassification(cfg).save_pretrained(folder)


def test_local_weights_folder(mrpc, tf, tmp_path):
    folder = tmp_path / "roberta-local"
    _save_local_roberta(tf, folder)
    tok = mrpc.tokenizer.get_tokenizer(str(folder))
    assert tok("Hi", "yo")["input_ids"] == [0, 43, 76, 2, 2, 92, 82, 2]  # <s> H i </s></s> y o </s>
    result = workbench.run(PRESET, scale="smoke", overrides=FAST + [
        f"dataset.root={FIXTURES}", "model.options.tiny=false", f"model.options.name_or_path={folder}",
        "model.options.config={hidden_dropout_prob = 0.0}", "budget.epochs=2", "averaging.start=1",
        "schedule.points=[[0, 0.05]]"])
    assert "final/average_test_acc" in result.metrics


def test_missing_weights_fail_with_one_line(mrpc, tf, tmp_path):
    cases = {
        "model.options.name_or_path=roberta-base": "model.options.name_or_path: 'roberta-base' is neither a local "
                                                   "folder nor in the Hugging Face cache",
        f"model.options.name_or_path={tmp_path / 'nope'}": "model.options.name_or_path: folder .* does not exist",
        f"model.options.name_or_path={tmp_path}": "model.options.name_or_path: cannot load RoBERTa from",
    }
    for override, message in cases.items():
        with pytest.raises(SpecError, match=f"^{message}") as err:
            workbench.run(PRESET, overrides=FAST + [f"dataset.root={FIXTURES}", override])
        assert "\n" not in str(err.value)
    with pytest.raises(SpecError, match=r"^model.options.config.hiden_size: not a RobertaConfig field$"):
        workbench.run(PRESET, scale="smoke", overrides=FAST + [f"dataset.root={FIXTURES}",
                                                               "model.options.config={hiden_size = 8}"])


# ----------------------------------------------------------------------------- paper settings


def test_paper_settings(mrpc):
    spec = load_spec(PRESET)
    assert (spec.model.name, spec.dataset.name, spec.optimizer.name) == ("roberta", "mrpc", "sgd")
    assert (spec.optimizer.momentum, spec.optimizer.weight_decay, spec.budget.batch_size) == (0.9, 0.01, 32)
    assert (spec.averaging.variant, spec.averaging.start, spec.budget.epochs) == ("swa", 45, 50)
    shape = RunShape(50, 115, 45)  # 3668 / 32 -> 115 iterations per epoch
    lr = build_schedule(spec.schedule, shape)
    last = per_epoch(lr, shape)
    assert last[:21] == [1e-4] * 21 and last[30] == pytest.approx((1e-4 + 1e-6) / 2)
    assert last[40:45] == [pytest.approx(1e-6)] * 5
    first = per_epoch(lr, shape, "first")
    for e in range(45, 50):  # one linear cycle per epoch, 5e-5 -> 5e-6
        assert first[e] == pytest.approx(5e-5 - 45e-6 / 115) and last[e] == pytest.approx(5e-6)


# ----------------------------------------------------------------------------- real data


def test_real_mrpc_counts_and_balance(mrpc, shared_data):
    if not (shared_data / "mrpc" / "train.tsv").is_file():
        pytest.skip("../shared/data/mrpc is absent")
    data = mrpc.data.mrpc(dataset_spec(shared_data))
    assert (len(data.train), len(data.test)) == (3668, 408)
    assert (int(data.train.y.sum()), int((data.train.y == 0).sum())) == (2474, 1194)
    assert (int(data.test.y.sum()), int((data.test.y == 0).sum())) == (279, 129)
    assert any("\x12" in s for s in data.train.a + data.train.b)  # the original control byte is kept


def _local_roberta() -> str | None:
    path = os.environ.get("WORKBENCH_ROBERTA")
    if path and Path(path).is_dir():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache("roberta-base", "config.json"), str):
            return "roberta-base"
    except ImportError:
        pass
    return None


@pytest.mark.slow
def test_real_weights_on_real_data(mrpc, tf, shared_data):
    name = _local_roberta()
    if name is None:
        pytest.skip("no RoBERTa weights on disk (set WORKBENCH_ROBERTA to a save_pretrained folder)")
    if not (shared_data / "mrpc" / "train.tsv").is_file():
        pytest.skip("../shared/data/mrpc is absent")
    result = workbench.run(PRESET, overrides=FAST + [
        f"dataset.root={shared_data}", f"model.options.name_or_path={name}", "dataset.subset=64",
        "budget.epochs=2", "averaging.start=1", "budget.eval_batch_size=64"])
    assert 30.0 <= result.metrics["final/average_test_acc"] <= 100.0
