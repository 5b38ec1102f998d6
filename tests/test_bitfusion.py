"""The analytic Bit Fusion target: layer extraction, the roofline cost formulas and the accelerator file."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
from torch import nn

from tightfit.errors import TightfitError
from tightfit.hardware.bitfusion import (
    AcceleratorSpec,
    NetworkCost,
    default_bitfusion,
    layer_cost,
    load_accelerator,
    network_cost,
    save_accelerator,
)
from tightfit.hardware.layers import LayerOp, extract_layers
from tightfit.metrics import count_flops
from tightfit.models import ModelSpec, build_model

SHAPE = (3, 32, 32)
# 3x3 conv, 16 -> 32 channels, stride 1, 8x8 in and out (padding 1).
CONV = LayerOp("conv", "conv", 16, 32, 3, 1, 1, 8, 8, 8, 8)
BITS = range(1, 9)


def approx(x: float) -> pytest.approx:
    return pytest.approx(x, rel=1e-12)


@pytest.fixture(scope="module")
def spec() -> AcceleratorSpec:
    return default_bitfusion()


@pytest.fixture(scope="module")
def mbv2() -> nn.Module:
    return build_model(ModelSpec("mobilenetv2", 32, 3, 10, 0.5))


@pytest.fixture(scope="module")
def resnet20() -> nn.Module:
    return build_model(ModelSpec("resnet20", 32, 3, 10))


def write_yaml(path: Path, **overrides: object) -> Path:
    """An accelerator file with the packaged fields, some replaced (None removes a field)."""
    fields = dict(default_bitfusion().to_json(), **overrides)
    path.write_text("".join(f"{k}: {v}\n" for k, v in fields.items() if v is not None))
    return path


# --- the packaged parameters the hand computations below rely on -----------------------------------------


def test_packaged_bitfusion_parameters(spec: AcceleratorSpec) -> None:
    assert spec == AcceleratorSpec(name="bitfusion", frequency_hz=500e6, bitbricks=8192, brick_bits=2, max_bits=8,
                                   min_bits=1, dram_bandwidth_bytes_per_s=12e9, energy_per_brick_op_j=2.87e-14,
                                   energy_per_dram_byte_j=1.2e-10)


# --- one layer by hand ----------------------------------------------------------------------------------
# macs = 8*8 outputs * 32 out-ch * 16 in-ch * 9 = 294912; weights = 32*16*9 = 4608;
# activations in = 16*64 = 1024, out = 32*64 = 2048. Bricks per second = 8192 * 5e8 = 4.096e12; 12 GB/s.

HAND = {
    # (w, a): (compute_s, bytes, memory_s, latency_s, energy_j, bitops)
    # 8x8: 16 bricks/MAC; bytes 4608 + 3072 = 7680. Compute-bound.
    (8, 8): (294912 * 16 / 4.096e12, 7680, 7680 / 12e9, 1.152e-6,
             294912 * 16 * 2.87e-14 + 7680 * 1.2e-10, 294912 * 64),
    # 4x4: 4 bricks/MAC; bytes 2304 + 1536 = 3840. Memory-bound.
    (4, 4): (294912 * 4 / 4.096e12, 3840, 3840 / 12e9, 3.2e-7,
             294912 * 4 * 2.87e-14 + 3840 * 1.2e-10, 294912 * 16),
    # 2-bit weights, 8-bit activations: 1*4 = 4 bricks/MAC; bytes 1152 + 3072 = 4224. Memory-bound.
    (2, 8): (294912 * 4 / 4.096e12, 4224, 4224 / 12e9, 3.52e-7,
             294912 * 4 * 2.87e-14 + 4224 * 1.2e-10, 294912 * 16),
    # 1x1: one brick per MAC (a 1-bit operand still fills a 2-bit brick); bytes 576 + 384 = 960. Memory-bound.
    (1, 1): (294912 / 4.096e12, 960, 960 / 12e9, 8e-8,
             294912 * 2.87e-14 + 960 * 1.2e-10, 294912),
}


def test_hand_layer_shape() -> None:
    assert (CONV.macs, CONV.weight_count, CONV.in_elements, CONV.out_elements) == (294912, 4608, 1024, 2048)


@pytest.mark.parametrize("bits", sorted(HAND))
def test_layer_cost_by_hand(spec: AcceleratorSpec, bits: tuple[int, int]) -> None:
    compute_s, bytes_moved, memory_s, latency_s, energy_j, bitops = HAND[bits]
    cost = layer_cost(CONV, *bits, spec)
    assert cost.compute_s == approx(compute_s)
    assert cost.bytes_moved == approx(bytes_moved)
    assert cost.memory_s == approx(memory_s)
    assert cost.latency_s == approx(latency_s)
    assert cost.latency_s == approx(max(compute_s, memory_s))
    assert cost.energy_j == approx(energy_j)
    assert cost.bitops == bitops


def test_hand_numbers_written_out(spec: AcceleratorSpec) -> None:
    """The same layer, numbers fully evaluated, so a formula slip in HAND cannot hide a matching code slip."""
    c88 = layer_cost(CONV, 8, 8, spec)
    assert (c88.compute_s, c88.memory_s) == (approx(1.152e-6), approx(6.4e-7))
    assert c88.energy_j == approx(1.354235904e-7 + 9.216e-7)
    c11 = layer_cost(CONV, 1, 1, spec)
    assert (c11.compute_s, c11.memory_s, c11.latency_s) == (approx(7.2e-8), approx(8e-8), approx(8e-8))
    assert c11.energy_j == approx(8.4639744e-9 + 1.152e-7)


def test_compute_bound_and_memory_bound(spec: AcceleratorSpec) -> None:
    c88, c44 = layer_cost(CONV, 8, 8, spec), layer_cost(CONV, 4, 4, spec)
    assert not c88.memory_bound and c88.latency_s == c88.compute_s
    assert c44.memory_bound and c44.latency_s == c44.memory_s


def test_bricks_per_mac(spec: AcceleratorSpec) -> None:
    expected = {(8, 8): 16, (4, 4): 4, (2, 8): 4, (8, 2): 4, (2, 2): 1, (1, 1): 1, (3, 5): 6, (6, 7): 12}
    assert {b: spec.bricks_per_mac(*b) for b in expected} == expected
    assert spec.e_mac(8, 8) == approx(16 * 2.87e-14)


@pytest.mark.parametrize("bits", [(0, 8), (8, 0), (9, 8), (8, 9), (2.5, 8), (True, 8)])
def test_unsupported_bits_rejected(spec: AcceleratorSpec, bits: tuple) -> None:
    with pytest.raises(TightfitError, match=r"\[1, 8\]"):
        layer_cost(CONV, *bits, spec)


# --- properties over real networks ----------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["mbv2", "resnet20"])
def test_fewer_bits_never_cost_more(spec: AcceleratorSpec, model_name: str, request: pytest.FixtureRequest) -> None:
    layers = extract_layers(request.getfixturevalue(model_name), SHAPE)
    for layer in layers:
        costs = {(w, a): layer_cost(layer, w, a, spec) for w, a in itertools.product(BITS, BITS)}
        for (w, a), c in costs.items():
            for lower in ((w - 1, a), (w, a - 1)):
                if lower in costs:
                    assert costs[lower].latency_s <= c.latency_s, (layer.name, lower, (w, a))
                    assert costs[lower].energy_j <= c.energy_j, (layer.name, lower, (w, a))


def test_depthwise_is_memory_bound_by_default(spec: AcceleratorSpec, mbv2: nn.Module) -> None:
    """With the packaged parameters a 3x3 depthwise conv does 9 MACs per output element, too few to hide
    the traffic of its activations: memory-bound at every bit pair."""
    depthwise = [layer for layer in extract_layers(mbv2, SHAPE) if layer.kind == "depthwise"]
    assert len(depthwise) == 17
    for layer, w, a in itertools.product(depthwise, BITS, BITS):
        assert layer_cost(layer, w, a, spec).memory_bound, (layer.name, w, a)


# --- networks -------------------------------------------------------------------------------------------


def test_network_cost_sums_layers(spec: AcceleratorSpec) -> None:
    small = LayerOp("stem", "conv", 3, 1, 3, 1, 1, 4, 4, 4, 4)  # 27 weights
    layers = [small, CONV]
    cost = network_cost(layers, {"stem": (3, 8), "conv": (4, 4)}, spec)
    parts = [layer_cost(small, 3, 8, spec), layer_cost(CONV, 4, 4, spec)]
    assert cost.latency_ms == approx(sum(p.latency_s for p in parts) * 1e3)
    assert cost.energy_mj == approx(sum(p.energy_j for p in parts) * 1e3)
    assert cost.bitops == 27 * 16 * 3 * 8 + 294912 * 16
    assert cost.size_bytes == 11 + 2304  # 27 * 3 bits = 81 bits -> 11 bytes, rounded up per layer
    assert [(e.name, e.w_bits, e.a_bits) for e in cost.per_layer] == [("stem", 3, 8), ("conv", 4, 4)]
    assert NetworkCost.from_json(cost.to_json()) == cost


def test_network_cost_policy_forms(spec: AcceleratorSpec, mbv2: nn.Module) -> None:
    layers = extract_layers(mbv2, SHAPE)
    uniform = network_cost(layers, (4, 4), spec)
    assert network_cost(layers, lambda _name: (4, 4), spec) == uniform
    assert network_cost(layers, {}, spec, default=(4, 4)) == uniform
    assert network_cost(layers, (4, 4)) == uniform  # the packaged Bit Fusion by default
    assert uniform.size_bytes == sum(layer.weight_count for layer in layers) // 2
    with pytest.raises(TightfitError, match="stem.0"):
        network_cost(layers, {}, spec)
    with pytest.raises(TightfitError, match="pair"):
        network_cost(layers, {"stem.0": 4}, spec, default=(8, 8))


# --- the accelerator file -------------------------------------------------------------------------------


def test_yaml_round_trips(spec: AcceleratorSpec, tmp_path: Path) -> None:
    path = save_accelerator(spec, tmp_path / "bf.yaml")
    assert load_accelerator(path) == spec
    assert AcceleratorSpec.from_json(spec.to_json()) == spec


def test_user_accelerator_file_changes_the_result(spec: AcceleratorSpec, tmp_path: Path) -> None:
    # Half the bricks, 4x the bandwidth, twice the DRAM energy.
    path = write_yaml(tmp_path / "mine.yaml", name="mine", bitbricks=4096, dram_bandwidth_bytes_per_s="48e9",
                      energy_per_dram_byte_j=2.4e-10)
    mine = load_accelerator(path)
    assert (mine.name, mine.bitbricks, mine.dram_bandwidth_bytes_per_s) == ("mine", 4096, 48e9)
    c = layer_cost(CONV, 4, 4, mine)
    assert c.compute_s == approx(294912 * 4 / (4096 * 5e8))  # 5.76e-7, doubled
    assert c.memory_s == approx(3840 / 48e9)  # 8e-8, a quarter
    assert c.latency_s == approx(5.76e-7)  # the 4x4 layer turns compute-bound
    assert c.energy_j == approx(294912 * 4 * 2.87e-14 + 3840 * 2.4e-10)
    assert not c.memory_bound and layer_cost(CONV, 4, 4, spec).memory_bound


@pytest.mark.parametrize(("text", "field"), [
    ("name: [unclosed\n", "YAML"),
    ("- just\n- a list\n", "mapping"),
])
def test_malformed_yaml_names_the_file(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(TightfitError, match=field) as err:
        load_accelerator(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"bitbricks": None}, "bitbricks"),
    ({"energy_per_dram_byte_j": -1.0e-10}, "energy_per_dram_byte_j"),
    ({"frequency_hz": 0}, "frequency_hz"),
    ({"bitbricks": 8192.5}, "bitbricks"),
    ({"dram_bandwidth_bytes_per_s": "fast"}, "dram_bandwidth_bytes_per_s"),
    ({"dram_bandwidth_bytes_per_s": ".inf"}, "dram_bandwidth_bytes_per_s"),
    ({"max_bits": "true"}, "max_bits"),
    ({"sram_bytes": 114688}, "sram_bytes"),
    ({"name": '""'}, "name"),
    ({"min_bits": 9}, "min_bits"),
])
def test_bad_field_names_file_and_field(tmp_path: Path, overrides: dict, field: str) -> None:
    path = write_yaml(tmp_path / "acc.yaml", **overrides)
    with pytest.raises(TightfitError, match=field) as err:
        load_accelerator(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TightfitError, match="nope.yaml"):
        load_accelerator(tmp_path / "nope.yaml")


# --- layer extraction -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["mbv2", "resnet20"])
def test_extract_layers_matches_flop_counter(model_name: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(model_name)
    layers = extract_layers(model, SHAPE)
    assert sum(layer.macs for layer in layers) == count_flops(model, SHAPE) // 2
    assert layers[-1].kind == "linear" and layers[-1].out_channels == 10
    assert layers[0].in_channels == 3 and (layers[0].in_h, layers[0].in_w) == (32, 32)


def test_extract_layers_restores_modes_and_hooks() -> None:
    model = build_model(ModelSpec("mobilenetv2", 32, 3, 10, 0.5))
    model.train()
    model.stem.eval()  # a mixed state must come back as it was
    before = {name: m.training for name, m in model.named_modules()}
    layers = extract_layers(model, SHAPE)
    assert {name: m.training for name, m in model.named_modules()} == before
    assert all(not m._forward_hooks for m in model.modules())
    names = dict(model.named_modules())
    kinds = {layer.kind for layer in layers}
    assert kinds == {"conv", "depthwise", "linear"}
    for layer in layers:
        module = names[layer.name]
        assert isinstance(module, (nn.Conv2d, nn.Linear))
        assert layer.weight_count == module.weight.numel()
    assert LayerOp.from_json(layers[1].to_json()) == layers[1]


def test_layer_op_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONV.kernel = 5  # type: ignore[misc]
