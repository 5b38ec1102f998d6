"""MobileNet-family networks built from a `NetworkPlan`; MobileNetV2 (Sandler et al., 2018) as a plan."""

from __future__ import annotations

import torch
from torch import nn

from tightfit.models.blocks import ConvBNAct, MBConv
from tightfit.space.plan import MBConvSpec, NetworkPlan, downsample_positions, make_divisible

# (expand t, channels c, repeats n, stride s at 224) from the MobileNetV2 paper, Table 2
MOBILENETV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


class MobileNet(nn.Module):
    """Stem, MBConv blocks, 1x1 head, global average pool, classifier."""

    def __init__(self, plan: NetworkPlan, dropout: float = 0.0):
        super().__init__()
        self.plan = plan
        self.stem = ConvBNAct(plan.in_channels, plan.stem_channels, 3, plan.stem_stride)
        self.blocks = nn.Sequential(*(MBConv(spec) for spec in plan.blocks))
        last = plan.blocks[-1].out_channels if plan.blocks else plan.stem_channels
        self.head = ConvBNAct(last, plan.head_channels, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(plan.head_channels, plan.num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))  # (B, C_head, h, w)
        return self.classifier(self.dropout(torch.flatten(self.pool(x), 1)))


def init_weights(model: nn.Module) -> None:
    """He (fan-out) convs, unit BatchNorm, small-normal classifier: the MobileNetV2 reference init."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def mobilenetv2_plan(resolution: int, in_channels: int, num_classes: int, width: float = 1.0) -> NetworkPlan:
    """MobileNetV2 with a width multiplier; strides adapted to the input resolution."""
    slots = 1 + sum(s == 2 for _, _, _, s in MOBILENETV2_STAGES)
    active = iter(downsample_positions(resolution, slots, max_stride2=slots))
    stem_stride = 2 if next(active) else 1
    res = (resolution + stem_stride - 1) // stem_stride
    stem = make_divisible(32 * width)
    channels, blocks = stem, []
    for t, c, n, s in MOBILENETV2_STAGES:
        out = make_divisible(c * width)
        stride = (2 if next(active) else 1) if s == 2 else 1
        for i in range(n):
            spec = MBConvSpec(channels, out, 3, t, stride if i == 0 else 1, res)
            blocks.append(spec)
            channels, res = out, spec.out_resolution
    head = make_divisible(1280 * max(1.0, width))
    return NetworkPlan(in_channels, resolution, stem, stem_stride, tuple(blocks), head, num_classes)
