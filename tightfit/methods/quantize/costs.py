"""What a quantization policy costs, for HAQ's budget: the hardware's own feedback, not a proxy.

  * `AcceleratorCost`: latency (ms) or energy (mJ) on a bit-flexible accelerator (`bitfusion` or a user's
    file), each layer priced by the roofline model at its (w_bits, a_bits); precomputed per layer for
    every pair, so that the search's many queries are table look-ups.
  * `SizeCost`: bytes of the quantized weights, b bits per weight plus the codebook (k-means) or the
    scale (linear), and 4 bytes per weight of layers left in floating point.
  * `OrtCost`: latency (ms) on cpu-ort from the measured lookup table, each operator int8 or fp32, anchored
    to the model measured end to end at both precisions, plus what each change of precision costs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import nn

from tightfit.errors import TightfitError
from tightfit.hardware.bitfusion import layer_cost
from tightfit.hardware.cost import CostModel, operator_index
from tightfit.hardware.layers import LayerOp, extract_layers
from tightfit.hardware.ops import plan_ops
from tightfit.hardware.profile import time_together
from tightfit.hardware.targets import Target
from tightfit.methods.quantize.deploy import MixedInt8, float_onnx
from tightfit.methods.quantize.policy import FP, LayerBits, quantizable_layers
from tightfit.models.mobilenet import MobileNet

Bits = Mapping[str, LayerBits]
PRECISIONS = (32, 8)  # what a cpu-ort operator runs at


class AcceleratorCost:
    metric_units = {"latency": "ms", "energy": "mJ"}

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], target: Target, metric: str = "latency"):
        if target.kind != "analytic":
            raise TightfitError(f"{target.name} is not a bit-flexible accelerator; use OrtCost for cpu-ort")
        if metric not in self.metric_units:
            raise TightfitError(f"HAQ budget metric {metric!r} on {target.name}: use latency or energy")
        spec, self.metric = target.accelerator, metric
        self.layers = extract_layers(model, input_shape)
        self.max_bits = spec.max_bits
        widths = range(1, spec.max_bits + 1)
        self._table = {(op.name, w, a): self._price(layer_cost(op, w, a, spec)) for op in self.layers
                       for w in widths for a in widths}

    def _price(self, cost) -> float:  # noqa: ANN001
        return cost.latency_s * 1e3 if self.metric == "latency" else cost.energy_j * 1e3

    def __call__(self, bits: Bits) -> float:
        """Layers the policy leaves in floating point (or out) run at the accelerator's widest bits."""
        total = 0.0
        for op in self.layers:
            b = bits.get(op.name, LayerBits())
            total += self._table[(op.name, min(b.w_bits, self.max_bits), min(b.a_bits, self.max_bits))]
        return total

    @property
    def unit(self) -> str:
        return self.metric_units[self.metric]


class SizeCost:
    """Bytes of the weights: ceil(n * b / 8) per layer, plus 2^b fp32 centroids (k-means) or one fp32
    scale (linear). The packed file (`packing.py`) stores exactly these payloads, plus what is not a
    conv/linear weight (biases, batch norm) and its header."""

    unit = "bytes"

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], method: str = "kmeans"):
        self.layers = extract_layers(model, input_shape)
        self.method = method

    def layer_bytes(self, op: LayerOp, w_bits: int) -> int:
        if w_bits >= FP:
            return 4 * op.weight_count
        side = 4 * 2**w_bits if self.method == "kmeans" else 4
        return math.ceil(op.weight_count * w_bits / 8) + side

    def __call__(self, bits: Bits) -> float:
        return float(sum(self.layer_bytes(op, bits.get(op.name, LayerBits()).w_bits) for op in self.layers))

    def weights(self) -> int:
        return sum(op.weight_count for op in self.layers)


