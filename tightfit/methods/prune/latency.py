"""A latency budget for AMC on a target: each layer's latency as a function of how much it keeps.

Per conv or linear layer l, t_l(f) = b_l + a_l * f, with f the share of its FLOPs the pruning leaves
(f_in * f_out; a depthwise conv shrinks once). On a measured target both coefficients come from timing the
layer (conv + BatchNorm + activation, which runtimes fuse) alone at full width and at half width, all in one
interleaved session; the network is then overhead + kappa * sum_l t_l(f_l), with kappa fitted on the whole
network measured end to end at three uniform widths. On an analytic target each pruned layer is priced
exactly by the accelerator model. `bench/amc_cifar.py` validates the model on random policies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from tightfit.hardware.bitfusion import layer_cost
from tightfit.hardware.layers import LayerOp
from tightfit.hardware.profile import time_together
from tightfit.hardware.targets import Target
from tightfit.methods.prune.groups import PrunableNetwork, keep_channels

HALF = 0.5
CALIBRATION_KEEPS = (1.0, 0.75, 0.5)


def scaled(op: LayerOp, f_in: float, f_out: float) -> LayerOp:
    """The layer with its input and output channels scaled (a depthwise conv by f_out alone)."""
    if op.kind == "depthwise":
        c = max(1, round(op.out_channels * f_out))
        return replace(op, in_channels=c, out_channels=c, groups=c)
    return replace(op, in_channels=max(1, round(op.in_channels * f_in)),
                   out_channels=max(1, round(op.out_channels * f_out)))


def _module(op: LayerOp) -> nn.Module:
    if op.kind == "linear":
        return nn.Linear(op.in_channels, op.out_channels).eval()
    conv = nn.Conv2d(op.in_channels, op.out_channels, op.kernel, op.stride, op.kernel // 2, groups=op.groups,
                     bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(op.out_channels), nn.ReLU()).eval()


def _shape(op: LayerOp) -> tuple[int, ...]:
    return (op.in_channels,) if op.kind == "linear" else (op.in_channels, op.in_h, op.in_w)


class LatencyModel:
    """Predicted latency (ms) of `net` pruned to any keep vector, on `target`."""

    def __init__(self, net: PrunableNetwork, target: Target, progress: bool = True):
        self.net, self.target = net, target
        self.analytic = target.kind == "analytic"
        self.slope: list[float] = []
        self.intercept: list[float] = []
        self.overhead, self.kappa = 0.0, 1.0
        if not self.analytic:
            self._fit(progress)
        self.full_ms = self.cost(net.full())

    def _fractions(self, keep: Sequence[int]) -> list[tuple[float, float]]:
        groups = self.net.groups
        return [((keep[layer.in_group] / groups[layer.in_group].channels) if layer.in_group is not None else 1.0,
                 (keep[layer.out_group] / groups[layer.out_group].channels) if layer.out_group is not None else 1.0)
                for layer in self.net.layers]

    def cost(self, keep: Sequence[int]) -> float:
        pairs = self._fractions(keep)
        if self.analytic:
            widest = self.target.accelerator.max_bits
            return sum(layer_cost(scaled(layer.op, fi, fo), widest, widest, self.target.accelerator).latency_s
                       for layer, (fi, fo) in zip(self.net.layers, pairs, strict=True)) * 1e3
        total = 0.0
        for layer, (fi, fo), a, b in zip(self.net.layers, pairs, self.slope, self.intercept, strict=True):
            f = fo if layer.op.kind == "depthwise" else fi * fo
            total += b + a * f
        return self.overhead + self.kappa * total

    def _fit(self, progress: bool) -> None:
        from tqdm import tqdm

        from tightfit.methods.prune.surgery import prune_channels

        runtime = self.target.runtime()
        layers = [layer.op for layer in self.net.layers]
        halves = [scaled(op, HALF if layer.in_group is not None else 1.0, HALF if layer.out_group is not None else 1.0)
                  for op, layer in zip(layers, self.net.layers, strict=True)]
        nets = [prune_channels(self.net, [keep_channels(g.channels, 1 - k, 1) for g in self.net.groups])
                for k in CALIBRATION_KEEPS]
        modules = [(_module(op), _shape(op)) for op in (*layers, *halves)]
        modules += [(m, self.net.input_shape) for m in nets] + [(runtime.overhead_module(), self.net.input_shape)]
        fns = [runtime.prepare(m, s) for m, s in tqdm(modules, desc=f"timing layers on {self.target.name}",
                                                      unit="op", disable=None if progress else True)]
        ms = time_together(fns)
        self.overhead = ms[-1]
        n = len(layers)
        for full, half, op, hop in zip(ms[:n], ms[n:2 * n], layers, halves, strict=True):
            f_half = (hop.macs / op.macs) if op.macs else 1.0
            full, half = full - self.overhead, half - self.overhead
            a = (full - half) / (1.0 - f_half) if f_half < 1.0 else 0.0
            self.slope.append(max(0.0, a))
            self.intercept.append(max(0.0, full - max(0.0, a)))
        measured = ms[2 * n:2 * n + len(nets)]
        sums = [self.cost([keep_channels(g.channels, 1 - k, 1) for g in self.net.groups]) - self.overhead
                for k in CALIBRATION_KEEPS]  # with kappa = 1 still
        fit = sum((m - self.overhead) * s for m, s in zip(measured, sums, strict=True))
        self.kappa = fit / sum(s * s for s in sums)

    def describe(self) -> dict:
        return {"target": self.target.name, "analytic": self.analytic, "full_ms": self.full_ms,
                "overhead_ms": self.overhead, "kappa": self.kappa}
