"""ImageNet-style models from torchvision, registered under a ``tv_`` prefix
(``tv_vgg16`` is torchvision's 138M-parameter VGG16, not the CIFAR ``vgg16``).

``pretrained=True`` loads the checkpoint of torchvision's DEFAULT weights for
that architecture, and only from the local torch hub cache::

    <torch.hub.get_dir()>/checkpoints/<basename of weights.url>

e.g. ``~/.cache/torch/hub/checkpoints/resnet50-11ad3fa6.pth`` (``TORCH_HOME``
moves it). Nothing is ever downloaded: a missing file raises FileNotFoundError
naming the expected path, so copy the file there by hand. The file's hash is
not verified (torch.hub only checks it when downloading); ``load_state_dict``
is strict, so a file for a different architecture still fails loudly.

``num_classes`` comes from the DataInfo. Without pretraining it is passed to the
torchvision builder; with pretraining the 1000-way ImageNet head is loaded and
then, if ``num_classes != 1000``, replaced by a freshly initialised Linear.
Inputs with other than 3 channels get a fresh stem conv of the same shape
(only without pretraining; pretrained stems expect RGB).

Small inputs: all four work from 32x32 up (ResNet/DenseNet pool adaptively,
torchvision's VGG has an adaptive 7x7 pool before its classifier), though they
are designed for 224x224 and waste most of their capacity on tiny images.
The ImageNet normalisation the pretrained weights expect is the data
pipeline's job.

torchvision is imported inside the factories so that importing this module
(which the model registry does) stays cheap.
"""
import os
import re
from dataclasses import dataclass

import torch
from torch import nn

from workbench.registry import MODELS
from workbench.tasks.base import DataInfo


@dataclass(frozen=True)
class _Spec:
    builder: str  # torchvision.models function name
    weights: str  # torchvision.models weights enum name
    stem: str  # dotted path of the first conv
    head: str  # dotted path of the final Linear


_SPECS = {
    "vgg16": _Spec("vgg16", "VGG16_Weights", "features.0", "classifier.6"),
    "resnet50": _Spec("resnet50", "ResNet50_Weights", "conv1", "fc"),
    "resnet152": _Spec("resnet152", "ResNet152_Weights", "conv1", "fc"),
    "densenet161": _Spec("densenet161", "DenseNet161_Weights", "features.conv0", "classifier"),
}

# Old DenseNet checkpoints name BN/conv parameters "norm.1.weight"; the modules are
# now "norm1" (torchvision applies this same rename in its own loader).
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def checkpoint_path(weights) -> str:
    """Where the hub cache would hold ``weights`` (a torchvision WeightsEnum member)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


def _load_local(model: nn.Module, weights, arch: str) -> None:
    """Load ``weights`` into ``model`` from the hub cache only; never download."""
    path = checkpoint_path(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"pretrained tv_{arch} weights not found at {path}; nothing can be downloaded "
            f"here, so copy {os.path.basename(path)} into that directory "
            f"(or set TORCH_HOME) or use pretrained=False")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if arch.startswith("densenet"):
        state = {(_DENSENET_KEY.sub(r"\1\2", k)): v for k, v in state.items()}
    model.load_state_dict(state)


def _replace(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_path, _, name = dotted.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new)


def _tv_model(info: DataInfo, arch: str, pretrained: bool) -> nn.Module:
    import torchvision.models as tvm  # lazy: heavy import, only needed when building

    spec = _SPECS[arch]
    in_channels = int(info.input_shape[0]) if info.input_shape else 3
    if pretrained and in_channels != 3:
        raise ValueError(
            f"pretrained tv_{arch} expects 3 input channels, data has {in_channels}")
    builder = getattr(tvm, spec.builder)

    if pretrained:
        weights = getattr(tvm, spec.weights).DEFAULT
        model = builder(weights=None, num_classes=1000)
        _load_local(model, weights, arch)
        if info.num_classes != 1000:
            head = model.get_submodule(spec.head)
            _replace(model, spec.head, nn.Linear(head.in_features, info.num_classes))
    else:
        model = builder(weights=None, num_classes=info.num_classes)

    if in_channels != 3:
        old = model.get_submodule(spec.stem)
        _replace(model, spec.stem, nn.Conv2d(
            in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
            bias=old.bias is not None))
    return model


@MODELS.register("tv_vgg16", help="torchvision VGG16 (ImageNet style, 138M params)", task="image")
def tv_vgg16(info: DataInfo, *, pretrained: bool = False) -> nn.Module:
    """torchvision VGG16; ``pretrained`` loads IMAGENET1K_V1 from the local hub cache."""
    return _tv_model(info, "vgg16", pretrained)


@MODELS.register("tv_resnet50", help="torchvision ResNet-50 (ImageNet style)", task="image")
def tv_resnet50(info: DataInfo, *, pretrained: bool = False) -> nn.Module:
    """torchvision ResNet-50; ``pretrained`` loads the DEFAULT (V2) weights from the hub cache."""
    return _tv_model(info, "resnet50", pretrained)


@MODELS.register("tv_resnet152", help="torchvision ResNet-152 (ImageNet style)", task="image")
def tv_resnet152(info: DataInfo, *, pretrained: bool = False) -> nn.Module:
    """torchvision ResNet-152; ``pretrained`` loads the DEFAULT (V2) weights from the hub cache."""
    return _tv_model(info, "resnet152", pretrained)


@MODELS.register("tv_densenet161", help="torchvision DenseNet-161 (ImageNet style)", task="image")
def tv_densenet161(info: DataInfo, *, pretrained: bool = False) -> nn.Module:
    """torchvision DenseNet-161; ``pretrained`` loads IMAGENET1K_V1 from the hub cache."""
    return _tv_model(info, "densenet161", pretrained)
