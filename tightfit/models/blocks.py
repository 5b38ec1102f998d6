"""Building blocks shared by the MobileNet-family networks."""

from __future__ import annotations

import torch
from torch import nn

from tightfit.space.plan import MBConvSpec


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> ReLU6 (or no activation)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class MBConv(nn.Module):
    """Inverted residual (MobileNetV2): expand 1x1, depthwise kxk, linear project 1x1, residual if shapes allow."""

    def __init__(self, spec: MBConvSpec):
        super().__init__()
        hidden = spec.hidden_channels
        layers: list[nn.Module] = []
        if spec.expand != 1:
            layers.append(ConvBNAct(spec.in_channels, hidden, 1))
        layers.append(ConvBNAct(hidden, hidden, spec.kernel, spec.stride, groups=hidden))
        layers.append(ConvBNAct(hidden, spec.out_channels, 1, act=False))
        self.conv = nn.Sequential(*layers)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out
