"""Small models for offline and smoke runs: the paper's toy CNN and an MLP."""
from __future__ import annotations

from torch import nn

from workbench.registry import MODELS
from workbench.tasks.base import DataInfo


@MODELS.register("toy_cnn", help="Paper Fig. 8 toy CNN: conv, pool, conv, pool, two FC layers", task="image")
def toy_cnn(
    info: DataInfo,
    *,
    channels1: int = 32,
    channels2: int = 64,
    hidden: int = 128,
    kernel: int = 3,
    batchnorm: bool = False,
    dropout: float = 0.0,
) -> nn.Module:
    """Convolution, max-pool, convolution, max-pool, flatten, two fully connected
    layers. The softmax of the paper's network lives in the cross-entropy loss
    (the model returns logits). ``batchnorm`` adds BN after each convolution
    (not in the paper; handy for testing BN recalibration)."""
    c, h, w = info.input_shape
    pad = kernel // 2

    def block(cin: int, cout: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=pad)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(cout))
        return layers + [nn.ReLU(inplace=True), nn.MaxPool2d(2)]

    flat = channels2 * (h // 4) * (w // 4)
    if flat == 0:
        raise ValueError(f"model.name: toy_cnn needs images of at least 4x4, got {h}x{w}")
    head: list[nn.Module] = [nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(inplace=True)]
    if dropout:
        head.append(nn.Dropout(dropout))
    head.append(nn.Linear(hidden, info.num_classes))
    return nn.Sequential(*block(c, channels1), *block(channels1, channels2), *head)


@MODELS.register("mlp", help="Multi-layer perceptron on flattened inputs", task="image")
def mlp(info: DataInfo, *, hidden: int = 128, layers: int = 2, batchnorm: bool = False, dropout: float = 0.0) -> nn.Module:
    size = 1
    for d in info.input_shape or (info.num_features,):
        size *= d
    mods: list[nn.Module] = [nn.Flatten()]
    width = size
    for _ in range(layers - 1):
        mods.append(nn.Linear(width, hidden))
        if batchnorm:
            mods.append(nn.BatchNorm1d(hidden))
        mods.append(nn.ReLU(inplace=True))
        if dropout:
            mods.append(nn.Dropout(dropout))
        width = hidden
    mods.append(nn.Linear(width, info.num_classes))
    return nn.Sequential(*mods)
