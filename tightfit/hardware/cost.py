"""The one cost interface every method uses: what a network costs on a target.

`CostModel(target).of_plan(plan, bits)` predicts from the lookup table (measured targets) or the roofline
model (analytic targets); `of_model` prices any PyTorch CNN; `measure` runs the deployed model end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from torch import nn

from tightfit.errors import TightfitError
from tightfit.hardware.bitfusion import BitsPolicy, network_cost
from tightfit.hardware.energy import Energy, modelled_cpu_energy
from tightfit.hardware.latency import LatencyStats
from tightfit.hardware.layers import LayerOp, extract_layers
from tightfit.hardware.lut import LookupTable
from tightfit.hardware.ops import OpKey, op_module, plan_ops
from tightfit.hardware.profile import build_table, ensure_entries
from tightfit.hardware.targets import Target
from tightfit.metrics.complexity import measure_complexity
from tightfit.models.mobilenet import MobileNet
from tightfit.space.plan import NetworkPlan
from tightfit.space.space import SearchSpace


@dataclass(frozen=True)
class Cost:
    latency_ms: float
    latency_source: str
    energy_mj: float | None
    energy_source: str
    size_bytes: int
    flops: int
    bitops: int
    params: int
    peak_memory_bytes: int

    def to_json(self) -> dict:
        return asdict(self)


class CostModel:
    """Prices networks on one target; the latency table is opened (and extended) lazily."""

    def __init__(self, target: Target, progress: bool = True):
        self.target = target
        self.progress = progress
        self._table: LookupTable | None = None

    @property
    def table(self) -> LookupTable:
        if self._table is None:
            self._table = LookupTable.open(self.target.fingerprint())
        return self._table

    def profile_space(self, space: SearchSpace, precisions: tuple[int, ...] | None = None) -> None:
        """Measure and calibrate every operator of `space` on a measured target (cached), at `precisions`
        (default: all the target runs); analytic targets need nothing."""
        if self.target.kind == "measured":
            self._table = build_table(self.target, space, self.progress, precisions, self._table)

    def predict_latency(self, plan: NetworkPlan, bits: int | Sequence[int] = 32) -> float:
        """Lookup-table latency (ms): the sum of the operators' entries plus the call overhead.

        `bits` is one precision for every operator, or one per operator of `plan_ops(plan)` (mixed
        precision: on cpu-ort each operator runs int8 or stays fp32)."""
        keys = _keys(plan, bits)
        ensure_entries(self.target, self.table, keys, self.progress)  # measures only unseen operators
        return self.table.predict(keys)

    def op_costs(self, keys: Sequence[OpKey], metric: str = "latency") -> tuple[list[float], float]:
        """Each operator's own cost, and the cost paid once per network, in ms ("latency") or mJ ("energy").

        The network's predicted cost is the sum of its operators' plus the once-per-network part: on
        measured targets the table entries and the call overhead (energy modelled from them); on analytic
        targets each operator's layers priced by the roofline model at the operator's bits, and nothing
        once. Search methods weight these by their path probabilities (ProxylessNAS's E[latency]).
        """
        if metric not in ("latency", "energy"):
            raise TightfitError(f"cost metric {metric!r}: use 'latency' or 'energy'")
        if self.target.kind == "analytic":
            nets = [network_cost(extract_layers(op_module(k), k.input_shape), _analytic_bits(k, self.target),
                                 self.target.accelerator) for k in keys]
            return [n.latency_ms if metric == "latency" else n.energy_mj for n in nets], 0.0
        ensure_entries(self.target, self.table, keys, self.progress)
        ms = [self.table.entry_ms(k) for k in keys]
        once = self.table.overhead_ms
        if metric == "latency":
            return ms, once
        return [modelled_cpu_energy(m, self.target.threads).mj for m in ms], modelled_cpu_energy(
            once, self.target.threads).mj

    def of_plan(self, plan: NetworkPlan, bits: int | Sequence[int] | None = None) -> Cost:
        """Cost of a MobileNet-family network, every layer at `bits`: 32 or 8 on int8 runtimes, 1..8 on
        bit-flexible accelerators; None is fp32 on measured targets and the widest bits on accelerators.
        On measured targets `bits` may also give one precision per operator of `plan_ops(plan)`."""
        return self._cost(MobileNet(plan), _shape(plan), bits, plan)

    def of_policy(self, model: nn.Module, input_shape: tuple[int, ...], policy: BitsPolicy) -> Cost:
        """Cost of any CNN on an analytic target with per-layer (w_bits, a_bits), by module name (HAQ)."""
        if self.target.kind != "analytic":
            raise TightfitError(f"per-layer weight/activation bits need a bit-flexible target, not {self.target.name}; "
                                "on cpu-ort give one precision (32 or 8) per operator to of_plan")
        cx = measure_complexity(model, input_shape)
        net = network_cost(extract_layers(model, input_shape), policy, self.target.accelerator)
        return Cost(net.latency_ms, "analytic roofline model", net.energy_mj, "analytic model", net.size_bytes,
                    cx.flops, net.bitops, cx.params, cx.peak_activation_bytes)

    def of_model(self, model: nn.Module, input_shape: tuple[int, ...], bits: int | None = None) -> Cost:
        """Cost of any CNN: analytic targets price its layers; measured targets run it end to end."""
        return self._cost(model, input_shape, bits, None)

    def measure(self, model: nn.Module, onnx_path: Path | None, input_shape: tuple[int, ...],
                int8: bool = False) -> LatencyStats:
        return self.target.measure(model, onnx_path, input_shape, int8=int8)

    def _cost(self, model: nn.Module, shape: tuple[int, ...], bits: int | Sequence[int] | None,
              plan: NetworkPlan | None) -> Cost:
        if self.target.kind == "analytic":
            if bits is not None and not isinstance(bits, int):
                raise TightfitError("give an analytic target per-layer bits through of_policy")
            uniform = bits or self.target.accelerator.max_bits
            return self.of_policy(model, shape, (uniform, uniform))
        cx = measure_complexity(model, shape)
        bits = 32 if bits is None else bits
        if plan is not None:
            latency = self.predict_latency(plan, bits)
            calibrated = all(self.table.calibrated(b) for b in ({bits} if isinstance(bits, int) else set(bits)))
            source = "lookup table" if calibrated else "lookup table (uncalibrated: build it with tightfit profile)"
        elif isinstance(bits, int):
            latency, source = self.measure(model, None, shape, int8=bits == 8).p50_ms, "measured end to end"
        else:
            raise TightfitError("per-operator precisions need a network of the search space (of_plan)")
        per_layer = _layer_bits(model, shape, bits)
        bitops = sum(layer.macs * b * b for layer, b in per_layer)
        size = sum(-(-layer.weight_count * b // 8) for layer, b in per_layer)
        energy: Energy = modelled_cpu_energy(latency, self.target.threads)
        return Cost(latency, source, energy.mj, energy.source, size, cx.flops, bitops, cx.params,
                    cx.peak_activation_bytes)


def _analytic_bits(key: OpKey, target: Target) -> tuple[int, int]:
    """An fp32 key on an accelerator runs at its widest bits, as unquantized networks do in `of_plan`."""
    widest = target.accelerator.max_bits
    return min(key.w_bits, widest), min(key.a_bits, widest)


def _shape(plan: NetworkPlan) -> tuple[int, int, int]:
    return (plan.in_channels, plan.resolution, plan.resolution)


def _keys(plan: NetworkPlan, bits: int | Sequence[int]) -> list[OpKey]:
    if isinstance(bits, int):
        return plan_ops(plan, bits, bits)
    keys = plan_ops(plan)
    if len(bits) != len(keys):
        raise TightfitError(f"{len(bits)} precisions given for {len(keys)} operators (stem, blocks, head)")
    return [replace(k, w_bits=b, a_bits=b) for k, b in zip(keys, bits, strict=True)]


def operator_index(layer_name: str, n_ops: int) -> int:
    """Which operator of a MobileNet a conv/linear layer belongs to: stem 0, blocks.i i + 1, head last."""
    top, _, rest = layer_name.partition(".")
    if top == "stem":
        return 0
    if top == "blocks":
        return int(rest.partition(".")[0]) + 1
    return n_ops - 1


def _layer_bits(model: nn.Module, shape: tuple[int, ...], bits: int | Sequence[int]) -> list[tuple[LayerOp, int]]:
    layers = extract_layers(model, shape)
    if isinstance(bits, int):
        return [(layer, bits) for layer in layers]
    return [(layer, bits[operator_index(layer.name, len(bits))]) for layer in layers]