class OrtCost:
    """cpu-ort latency (ms) of a MobileNet-family network from the lookup table, one precision per operator
    (stem, each block, head): the operator runs int8 when its layers are at 8 bits, else fp32.

    The table's entries are each operator timed alone; a network's sum misses by a factor that differs per
    precision (a table calibrated for fp32 by a search but not for int8 priced all-fp32 below all-int8 on a
    CPU where it measured dearer). So each precision's operators are scaled to this model measured
    end to end at that precision: the uniform policies cost what they measure.

    No table entry holds what a change of precision between two operators costs: ONNX Runtime quantizes or
    dequantizes the tensor between them. On this CPU a policy alternating int8 and fp32 every operator
    measured nearly as slow as all-fp32 (bench/results/ort_mixed_cost.json), so each change costs its
    tensor's elements times a per-element price, fitted to the two alternating policies timed together
    with the uniform ones."""

    unit = "ms"

    def __init__(self, model: nn.Module, cost: CostModel, anchor_ms: Mapping[str, float] | None = None):
        if not isinstance(model, MobileNet):
            raise TightfitError("HAQ on cpu-ort prices operators from the lookup table, which lists the search "
                                "space's networks; for another CNN use bitfusion, a size budget, or measure it")
        if not cost.target.int8:
            raise TightfitError(f"{cost.target.name} has no int8 kernels to choose between")
        self.model, self.cost = model, cost
        self._int8: MixedInt8 | None = None
        self.operators = operator_layers(model)
        keys = plan_ops(model.plan)
        # the tensor between operator i and i + 1 is operator i + 1's input
        self.boundary_elements = [k.in_channels * k.in_resolution**2 for k in keys[1:]]
        priced = {b: cost.op_costs(plan_ops(model.plan, b, b)) for b in PRECISIONS}
        self.operator_ms = {b: ms for b, (ms, _) in priced.items()}
        self.overhead_ms = priced[32][1]  # the runtime's per-call cost, one for every precision
        self.anchors = anchor_policies(len(self.operators))
        self.anchor_ms = dict(anchor_ms or self.measure(self.anchors, "anchoring the table to the model"))
        self.scales = {b: (self.anchor_ms[UNIFORM[b]] - self.overhead_ms) / sum(self.operator_ms[b])
                       for b in PRECISIONS}
        self.ms_per_changed_element = self._fit_changes()

    def measure(self, policies: Mapping[str, list[int]], desc: str = "exporting") -> dict[str, float]:
        """Operator precisions by name -> ms end to end: each quantized as deployed (`mixed_int8_onnx`, from one
        export) and all timed together, so that their ratios do not depend on the machine's speed of the day."""
        from tqdm import tqdm

        runtime = self.cost.target.runtime()
        plan = self.model.plan
        shape = (plan.in_channels, plan.resolution, plan.resolution)
        if self._int8 is None:  # one export serves the anchors and every later measured check
            self._int8 = MixedInt8(float_onnx(self.model, shape), shape, None)
        fns = [runtime.prepare_onnx(self._int8(precisions), shape)
               for precisions in tqdm(list(policies.values()), desc=desc, unit="net",
                                      disable=None if self.cost.progress else True)]
        return dict(zip(policies, time_together(fns), strict=True))

    def _fit_changes(self) -> float:
        """Least squares through the origin: what the alternating anchors measured beyond the operators'
        price, against the elements of the tensors at their changes of precision (never negative)."""
        pairs = [(self.anchor_ms[name] - self.operators_ms(p), self.changed_elements(p))
                 for name, p in self.anchors.items() if name not in UNIFORM.values()]
        return max(0.0, sum(x * e for x, e in pairs) / sum(e * e for _, e in pairs))

    def operators_ms(self, precisions: list[int]) -> float:
        return self.overhead_ms + sum(self.scales[p] * self.operator_ms[p][i] for i, p in enumerate(precisions))

    def changed_elements(self, precisions: list[int]) -> int:
        return sum(e for e, a, b in zip(self.boundary_elements, precisions, precisions[1:], strict=False) if a != b)

    def precisions(self, bits: Bits) -> list[int]:
        return operator_precisions(self.operators, bits)

    def of_precisions(self, precisions: list[int]) -> float:
        return self.operators_ms(precisions) + self.ms_per_changed_element * self.changed_elements(precisions)

    def __call__(self, bits: Bits) -> float:
        return self.of_precisions(self.precisions(bits))


UNIFORM = {32: "fp32", 8: "int8"}  # the anchors that set each precision's scale


def anchor_policies(n_ops: int) -> dict[str, list[int]]:
    """What OrtCost times end to end: both uniform policies, and int8 on every other operator both ways."""
    return {"fp32": [32] * n_ops, "int8": [8] * n_ops,
            "alternate-even": [8 if i % 2 == 0 else 32 for i in range(n_ops)],
            "alternate-odd": [8 if i % 2 else 32 for i in range(n_ops)]}


def operator_precisions(operators: list[list[str]], bits: Bits) -> list[int]:
    """8 for each operator (its layers, `operator_layers`) whose layers all have at most 8 weight bits, else 32."""
    return [8 if all(bits.get(n, LayerBits()).w_bits <= 8 for n in layers) else 32 for layers in operators]


def operator_layers(model: MobileNet) -> list[list[str]]:
    """The conv/linear layer names of each operator of a MobileNet: stem, blocks.i, then the head."""
    n_ops = len(model.plan.blocks) + 2
    groups: list[list[str]] = [[] for _ in range(n_ops)]
    for name in quantizable_layers(model):
        groups[operator_index(name, n_ops)].append(name)
    return groups

