"""The `bitfusion` target: an analytic latency and energy model of a bit-flexible accelerator (SPEC section 0).

Bit Fusion (Sharma et al., ISCA 2018) builds each multiplier from 2-bit x 2-bit "BitBricks" that fuse to the
operands' widths, so a w_bits x a_bits MAC costs ceil(w/2) * ceil(a/2) brick products and throughput grows as
bits shrink. HAQ (CVPR 2019) searched mixed precision against it. Per layer, batch 1:

    bricks/MAC = ceil(w_bits / brick_bits) * ceil(a_bits / brick_bits)
    compute_s  = macs * bricks/MAC / (bitbricks * frequency_hz)
    bytes      = weight_count * w_bits / 8 + (in_elements + out_elements) * a_bits / 8
    memory_s   = bytes / dram_bandwidth_bytes_per_s
    latency_s  = max(compute_s, memory_s)                        (roofline)
    energy_j   = macs * bricks/MAC * energy_per_brick_op_j + bytes * energy_per_dram_byte_j

The brick count is the ideal one: the real Fusion Unit fuses in powers of two (a 6-bit operand runs as 8),
which this model does not round to. The parameters are data (`accelerators/bitfusion.yaml`), so a user
describes their own accelerator in a file of the same form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tightfit.errors import TightfitError
from tightfit.fileio import write_text
from tightfit.hardware.layers import LayerOp

_INT_FIELDS = ("bitbricks", "brick_bits", "max_bits", "min_bits")
_FLOAT_FIELDS = ("frequency_hz", "dram_bandwidth_bytes_per_s", "energy_per_brick_op_j", "energy_per_dram_byte_j")


@dataclass(frozen=True)
class AcceleratorSpec:
    """Parameters of a bit-flexible accelerator; see `accelerators/bitfusion.yaml` for units and sources."""

    name: str
    frequency_hz: float
    bitbricks: int
    brick_bits: int
    max_bits: int
    min_bits: int
    dram_bandwidth_bytes_per_s: float
    energy_per_brick_op_j: float
    energy_per_dram_byte_j: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any], source: str = "accelerator spec") -> AcceleratorSpec:
        """Validate and build; errors name `source` (the file) and the offending field."""
        return _parse(d, source)

    def bricks_per_mac(self, w_bits: int, a_bits: int) -> int:
        """Brick products one w_bits x a_bits multiply-accumulate occupies."""
        self.check_bits(w_bits, a_bits)
        return math.ceil(w_bits / self.brick_bits) * math.ceil(a_bits / self.brick_bits)

    def e_mac(self, w_bits: int, a_bits: int) -> float:
        """Joules of one w_bits x a_bits MAC: its brick products times the energy of one."""
        return self.bricks_per_mac(w_bits, a_bits) * self.energy_per_brick_op_j

    def check_bits(self, w_bits: int, a_bits: int) -> None:
        for label, b in (("w_bits", w_bits), ("a_bits", a_bits)):
            if isinstance(b, bool) or not isinstance(b, int) or not self.min_bits <= b <= self.max_bits:
                raise TightfitError(f"{label}={b!r} is not supported by accelerator {self.name!r}: "
                                    f"use a whole number of bits in [{self.min_bits}, {self.max_bits}]")


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer at one (w_bits, a_bits), batch 1."""

    latency_s: float
    compute_s: float
    memory_s: float
    energy_j: float
    bytes_moved: float
    bitops: int

    @property
    def memory_bound(self) -> bool:
        return self.memory_s > self.compute_s

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LayerCost:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class LayerCostEntry:
    """One layer's cost in a network, with the layer's name and the bits it was priced at."""

    name: str
    w_bits: int
    a_bits: int
    cost: LayerCost

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "w_bits": self.w_bits, "a_bits": self.a_bits, **self.cost.to_json()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LayerCostEntry:
        return cls(d["name"], int(d["w_bits"]), int(d["a_bits"]), LayerCost.from_json(d))


