"""CIFAR-10/100 read from the official python-pickle batches, on tiny copies written
here in that format; the missing-data errors; the synthetic CIFAR stand-in."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench
from workbench.data.image import DataNotFound, cifar10, cifar100, synthetic
from workbench.spec import DatasetSpec, SpecError

PER_BATCH, N_TEST = 4, 6


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)  # the originals are Python 2 pickles


def _batch(rng, n: int, label_key: str, classes: int, name: str) -> dict:
    """One batch as the official files hold it: bytes keys, (n, 3072) uint8 rows in
    channel-major order (1024 red, 1024 green, 1024 blue values), labels as a list."""
    out = {
        b"batch_label": name.encode(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        label_key.encode(): rng.integers(0, classes, n).tolist(),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    if label_key == "fine_labels":
        out[b"coarse_labels"] = rng.integers(0, 20, n).tolist()
    return out


@pytest.fixture
def cifar_root(tmp_path) -> Path:
    """``tmp/cifar-10-batches-py/`` (data_batch_1..5, test_batch, batches.meta) and
    ``tmp/cifar-100-python/`` (train, test, meta) with a few random images each."""
    rng = np.random.default_rng(0)
    c10 = tmp_path / "cifar-10-batches-py"
    for i in range(1, 6):
        _write(c10 / f"data_batch_{i}", _batch(rng, PER_BATCH, "labels", 10, f"training batch {i} of 5"))
    _write(c10 / "test_batch", _batch(rng, N_TEST, "labels", 10, "testing batch 1 of 1"))
    _write(c10 / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)],
                                  b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072})
    c100 = tmp_path / "cifar-100-python"
    _write(c100 / "train", _batch(rng, 3 * PER_BATCH, "fine_labels", 100, "training batch 1 of 1"))
    _write(c100 / "test", _batch(rng, N_TEST, "fine_labels", 100, "testing batch 1 of 1"))
    _write(c100 / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                           b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return tmp_path


def _raw(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="bytes")


def test_cifar10_reads_every_batch_in_order_with_the_official_layout(cifar_root):
    data = cifar10(DatasetSpec(name="cifar10", root=str(cifar_root)))
    assert data.train_x.shape == (5 * PER_BATCH, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (N_TEST, 3, 32, 32) and data.train_y.dtype == torch.int64
    folder = cifar_root / "cifar-10-batches-py"
    labels = sum((_raw(folder / f"data_batch_{i}")[b"labels"] for i in range(1, 6)), [])
    assert data.train_y.tolist() == labels
    b3 = _raw(folder / "data_batch_3")
    row = b3[b"data"][1]  # the second image of batch 3 is training example 2 * PER_BATCH + 1
    x = data.train_x[2 * PER_BATCH + 1]
    for c, i, j in [(0, 0, 0), (1, 5, 7), (2, 31, 30)]:
        assert x[c, i, j].item() == row[c * 1024 + i * 32 + j]
    assert data.test_y.tolist() == _raw(folder / "test_batch")[b"labels"]
    assert data.scale == 255.0 and data.augment == "crop_flip" and data.info.num_classes == 10
    assert data.info.extra["classes"][:2] == ["class0", "class1"]


def test_cifar100_uses_fine_labels(cifar_root):
    data = cifar100(DatasetSpec(name="cifar100", root=str(cifar_root)), normalize="imagenet")
    raw = _raw(cifar_root / "cifar-100-python" / "train")
    assert data.train_y.tolist() == raw[b"fine_labels"] and data.info.num_classes == 100
    assert torch.equal(data.train_x[0].reshape(-1), torch.from_numpy(raw[b"data"][0]))
    assert data.mean == (0.485, 0.456, 0.406) and len(data.info.extra["classes"]) == 100


def test_cifar_found_under_root_slash_name_and_via_env(cifar_root, tmp_path_factory, monkeypatch):
    nested = tmp_path_factory.mktemp("nested")
    (nested / "cifar10").mkdir()
    (cifar_root / "cifar-10-batches-py").rename(nested / "cifar10" / "cifar-10-batches-py")
    monkeypatch.setenv("WORKBENCH_DATA", str(nested))
    assert cifar10(DatasetSpec(name="cifar10")).train_x.shape[0] == 5 * PER_BATCH


def test_missing_cifar_names_the_root_and_the_download_switch(tmp_path):
    with pytest.raises(DataNotFound) as err:
        cifar10(DatasetSpec(name="cifar10", root=str(tmp_path / "nowhere")))
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError) and "\n" not in msg
    assert str((tmp_path / "nowhere").resolve()) in msg and "dataset.download" in msg
    # Through the engine: one line, nothing trained, no download attempted.
    with pytest.raises(SpecError, match="dataset.download") as err:
        workbench.run("table3", scale="smoke", overrides=[
            "tracking.enabled=false", "dataset.name=cifar10", "dataset.options={}",
            f"dataset.root={tmp_path / 'nowhere'}"])
    assert str(tmp_path / "nowhere") in str(err.value)


def test_incomplete_cifar_folder_names_the_missing_file(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataNotFound, match="data_batch_4.*dataset.download"):
        cifar10(DatasetSpec(name="cifar10", root=str(cifar_root)))


def test_subset_and_val_split_are_fixed_by_split_seed_not_run_seed(cifar_root):
    spec = DatasetSpec(name="cifar10", root=str(cifar_root), subset=8, val_fraction=0.25)
    a, b = cifar10(spec), cifar10(spec)
    assert a.val_x.shape[0] == 5 and a.train_x.shape[0] == 8
    assert torch.equal(a.val_y, b.val_y) and torch.equal(a.train_x, b.train_x)
    assert not torch.equal(cifar10(spec, split_seed=1).val_x, a.val_x)
    assert cifar10(DatasetSpec(name="cifar10", root=str(cifar_root), augment=False)).augment == "none"


def test_a_run_on_cifar_files_end_to_end(cifar_root):
    r = workbench.run("table3", scale="smoke", overrides=[
        "tracking.enabled=false", "dataset.name=cifar10", "dataset.options={}", f"dataset.root={cifar_root}",
        "budget.epochs=3", "averaging.start=1", "budget.batch_size=8"])
    assert {"final/backbone_test_acc", "final/average_test_acc"} <= set(r.metrics)


def test_synthetic_uint8_takes_cifars_path():
    data = synthetic(DatasetSpec(name="synthetic"), n_train=64, n_test=16, size=32, uint8=True)
    assert data.train_x.dtype == torch.uint8 and data.scale == 255.0 and data.augment == "crop_flip"
    assert 0.3 < data.mean[0] < 0.7 and data.info.input_shape == (3, 32, 32)
    plain = synthetic(DatasetSpec(name="synthetic"), n_train=64, n_test=16)
    assert plain.train_x.dtype == torch.float32 and plain.augment == "none"
