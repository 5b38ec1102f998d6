"""ResNet-20 and Plain-20 for CIFAR (He et al., 2016, section 4.2): the networks AMC was shown on."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tightfit.space.plan import downsample_positions


class BasicBlock(nn.Module):
    """Two 3x3 convs; with `residual`, a shortcut (1x1 conv + BN where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, residual: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.residual = residual
        self.shortcut: nn.Module = nn.Identity()
        if residual and (stride != 1 or cin != cout):
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)


class ResNetCifar(nn.Module):
    """3 stages of (depth - 2) / 6 basic blocks at widths 16, 32, 64 (times `width`)."""

    def __init__(self, depth: int, residual: bool, resolution: int, in_channels: int, num_classes: int,
                 width: float = 1.0):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth {depth} must be 6n + 2")
        n = (depth - 2) // 6
        widths = [max(1, round(w * width)) for w in (16, 32, 64)]
        # stem, stage 2, stage 3. He et al. end at 8x8 (32 -> 32, 16, 8 with a stride-1 stem): aim for about
        # 8x8, twice the 4x4 that downsample_positions aims for.
        down = iter(downsample_positions(resolution // 2, 3, max_stride2=3))
        stem_stride = 2 if next(down) else 1
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers, cin = [], widths[0]
        for stage, cout in enumerate(widths):
            stride = 1 if stage == 0 else (2 if next(down) else 1)
            for i in range(n):
                layers.append(BasicBlock(cin, cout, stride if i == 0 else 1, residual))
                cin = cout
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))
