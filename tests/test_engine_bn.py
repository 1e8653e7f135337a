"""BN recalibration equals a direct computation of both estimators, through any batch structure."""
import pytest
import torch
from torch import nn

from workbench.engine.bn import recalibrate_bn


def batches(sizes, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g) * (1 + i) + i for i, n in enumerate(sizes)]


def test_reference_estimator_is_the_size_weighted_mean_of_batch_statistics():
    xs = batches([7, 3, 12, 5])
    bn = nn.BatchNorm1d(4)
    model = nn.Sequential(bn)
    with torch.no_grad():
        bn.running_mean.fill_(9.0)
    assert recalibrate_bn(model, xs, lambda m, b: m(b), "reference")
    sizes = torch.tensor([float(x.shape[0]) for x in xs])
    w = sizes / sizes.sum()
    mean = sum(wi * x.mean(0) for wi, x in zip(w, xs))
    var = sum(wi * x.var(0, unbiased=True) for wi, x in zip(w, xs))
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, atol=1e-5)


def test_pooled_estimator_is_the_exact_statistics_of_all_rows():
    xs = batches([7, 3, 12, 5])
    bn = nn.BatchNorm1d(4)
    recalibrate_bn(nn.Sequential(bn), xs, lambda m, b: m(b), "pooled")
    allx = torch.cat(xs)
    assert torch.allclose(bn.running_mean, allx.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, allx.var(0, unbiased=True), atol=1e-5)


def test_bn2d_counts_rows_as_n_h_w_and_dict_batches_work():
    g = torch.Generator().manual_seed(1)
    xs = [{"image": torch.randn(n, 3, 4, 4, generator=g) + i} for i, n in enumerate([2, 6])]
    bn = nn.BatchNorm2d(3)
    recalibrate_bn(nn.Sequential(bn), xs, lambda m, b: m(b["image"]), "pooled")
    allx = torch.cat([b["image"] for b in xs]).transpose(0, 1).reshape(3, -1)
    assert torch.allclose(bn.running_mean, allx.mean(1), atol=1e-5)
    assert torch.allclose(bn.running_var, allx.var(1, unbiased=True), atol=1e-5)
    bn2 = nn.BatchNorm2d(3)
    recalibrate_bn(nn.Sequential(bn2), xs, lambda m, b: m(b["image"]), "reference")
    per = [b["image"].transpose(0, 1).reshape(3, -1) for b in xs]
    w = torch.tensor([2.0, 6.0]) / 8
    assert torch.allclose(bn2.running_mean, w[0] * per[0].mean(1) + w[1] * per[1].mean(1), atol=1e-5)


def test_state_is_restored_and_models_without_bn_are_untouched():
    bn = nn.BatchNorm1d(4, momentum=0.3)
    model = nn.Sequential(nn.Linear(4, 4), bn)
    model.eval()
    bn.num_batches_tracked.fill_(17)
    recalibrate_bn(model, batches([5, 5]), lambda m, b: m(b), "reference", max_batches=1)
    assert bn.momentum == 0.3 and not model.training and bn.num_batches_tracked.item() == 17
    assert recalibrate_bn(nn.Linear(3, 3), [torch.randn(2, 3)], lambda m, b: m(b)) is False


def test_max_batches_limits_the_pass():
    xs = batches([4, 4, 4])
    bn = nn.BatchNorm1d(4)
    recalibrate_bn(nn.Sequential(bn), xs, lambda m, b: m(b), "pooled", max_batches=1)
    assert torch.allclose(bn.running_mean, xs[0].mean(0), atol=1e-5)


def test_unknown_estimator_is_an_error():
    with pytest.raises(ValueError, match="bn_estimator"):
        recalibrate_bn(nn.Sequential(nn.BatchNorm1d(2)), [torch.randn(3, 2)], lambda m, b: m(b), "median")