@dataclass(frozen=True)
class NetworkCost:
    """A network's cost: layers run one after another, so latencies and energies add.

    Attributes:
        latency_ms: sum of per-layer roofline latencies.
        energy_mj: sum of per-layer energies.
        bitops: sum of MACs * w_bits * a_bits.
        size_bytes: conv/linear weights at their w_bits, rounded up to whole bytes per layer (biases,
            BatchNorm and other parameters are not counted).
        per_layer: one entry per executed layer, in order.
    """

    latency_ms: float
    energy_mj: float
    bitops: int
    size_bytes: int
    per_layer: tuple[LayerCostEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "energy_mj": self.energy_mj, "bitops": self.bitops,
                "size_bytes": self.size_bytes, "per_layer": [e.to_json() for e in self.per_layer]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NetworkCost:
        return cls(float(d["latency_ms"]), float(d["energy_mj"]), int(d["bitops"]), int(d["size_bytes"]),
                   tuple(LayerCostEntry.from_json(e) for e in d["per_layer"]))


BitsPair = tuple[int, int]
BitsPolicy = BitsPair | Mapping[str, BitsPair] | Callable[[str], BitsPair]


def layer_cost(layer: LayerOp, w_bits: int, a_bits: int, spec: AcceleratorSpec) -> LayerCost:
    """Roofline latency and energy of `layer` with w_bits weights and a_bits activations on `spec`."""
    bricks = spec.bricks_per_mac(w_bits, a_bits)
    macs = layer.macs
    bytes_moved = layer.weight_count * w_bits / 8 + (layer.in_elements + layer.out_elements) * a_bits / 8
    compute_s = macs * bricks / (spec.bitbricks * spec.frequency_hz)
    memory_s = bytes_moved / spec.dram_bandwidth_bytes_per_s
    energy_j = macs * bricks * spec.energy_per_brick_op_j + bytes_moved * spec.energy_per_dram_byte_j
    return LayerCost(max(compute_s, memory_s), compute_s, memory_s, energy_j, bytes_moved, macs * w_bits * a_bits)


def network_cost(layers: list[LayerOp], bits: BitsPolicy, spec: AcceleratorSpec | None = None,
                 default: BitsPair | None = None) -> NetworkCost:
    """Cost of running `layers` in sequence on `spec` (the packaged Bit Fusion if None).

    Args:
        layers: from `extract_layers`.
        bits: (w_bits, a_bits) for every layer, or a mapping or callable from layer name to that pair.
        spec: the accelerator.
        default: the pair for layers a mapping leaves out; without it a missing layer is an error.
    """
    spec = spec or default_bitfusion()
    lookup = _bits_lookup(bits, default)
    entries = []
    for layer in layers:
        w_bits, a_bits = lookup(layer.name)
        entries.append(LayerCostEntry(layer.name, w_bits, a_bits, layer_cost(layer, w_bits, a_bits, spec)))
    return NetworkCost(
        latency_ms=sum(e.cost.latency_s for e in entries) * 1e3,
        energy_mj=sum(e.cost.energy_j for e in entries) * 1e3,
        bitops=sum(e.cost.bitops for e in entries),
        size_bytes=sum(math.ceil(layer.weight_count * e.w_bits / 8) for layer, e in zip(layers, entries, strict=True)),
        per_layer=tuple(entries),
    )


def _bits_lookup(bits: BitsPolicy, default: BitsPair | None) -> Callable[[str], BitsPair]:
    if isinstance(bits, (tuple, list)):
        pair = _pair(bits, "bits")
        return lambda _name: pair
    if isinstance(bits, Mapping):
        def from_mapping(name: str) -> BitsPair:
            if name in bits:
                return _pair(bits[name], f"bits[{name!r}]")
            if default is None:
                raise TightfitError(f"the bit-width policy has no entry for layer {name!r}: add it, or pass "
                                    "default=(w_bits, a_bits) for the layers it leaves out")
            return _pair(default, "default")
        return from_mapping
    if callable(bits):
        return lambda name: _pair(bits(name), f"bits({name!r})")
    raise TightfitError(f"bits={bits!r}: give a (w_bits, a_bits) pair, a mapping or a callable from layer name")


def _pair(value: Any, label: str) -> BitsPair:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TightfitError(f"{label}={value!r}: expected a (w_bits, a_bits) pair of whole numbers")
    return value[0], value[1]


def default_bitfusion() -> AcceleratorSpec:
    """The Bit Fusion configuration packaged with tightfit (`accelerators/bitfusion.yaml`)."""
    resource = resources.files("tightfit.hardware").joinpath("accelerators/bitfusion.yaml")
    return _parse(_safe_load(resource.read_text(encoding="utf-8"), "bitfusion.yaml (packaged)"),
                  "bitfusion.yaml (packaged)")


def load_accelerator(path: str | Path) -> AcceleratorSpec:
    """Read an accelerator description in the form of `accelerators/bitfusion.yaml`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TightfitError(f"accelerator file {path}: cannot read it ({e.strerror or e}); give the path of a "
                            "YAML file shaped like tightfit/hardware/accelerators/bitfusion.yaml") from e
    return _parse(_safe_load(text, str(path)), str(path))


def save_accelerator(spec: AcceleratorSpec, path: str | Path) -> Path:
    """Write `spec` as YAML that `load_accelerator` reads back to an equal spec."""
    return write_text(path, yaml.safe_dump(spec.to_json(), sort_keys=False))


def _safe_load(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TightfitError(f"accelerator file {source}: not valid YAML ({e}); fix the syntax") from e


def _parse(data: Any, source: str) -> AcceleratorSpec:
    names = [f.name for f in fields(AcceleratorSpec)]
    if not isinstance(data, Mapping):
        raise TightfitError(f"accelerator file {source}: expected a mapping of fields {names}, "
                            f"got {type(data).__name__}")
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        raise TightfitError(f"accelerator file {source}: unknown field(s) {unknown}; remove or respell them "
                            f"(allowed: {names})")
    missing = [n for n in names if n not in data]
    if missing:
        raise TightfitError(f"accelerator file {source}: missing field(s) {missing}; add them "
                            "(see tightfit/hardware/accelerators/bitfusion.yaml for each one's meaning)")
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise TightfitError(f"accelerator file {source}: field 'name' must be a non-empty string, got {name!r}")
    values: dict[str, Any] = {"name": name}
    for key in _INT_FIELDS:
        values[key] = _positive(data[key], key, source, integer=True)
    for key in _FLOAT_FIELDS:
        values[key] = _positive(data[key], key, source, integer=False)
    if values["min_bits"] > values["max_bits"]:
        raise TightfitError(f"accelerator file {source}: min_bits={values['min_bits']} exceeds "
                            f"max_bits={values['max_bits']}; make min_bits <= max_bits")
    return AcceleratorSpec(**values)


def _positive(value: Any, key: str, source: str, integer: bool) -> int | float:
    """A finite positive number; accepts numeric text because PyYAML reads 12e9 (no dot) as a string."""
    want = "a positive whole number" if integer else "a positive number"
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0 or (integer and not number.is_integer()):
        raise TightfitError(f"accelerator file {source}: field {key!r} = {value!r} is not {want}; fix its value")
    if integer:
        return int(value) if isinstance(value, int) else int(number)
    return float(value) if isinstance(value, (int, float)) else number
