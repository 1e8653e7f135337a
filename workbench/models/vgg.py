"""CIFAR VGG16 / VGG16-BN as used in the SWA paper (timgaripov/swa ``models/vgg.py``).

Architecture (width 1.0): thirteen 3x3 convolutions (padding 1) in five blocks
``64,64,M,128,128,M,256,256,256,M,512,512,512,M,512,512,512,M`` each followed by
ReLU (``vgg16_bn`` puts a BatchNorm2d between conv and ReLU), then the classifier
``Dropout-Linear(512,512)-ReLU-Dropout-Linear(512,512)-ReLU-Linear(512,C)``.
About 15.25M parameters for CIFAR-10 (15.26M with BN).

Initialisation follows the reference: conv weights ~ N(0, sqrt(2/n)) with
``n = k*k*out_channels`` and zero conv bias; Linear and BN layers keep PyTorch's
defaults (the reference does not touch them either).

Input size: on 32x32 the five max-pools bring the feature map to exactly 1x1,
as in the reference. Other sizes also work: the pools use ``ceil_mode=True``
(identical on the power-of-two sizes of CIFAR, but a 1x1 map stays 1x1 instead
of collapsing to 0x0, so e.g. 28x28 or 16x16 inputs build), and when the final
map is larger than 1x1 (inputs above 32) it is average-pooled to 1x1 before the
classifier. Note the reference normalises with ImageNet statistics for VGG;
that is a data-pipeline concern, not the model's.

Pitfall: the classifier has Dropout, so SWA evaluation must be in ``eval()``;
``vgg16`` has no BN, so BN recalibration after averaging is a no-op for it.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from workbench.registry import MODELS
from workbench.tasks.base import DataInfo

# 'M' is a 2x2 max-pool; numbers are output channels of a 3x3 conv.
_CFG_16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
           512, 512, 512, "M", 512, 512, 512, "M"]


def _scaled(channels: int, width: float) -> int:
    """Channel count scaled by ``width``, never below 1."""
    return max(1, int(round(channels * width)))


class VGG(nn.Module):
    """VGG over a channel config; see the module docstring."""

    def __init__(self, cfg: list, num_classes: int, in_channels: int = 3,
                 batch_norm: bool = False, width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for v in cfg:
            if v == "M":
                # ceil_mode only differs from the reference on odd sizes; it keeps a
                # 1x1 map alive on inputs smaller than 32 (see module docstring).
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
                continue
            c_out = _scaled(v, width)
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        hidden = _scaled(512, width)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(c_in, hidden),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        # On 32x32 input the map is already 1x1 (the reference just flattens);
        # larger inputs leave a bigger map, which we average down to 1x1.
        if x.shape[-2:] != (1, 1):
            x = F.adaptive_avg_pool2d(x, 1)
        return self.classifier(torch.flatten(x, 1))


def _in_channels(info: DataInfo) -> int:
    return int(info.input_shape[0]) if info.input_shape else 3


def _vgg(info: DataInfo, cfg: list, batch_norm: bool, width: float, dropout: float) -> VGG:
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return VGG(cfg, info.num_classes, in_channels=_in_channels(info),
               batch_norm=batch_norm, width=width, dropout=dropout)


@MODELS.register("vgg16", help="CIFAR VGG16 without BN (SWA paper, ~15.3M params)", task="image")
def vgg16(info: DataInfo, *, width: float = 1.0, dropout: float = 0.5) -> nn.Module:
    """CIFAR VGG16 (no BatchNorm); ``width`` scales every channel count."""
    return _vgg(info, _CFG_16, False, width, dropout)


@MODELS.register("vgg16_bn", help="CIFAR VGG16 with BatchNorm after each conv", task="image")
def vgg16_bn(info: DataInfo, *, width: float = 1.0, dropout: float = 0.5) -> nn.Module:
    """CIFAR VGG16 with BatchNorm2d after every conv; ``width`` scales channels."""
    return _vgg(info, _CFG_16, True, width, dropout)
