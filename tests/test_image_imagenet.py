"""ImageNet from an image folder: the loader on a tiny tree of PNGs written here,
the standard transforms (eval pixel-exact against torchvision's), the streaming
task's determinism (independent of the number of workers) and the missing-data error."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import workbench
from workbench.data.image import IMAGENET_MEAN, IMAGENET_STD, DataNotFound
from workbench.data.imagenet import FolderImageData, imagenet
from workbench.spec import DatasetSpec, SpecError
from workbench.tasks.image import FolderImageTask, image_task

CROP, RESIZE = 32, 36
SIZES = [(48, 40), (40, 56), (64, 64)]  # (width, height): not square, not the crop size


@pytest.fixture
def folder_root(tmp_path) -> Path:
    """``tmp/imagenet/{train,val}/<wnid>/*.png``: 2 classes, 3 train and 2 val images each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, per_class in (("train", 3), ("val", 2)):
        for wnid in ("n01440764", "n01443537"):
            d = tmp_path / "imagenet" / split / wnid
            d.mkdir(parents=True)
            for k in range(per_class):
                w, h = SIZES[k]
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{wnid}_{k}.png")
    return tmp_path


def _spec(root, **kw) -> DatasetSpec:
    return DatasetSpec(name="imagenet", root=str(root), **kw)


def _task(data, seed=0, batch_size=4) -> FolderImageTask:
    return image_task(data, device=torch.device("cpu"), batch_size=batch_size, eval_batch_size=3, seed=seed)


def test_loader_reads_the_folder_tree(folder_root):
    data = imagenet(_spec(folder_root), crop=CROP, resize=RESIZE, workers=0)
    assert isinstance(data, FolderImageData) and data.info.task == "image"
    assert data.info.num_classes == 2 and data.info.input_shape == (3, CROP, CROP)
    assert data.info.extra["classes"] == ["n01440764", "n01443537"]  # sorted wnids: torchvision's order
    assert len(data.train) == 6 and len(data.test) == 4 and data.val is None
    assert (data.mean, data.std, data.scale) == (IMAGENET_MEAN, IMAGENET_STD, 255.0)
    x, y = data.train[0]
    assert x.dtype == torch.uint8 and x.shape == (3, CROP, CROP) and y == 0
    names = [type(t).__name__ for t in data.train.transform.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "PILToTensor"]
    assert [type(t).__name__ for t in data.test.transform.transforms] == ["Resize", "CenterCrop", "PILToTensor"]


def test_root_itself_may_hold_train_and_val(folder_root):
    data = imagenet(_spec(folder_root / "imagenet"), crop=CROP, resize=RESIZE, workers=0)
    assert len(data.train) == 6


def test_eval_batches_equal_torchvision_reference(folder_root):
    from PIL import Image
    from torchvision import transforms as T

    data = imagenet(_spec(folder_root), crop=CROP, resize=RESIZE, workers=0)
    ref = T.Compose([T.Resize(RESIZE), T.CenterCrop(CROP), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    xs, ys = zip(*_task(data).eval_batches("test"))
    x, y = torch.cat(xs), torch.cat(ys)
    assert [b.shape[0] for b in xs] == [3, 1]
    for k, (path, label) in enumerate(data.test.samples):  # fixed order
        with Image.open(path) as img:
            assert torch.equal(x[k], ref(img.convert("RGB"))), path
        assert y[k].item() == label


def _epoch(task, epoch=0):
    return [(x.clone(), y.clone()) for x, y in task.train_batches(epoch)]


def _same(a, b) -> bool:
    return all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b)) and len(a) == len(b)


def test_training_stream_is_seeded_and_independent_of_workers(folder_root):
    data = imagenet(_spec(folder_root), crop=CROP, resize=RESIZE, workers=0)
    task = _task(data, seed=3)
    assert task.iters_per_epoch == 2 and task.eval_splits == ("test",)
    e0 = _epoch(task)
    assert [x.shape for x, _ in e0] == [(4, 3, CROP, CROP), (2, 3, CROP, CROP)]
    assert sorted(torch.cat([y for _, y in e0]).tolist()) == [0, 0, 0, 1, 1, 1]
    assert not _same(e0, _epoch(task, 1))
    with_worker = imagenet(_spec(folder_root), crop=CROP, resize=RESIZE, workers=1)
    assert _same(e0, _epoch(_task(with_worker, seed=3)))  # same seeds, another process
    other = _task(data, seed=4)
    assert not _same(e0, _epoch(other))
    # A BN pass draws from its own generator: the next training epoch is unchanged.
    again = _task(data, seed=3)
    for _ in again.bn_batches():
        pass
    assert _same(e0, _epoch(again))


def test_subset_and_val_fraction(folder_root):
    data = imagenet(_spec(folder_root, val_fraction=0.34, subset=3), crop=CROP, resize=RESIZE, workers=0)
    assert len(data.val) == 2 and len(data.train) == 3
    assert set(data.val.indices).isdisjoint(data.train.indices)
    x, _ = data.val[0]
    assert x.shape == (3, CROP, CROP)  # eval transforms on the held-out images
    assert _task(data).eval_splits == ("val", "test")


def test_missing_folder_names_the_path_and_that_nothing_downloads(tmp_path):
    with pytest.raises(DataNotFound) as err:
        imagenet(_spec(tmp_path / "none"))
    msg = str(err.value)
    assert str((tmp_path / "none").resolve()) in msg and "nothing can be downloaded" in msg and "\n" not in msg
    with pytest.raises(SpecError, match="nothing can be downloaded"):
        workbench.run("ablation-imagenet", scale="smoke", overrides=[
            "tracking.enabled=false", "dataset.options={}", f"dataset.root={tmp_path / 'none'}"])


def test_a_run_on_the_folder_end_to_end(folder_root):
    r = workbench.run("ablation-imagenet", scale="smoke", overrides=[
        "tracking.enabled=false", f"dataset.root={folder_root}",
        f"dataset.options={{crop = {CROP}, resize = {RESIZE}, workers = 0}}",
        "model.name=toy_cnn", "model.options={channels1 = 4, channels2 = 8, hidden = 16}"])
    assert r.history[-1]["average/n_samples"] == 2.0 and "final/average_test_acc" in r.metrics
