"""Tests for the image model zoo: CIFAR VGG / PreResNet / WideResNet and the
torchvision ``tv_*`` wrappers.

Every MODELS entry registered by one of the zoo modules is exercised (found by
``entry.obj.__module__``), so a new factory added to these modules is tested
without editing this file; give it a tiny option set in ``TINY`` if its
defaults are slow to run.
"""
import inspect
import math
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import workbench.models.preresnet as preresnet_mod
import workbench.models.torchvision_zoo as tv_zoo
import workbench.models.vgg  # noqa: F401  (registers vgg16, vgg16_bn)
import workbench.models.wide_resnet  # noqa: F401  (registers wide_resnet, wrn28_10)
from workbench.registry import MODELS
from workbench.tasks.base import DataInfo

ZOO_MODULES = (
    "workbench.models.vgg",
    "workbench.models.preresnet",
    "workbench.models.wide_resnet",
    "workbench.models.torchvision_zoo",
)
ZOO_NAMES = sorted(e.name for e in MODELS if e.obj.__module__ in ZOO_MODULES)

# Options that make a cheap variant; names absent here are built with their defaults.
TINY = {
    "vgg16": {"width": 1 / 16},
    "vgg16_bn": {"width": 1 / 16},
    "preresnet": {"depth": 11},
    "wide_resnet": {"depth": 10, "widen": 1},
}
# Input (C, H, W) per name; full-size fixed-architecture nets get small inputs.
INPUT = {
    "preresnet164": (3, 16, 16),
    "wrn28_10": (3, 8, 8),
    "tv_vgg16": (3, 32, 32),
    "tv_resnet50": (3, 64, 64),
    "tv_resnet152": (3, 64, 64),
    "tv_densenet161": (3, 64, 64),
}
CIFAR10 = DataInfo(task="image", num_classes=10, input_shape=(3, 32, 32))


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine is small and shared
    yield
    torch.set_num_threads(old)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _fwd_bwd(model: nn.Module, shape: tuple[int, ...], num_classes: int = 10) -> None:
    model.train()
    x = torch.randn(2, *shape)
    out = model(x)
    assert out.shape == (2, num_classes)
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"


def test_zoo_registers_expected_names():
    expected = {"vgg16", "vgg16_bn", "preresnet", "preresnet164", "wide_resnet", "wrn28_10",
                "tv_vgg16", "tv_resnet50", "tv_resnet152", "tv_densenet161"}
    assert expected <= set(ZOO_NAMES)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_factory_contract(name):
    entry = MODELS.get(name)
    assert entry.meta.get("task") == "image"
    assert entry.help
    first = next(iter(inspect.signature(entry.obj).parameters))
    assert first == "info"
    for opt, p in entry.options().items():
        assert p.kind is p.KEYWORD_ONLY, f"{name}.{opt} should be keyword-only"
        assert p.annotation is not p.empty, f"{name}.{opt} lacks a type annotation"
        assert p.default is not p.empty, f"{name}.{opt} lacks a default"


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_forward_backward(name):
    torch.manual_seed(0)
    shape = INPUT.get(name, (3, 32, 32))
    info = DataInfo(task="image", num_classes=10, input_shape=shape)
    model = MODELS.get(name).obj(info, **TINY.get(name, {}))
    _fwd_bwd(model, shape)


@pytest.mark.parametrize("name, low, high", [
    ("vgg16", 15.2e6, 15.4e6),
    ("vgg16_bn", 15.2e6, 15.4e6),
    ("preresnet164", 1.65e6, 1.75e6),
    ("wrn28_10", 36.4e6, 36.6e6),
])
def test_full_size_param_counts(name, low, high):
    n = _n_params(MODELS.get(name).obj(CIFAR10))
    assert low <= n <= high, f"{name}: {n} parameters"


def test_generic_factories_match_named_ones():
    assert _n_params(MODELS.get("preresnet").obj(CIFAR10, depth=164)) == \
        _n_params(MODELS.get("preresnet164").obj(CIFAR10))
    small = DataInfo(task="image", num_classes=10, input_shape=(3, 32, 32))
    assert _n_params(MODELS.get("wide_resnet").obj(small, depth=16, widen=2)) > \
        _n_params(MODELS.get("wide_resnet").obj(small, depth=10, widen=1))


