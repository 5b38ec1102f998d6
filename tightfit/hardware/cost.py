"""The one cost interface every method uses: what a network costs on a target.

`CostModel(target).of_plan(plan, bits)` predicts from the lookup table (measured targets) or the roofline
model (analytic targets); `of_model` prices any PyTorch CNN; `measure` runs the deployed model end to end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn

from tightfit.hardware.energy import Energy, modelled_cpu_energy
from tightfit.hardware.latency import LatencyStats
from tightfit.hardware.layers import extract_layers
from tightfit.hardware.lut import LookupTable
from tightfit.hardware.ops import plan_ops
from tightfit.hardware.profile import ensure_entries
from tightfit.hardware.targets import Target
from tightfit.metrics.complexity import measure_complexity
from tightfit.models.mobilenet import MobileNet
from tightfit.space.plan import NetworkPlan


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

    def predict_latency(self, plan: NetworkPlan, bits: int = 32) -> float:
        """Lookup-table latency (ms): the sum of the operators' entries plus the call overhead."""
        keys = plan_ops(plan, bits, bits)
        ensure_entries(self.target, self.table, keys, self.progress)  # measures only unseen operators
        return self.table.predict(keys)

    def of_plan(self, plan: NetworkPlan, bits: int | None = None) -> Cost:
        """Cost of a MobileNet-family network, every layer at `bits`: 32 or 8 on int8 runtimes, 1..8 on
        bit-flexible accelerators; None is fp32 on measured targets and the widest bits on accelerators."""
        return self._cost(MobileNet(plan), _shape(plan), bits, plan)

    def of_model(self, model: nn.Module, input_shape: tuple[int, ...], bits: int | None = None) -> Cost:
        """Cost of any CNN: analytic targets price its layers; measured targets run it end to end."""
        return self._cost(model, input_shape, bits, None)

    def measure(self, model: nn.Module, onnx_path: Path | None, input_shape: tuple[int, ...],
                int8: bool = False) -> LatencyStats:
        return self.target.measure(model, onnx_path, input_shape, int8=int8)

    def _cost(self, model: nn.Module, shape: tuple[int, ...], bits: int | None, plan: NetworkPlan | None) -> Cost:
        cx = measure_complexity(model, shape)
        if self.target.kind == "analytic":
            from tightfit.hardware.bitfusion import default_bitfusion, load_accelerator, network_cost

            spec = (load_accelerator(Path(self.target.accelerator_file)) if self.target.accelerator_file
                    else default_bitfusion())
            bits = bits or spec.max_bits
            net = network_cost(extract_layers(model, shape), (bits, bits), spec)
            return Cost(net.latency_ms, "analytic roofline model", net.energy_mj, "analytic model", net.size_bytes,
                        cx.flops, net.bitops, cx.params, cx.peak_activation_bytes)
        bits = bits or 32
        bitops = cx.macs * bits * bits
        if plan is not None:
            latency, source = self.predict_latency(plan, bits), "lookup table"
        else:
            latency, source = self.measure(model, None, shape, int8=bits == 8).p50_ms, "measured end to end"
        energy: Energy = modelled_cpu_energy(latency, self.target.threads)
        return Cost(latency, source, energy.mj, energy.source, cx.params * bits // 8, cx.flops, bitops, cx.params,
                    cx.peak_activation_bytes)


def _shape(plan: NetworkPlan) -> tuple[int, int, int]:
    return (plan.in_channels, plan.resolution, plan.resolution)
