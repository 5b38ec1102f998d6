"""Operators as lookup-table keys: the stem, each MBConv block and the head of a `NetworkPlan`.

A block is one entry, not its three convolutions, because runtimes fuse conv + BN + activation and the
residual add; timing the fused unit is what makes the sum of entries track end-to-end latency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from torch import nn

from tightfit.models.blocks import ConvBNAct, MBConv
from tightfit.space.plan import MBConvSpec, NetworkPlan

KINDS = ("stem", "mbconv", "head")


@dataclass(frozen=True, order=True)
class OpKey:
    """One operator at one input shape and precision.

    stem: conv kxk in->out. mbconv: in->hidden (1x1) -> kxk depthwise -> out (1x1), residual when stride 1
    and in == out. head: 1x1 conv in->hidden, global pool, linear hidden->out (the classes).
    """

    kind: str
    in_channels: int
    in_resolution: int
    out_channels: int
    hidden: int
    kernel: int
    stride: int
    expand: int = 1  # 1: no expansion conv (MobileNetV2's first block); pruning may leave hidden != in * expand
    w_bits: int = 32
    a_bits: int = 32

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.in_resolution, self.in_resolution)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> OpKey:
        return cls(**obj)


def plan_ops(plan: NetworkPlan, w_bits: int = 32, a_bits: int = 32) -> list[OpKey]:
    """The keys of every operator of `plan`, in order."""
    ops = [OpKey("stem", plan.in_channels, plan.resolution, plan.stem_channels, 0, 3, plan.stem_stride)]
    for b in plan.blocks:
        ops.append(OpKey("mbconv", b.in_channels, b.in_resolution, b.out_channels, b.hidden_channels, b.kernel,
                         b.stride, b.expand))
    last = plan.blocks[-1] if plan.blocks else None
    in_ch = last.out_channels if last else plan.stem_channels
    res = last.out_resolution if last else (plan.resolution + plan.stem_stride - 1) // plan.stem_stride
    ops.append(OpKey("head", in_ch, res, plan.num_classes, plan.head_channels, 1, 1))
    return [replace(op, w_bits=w_bits, a_bits=a_bits) for op in ops]


class _Head(nn.Module):
    def __init__(self, cin: int, hidden: int, classes: int):
        super().__init__()
        self.conv = ConvBNAct(cin, hidden, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.classifier(self.pool(self.conv(x)).flatten(1))


def op_module(key: OpKey) -> nn.Module:
    """A freshly initialised module computing exactly this operator (for timing it on the device)."""
    if key.kind == "stem":
        return ConvBNAct(key.in_channels, key.out_channels, key.kernel, key.stride).eval()
    if key.kind == "head":
        return _Head(key.in_channels, key.hidden, key.out_channels).eval()
    spec = MBConvSpec(key.in_channels, key.out_channels, key.kernel, key.expand, key.stride, key.in_resolution,
                      hidden=key.hidden)
    return MBConv(spec).eval()
