"""Wide ResNet for CIFAR as used in the SWA paper (timgaripov/swa
``models/wide_resnet.py``, itself from meliketoy/wide-resnet.pytorch).

Structure: 3x3 stem conv (16 channels) -> three stages of ``n = (depth-4)/6``
pre-activation WideBasic blocks at widths 16k/32k/64k (stride 1/2/2, the
stride sits on the block's *second* conv) -> BN-ReLU -> global average pool ->
Linear. Every conv has a bias (as in the reference), dropout sits between the
two convs of a block and defaults to 0 (the SWA paper's setting).
WRN-28-10 is about 36.5M parameters on CIFAR-10.

Deliberate differences from the reference:

* Final BN momentum. The reference builds it with ``BatchNorm2d(..., momentum=0.9)``,
  a Torch7/TF habit; in PyTorch that means running stats are 90% the latest
  batch, so eval-mode statistics are noisy. This is a known defect; all BNs here
  use PyTorch's default 0.1. (For SWA the averaged model's BN stats are
  recomputed anyway, but the SGD baseline's test accuracy is affected.)
* The pool is adaptive (reference: ``F.avg_pool2d(out, 8)``, 32x32 only); it is
  identical on 32x32 input and lets smaller inputs through.

Initialisation: the reference defines a ``conv_init`` (Xavier, gain sqrt 2) but
never applies it, so its networks train from PyTorch's default init. We keep
that default for fidelity.
"""
import torch
import torch.nn.functional as F
from torch import nn

from workbench.registry import MODELS
from workbench.tasks.base import DataInfo


class WideBasic(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3(stride) + shortcut."""

    def __init__(self, in_planes: int, planes: int, dropout: float, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=dropout)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        # Shortcut from the raw input, not the pre-activated one (as in the reference).
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    """CIFAR Wide ResNet; see the module docstring."""

    def __init__(self, num_classes: int, depth: int = 28, widen: int = 10,
                 dropout: float = 0.0, in_channels: int = 3):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4 with n >= 1 (10, 16, 28, ...), got {depth}")
        if widen < 1:
            raise ValueError(f"widen must be >= 1, got {widen}")
        n = (depth - 4) // 6
        stages = [16, 16 * widen, 32 * widen, 64 * widen]
        self.in_planes = stages[0]
        self.conv1 = nn.Conv2d(in_channels, stages[0], kernel_size=3, padding=1, bias=True)
        self.layer1 = self._wide_layer(stages[1], n, dropout, stride=1)
        self.layer2 = self._wide_layer(stages[2], n, dropout, stride=2)
        self.layer3 = self._wide_layer(stages[3], n, dropout, stride=2)
        # Reference: momentum=0.9 here (known defect, see module docstring); default 0.1.
        self.bn1 = nn.BatchNorm2d(stages[3])
        self.linear = nn.Linear(stages[3], num_classes)

    def _wide_layer(self, planes: int, blocks: int, dropout: float, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(WideBasic(self.in_planes, planes, dropout, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.relu(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1)  # reference: avg_pool2d(out, 8)
        return self.linear(torch.flatten(out, 1))


def _wide_resnet(info: DataInfo, depth: int, widen: int, dropout: float) -> WideResNet:
    in_channels = int(info.input_shape[0]) if info.input_shape else 3
    return WideResNet(info.num_classes, depth=depth, widen=widen, dropout=dropout,
                      in_channels=in_channels)


@MODELS.register("wide_resnet", help="CIFAR Wide ResNet WRN-depth-widen (depth 6n+4)",
                 task="image")
def wide_resnet(info: DataInfo, *, depth: int = 28, widen: int = 10,
                dropout: float = 0.0) -> nn.Module:
    """Wide ResNet with ``(depth-4)/6`` blocks per stage, widths 16k/32k/64k."""
    return _wide_resnet(info, depth, widen, dropout)


@MODELS.register("wrn28_10", help="CIFAR WideResNet-28-10 (SWA paper, ~36.5M params)",
                 task="image")
def wrn28_10(info: DataInfo, *, dropout: float = 0.0) -> nn.Module:
    """WRN-28-10: 4 blocks per stage at widths 160/320/640; no dropout by default."""
    return _wide_resnet(info, 28, 10, dropout)