@pytest.mark.parametrize("name, opts", [
    ("vgg16_bn", {"width": 1 / 16}),
    ("preresnet", {"depth": 11}),
    ("wide_resnet", {"depth": 10, "widen": 1}),
])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 16, 16), (3, 64, 64)])
def test_cifar_models_other_input_sizes(name, opts, shape):
    info = DataInfo(task="image", num_classes=7, input_shape=shape)
    _fwd_bwd(MODELS.get(name).obj(info, **opts), shape, num_classes=7)


def test_vgg_init_and_width():
    torch.manual_seed(0)
    model = MODELS.get("vgg16").obj(CIFAR10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    last = convs[-1]
    assert torch.all(last.bias == 0)
    assert last.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 512)), rel=0.05)
    tiny = MODELS.get("vgg16").obj(CIFAR10, width=1 / 16)
    assert tiny.classifier[1].in_features == 32 and tiny.classifier[-1].out_features == 10


def test_preresnet_depth_rules():
    block_of = preresnet_mod._block_for_depth
    assert block_of(164) == (preresnet_mod.Bottleneck, 18)
    assert block_of(110) == (preresnet_mod.Bottleneck, 12)  # as in the reference
    assert block_of(20) == (preresnet_mod.BasicBlock, 3)
    assert block_of(11) == (preresnet_mod.Bottleneck, 1)
    for bad in (50, 12, 2):
        with pytest.raises(ValueError, match="depth"):
            block_of(bad)


def test_wide_resnet_bn_momentum_and_conv_bias():
    model = MODELS.get("wide_resnet").obj(CIFAR10, depth=10, widen=1)
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    with pytest.raises(ValueError, match="6n\\+4"):
        MODELS.get("wide_resnet").obj(CIFAR10, depth=12)


def _empty_hub(monkeypatch, tmp_path):
    hub = tmp_path / "hub"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def test_tv_pretrained_missing_checkpoint_raises(monkeypatch, tmp_path):
    hub = _empty_hub(monkeypatch, tmp_path)
    expected = os.path.join(str(hub), "checkpoints", "resnet50-11ad3fa6.pth")
    with pytest.raises(FileNotFoundError) as err:
        MODELS.get("tv_resnet50").obj(CIFAR10, pretrained=True)
    message = str(err.value)
    assert expected in message
    assert "download" in message and "\n" not in message
    assert not (hub / "checkpoints").exists() or not any((hub / "checkpoints").iterdir())


def test_tv_pretrained_loads_local_checkpoint_and_replaces_head(monkeypatch, tmp_path):
    import torchvision.models as tvm

    hub = _empty_hub(monkeypatch, tmp_path)
    torch.manual_seed(1)
    source = tvm.resnet50(weights=None)
    path = tv_zoo.checkpoint_path(tvm.ResNet50_Weights.DEFAULT)
    assert path.startswith(str(hub))
    os.makedirs(os.path.dirname(path))
    torch.save(source.state_dict(), path)

    model = MODELS.get("tv_resnet50").obj(CIFAR10, pretrained=True)
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 10 and model.fc.in_features == 2048

    imagenet = DataInfo(task="image", num_classes=1000, input_shape=(3, 224, 224))
    kept = MODELS.get("tv_resnet50").obj(imagenet, pretrained=True)
    assert torch.equal(kept.fc.weight, source.fc.weight)


def test_tv_densenet_old_key_rename():
    old = "features.denseblock1.denselayer1.norm.1.weight"
    assert tv_zoo._DENSENET_KEY.sub(r"\1\2", old) == "features.denseblock1.denselayer1.norm1.weight"
    new = "features.denseblock1.denselayer1.conv2.weight"
    assert tv_zoo._DENSENET_KEY.sub(r"\1\2", new) == new


def test_tv_non_rgb_input_gets_new_stem():
    info = DataInfo(task="image", num_classes=10, input_shape=(1, 32, 32))
    model = MODELS.get("tv_resnet50").obj(info)
    assert model.conv1.in_channels == 1
    with pytest.raises(ValueError, match="3 input channels"):
        MODELS.get("tv_resnet50").obj(info, pretrained=True)
