"""Pre-activation ResNet for CIFAR as used in the SWA paper
(timgaripov/swa ``models/preresnet.py``, itself from bearpaw/pytorch-classification).

Structure: 3x3 stem conv (16 channels) -> three stages of ``n`` blocks at widths
16/32/64 (stride 1/2/2) -> BN-ReLU -> global average pool -> Linear. Blocks are
pre-activation (BN-ReLU-conv); the projection shortcut is a bare 1x1 conv.

Block choice from ``depth`` (same as the reference wherever the reference
accepts the depth):

* ``depth >= 44``: Bottleneck blocks (x4 expansion), depth must be ``9n+2``.
  So PreResNet-164 is n=18 bottlenecks (~1.70M params on CIFAR-10) and, as in
  the reference, PreResNet-110 is n=12 *bottlenecks* too, not basic blocks.
* ``depth < 44``: BasicBlocks when ``depth = 6n+2`` (20, 32, 38); otherwise
  bottlenecks when ``depth = 9n+2`` (11, 29). The reference would reject 11 and
  29; they are accepted here so tests can build a tiny bottleneck net (depth 11).

Initialisation follows the reference: conv weights ~ N(0, sqrt(2/n)) with
``n = k*k*out_channels``, BN weight 1 / bias 0, Linear left at PyTorch default.

Input size: the reference pools with a fixed ``AvgPool2d(8)``, i.e. 32x32 input
only. Here the pool is adaptive (identical on 32x32), so any input of at least
~5x5 works.
"""
import math

import torch
from torch import nn

from workbench.registry import MODELS
from workbench.tasks.base import DataInfo


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The shortcut takes the raw input x (not the pre-activated one), as in the reference.
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + residual


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + residual


def _block_for_depth(depth: int) -> tuple[type, int]:
    """(block class, blocks per stage) for ``depth``; see the module docstring."""
    if depth >= 44:
        if (depth - 2) % 9:
            raise ValueError(f"PreResNet depth >= 44 must be 9n+2 (e.g. 110, 164), got {depth}")
        return Bottleneck, (depth - 2) // 9
    if depth > 2 and (depth - 2) % 6 == 0:
        return BasicBlock, (depth - 2) // 6
    if depth > 2 and (depth - 2) % 9 == 0:
        return Bottleneck, (depth - 2) // 9
    raise ValueError(
        f"PreResNet depth must be 6n+2 (basic) or 9n+2 (bottleneck), got {depth}")


class PreResNet(nn.Module):
    """CIFAR pre-activation ResNet; see the module docstring."""

    def __init__(self, num_classes: int, depth: int = 164, in_channels: int = 3):
        super().__init__()
        block, n = _block_for_depth(depth)
        self.inplanes = 16
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False)
        self.layer1 = self._make_layer(block, 16, n)
        self.layer2 = self._make_layer(block, 32, n, stride=2)
        self.layer3 = self._make_layer(block, 64, n, stride=2)
        self.bn = nn.BatchNorm2d(64 * block.expansion)
        self.relu = nn.ReLU(inplace=True)
        # Reference: nn.AvgPool2d(8), which is the same thing on 32x32 input only.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion,
                          kernel_size=1, stride=stride, bias=False))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.layer3(self.layer2(self.layer1(x)))  # 32 -> 32 -> 16 -> 8 on CIFAR
        x = self.avgpool(self.relu(self.bn(x)))
        return self.fc(torch.flatten(x, 1))


def _preresnet(info: DataInfo, depth: int) -> PreResNet:
    in_channels = int(info.input_shape[0]) if info.input_shape else 3
    return PreResNet(info.num_classes, depth=depth, in_channels=in_channels)


@MODELS.register("preresnet", help="CIFAR pre-activation ResNet of any depth (6n+2 or 9n+2)",
                 task="image")
def preresnet(info: DataInfo, *, depth: int = 164) -> nn.Module:
    """Pre-activation ResNet; bottleneck for depth >= 44 (9n+2), see module docstring."""
    return _preresnet(info, depth)


@MODELS.register("preresnet164", help="CIFAR PreResNet-164, bottleneck (SWA paper, ~1.7M params)",
                 task="image")
def preresnet164(info: DataInfo) -> nn.Module:
    """PreResNet-164: 18 bottleneck blocks per stage."""
    return _preresnet(info, 164)
