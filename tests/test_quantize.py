"""HAQ: quantizers, the policy, the bits mapping, bit lowering, the packed file, the int8 ONNX model, the search."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tightfit.errors import TightfitError
from tightfit.hardware import CostModel, get_target
from tightfit.hardware.layers import extract_layers
from tightfit.methods.quantize import costs as quantize_costs
from tightfit.methods.quantize.costs import AcceleratorCost, OrtCost, SizeCost
from tightfit.methods.quantize.deploy import mixed_int8_onnx, module_path
from tightfit.methods.quantize.finetune import quantized_accuracy, recalibrate_batch_norm
from tightfit.methods.quantize.haq import (
    HAQConfig,
    QuantizationEnv,
    bits_of_action,
    decision_units,
    lower_to_budget,
    pinned_layers,
    raise_within_budget,
    search,
    top_policies,
)
from tightfit.methods.quantize.inference import FrozenQuantLayer, inference_copy
from tightfit.methods.quantize.packing import pack, pack_bits, unpack, unpack_bits
from tightfit.methods.quantize.policy import (
    Calibration,
    LayerBits,
    QuantLayer,
    QuantPolicy,
    quantizable_layers,
    quantize_model,
)
from tightfit.methods.quantize.quantizers import kl_clip, kmeans, linear_quantize
from tightfit.methods.rl.ddpg import DDPGConfig
from tightfit.models import ModelSpec, build_model

SHAPE = (3, 16, 16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model(ModelSpec("mobilenetv2", 16, 3, 10, 0.35))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def calibration(model):
    gen = torch.Generator().manual_seed(1)
    return Calibration(model, [torch.randn(16, *SHAPE, generator=gen) for _ in range(2)])


def test_the_bits_mapping_gives_each_width_from_2_to_8_an_equal_share_of_the_actions():
    actions = np.linspace(0, 1, 7001)
    counts = np.bincount([bits_of_action(a) for a in actions], minlength=9)[2:]
    assert counts.min() > 0 and counts.max() - counts.min() <= 2, counts
    assert bits_of_action(0.0) == 2 and bits_of_action(1.0) == 8
    assert [bits_of_action(a) for a in (0.5 / 7, 1.5 / 7, 3.5 / 7, 6.5 / 7)] == [2, 3, 5, 8]


@pytest.mark.parametrize("bits", [2, 3])
def test_kl_clipping_quantizes_a_gaussian_better_than_max_clipping(bits):
    w = torch.randn(50_000, generator=torch.Generator().manual_seed(0))
    kl = linear_quantize(w, bits, kl_clip(w, bits, signed=True), signed=True)
    top = linear_quantize(w, bits, w.abs().max(), signed=True)
    assert torch.mean((kl - w) ** 2) < 0.8 * torch.mean((top - w) ** 2)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_kl_clipping_of_a_relu_output_is_not_misled_by_its_spike_of_zeros(bits):
    a = torch.randn(100_000, generator=torch.Generator().manual_seed(0)).clamp_min(0)  # half exact zeros
    kl = linear_quantize(a, bits, kl_clip(a, bits, signed=False), signed=False)
    top = linear_quantize(a, bits, a.max(), signed=False)
    assert torch.mean((kl - a) ** 2) < 0.8 * torch.mean((top - a) ** 2)


def test_linear_quantization_uses_the_published_grids():
    x = torch.linspace(-2, 2, 101)
    q = linear_quantize(x, 3, 1.0, signed=True)  # s = 1 / 3, levels -3..3
    assert set(torch.round(q * 3).int().tolist()) == set(range(-3, 4))
    a = linear_quantize(x.clamp_min(0), 2, 1.0, signed=False)  # s = 1 / 3, levels 0..3
    assert set(torch.round(a * 3).int().tolist()) == {0, 1, 2, 3}


def test_kmeans_gives_2_to_the_b_sorted_centroids_near_their_weights():
    w = torch.randn(4000, generator=torch.Generator().manual_seed(0))
    centroids, labels = kmeans(w, 3)
    assert centroids.numel() == 8 and torch.all(centroids[1:] > centroids[:-1])
    assert torch.mean((centroids[labels] - w) ** 2) < 0.05


def test_a_policy_quantizes_exactly_the_layers_it_names(model, calibration):
    names = quantizable_layers(model)
    policy = QuantPolicy({names[1]: LayerBits(4, 4), names[2]: LayerBits(8, 32)})
    q = quantize_model(model, policy, calibration)
    quantized = {n for n, m in q.named_modules() if isinstance(m, QuantLayer)}
    assert quantized == {names[1], names[2]}
    layer = q.get_submodule(names[1])
    assert torch.unique(layer.weight().detach()).numel() <= 2**4 - 1
    assert QuantPolicy.from_json(policy.to_json()) == policy
    with pytest.raises(TightfitError, match="1..8 bits"):
        LayerBits(9, 8)
    with pytest.raises(TightfitError, match="no conv/linear"):
        quantize_model(model, QuantPolicy({"nope": LayerBits(4, 4)}), calibration)


def test_bit_lowering_always_meets_the_budget(model):
    layers = extract_layers(model, SHAPE)
    cost = AcceleratorCost(model, SHAPE, get_target("bitfusion"), "latency")
    units = decision_units(layers, "mixed")
    lowest, highest = cost({op.name: LayerBits(2, 2) for op in layers}), cost({op.name: LayerBits(8, 8)
                                                                               for op in layers})
    rng = random.Random(0)
    for _ in range(25):
        budget = rng.uniform(lowest, highest)
        config = HAQConfig(budget=budget)
        bits = {op.name: LayerBits(rng.randint(2, 8), rng.randint(2, 8)) for op in layers}
        lowered = lower_to_budget(bits, units, cost, config)
        assert cost(lowered) <= budget
        assert all(lowered[n].w_bits <= bits[n].w_bits and lowered[n].a_bits <= bits[n].a_bits for n in bits)
        assert all(2 <= b.w_bits <= 8 and 2 <= b.a_bits <= 8 for b in lowered.values())
    with pytest.raises(TightfitError, match="cannot be met"):
        QuantizationEnv(units, HAQConfig(budget=0.5 * lowest), cost, lambda p: 0.0, 0.0)


def test_keep_ends_holds_the_first_and_last_layer_at_8_bits_through_decisions_and_lowering(model):
    layers = extract_layers(model, SHAPE)
    names = [op.name for op in layers]
    cost = AcceleratorCost(model, SHAPE, get_target("bitfusion"), "latency")
    units = decision_units(layers, "mixed")
    config = HAQConfig(budget=cost({n: LayerBits(3, 3) for n in names}))
    assert pinned_layers(names, config) == {names[0], names[-1]}
    assert not pinned_layers(names, HAQConfig(budget=1.0, keep_ends=False))
    assert not pinned_layers(names, HAQConfig(budget=1.0, mode="weights"))
    env = QuantizationEnv(units, config, cost, lambda p: 0.0, 0.0)
    rng = np.random.default_rng(0)
    env.reset()
    done, info = False, {}
    while not done:  # actions near 0 would give 2 bits; the ends must not follow them
        _, _, done, _, info = env.step(rng.uniform(0.0, 0.2, 1))
    bits = QuantPolicy.from_json(info["policy"]).bits
    assert bits[names[0]] == bits[names[-1]] == LayerBits(8, 8)
    high = {n: LayerBits(8, 8) for n in names}  # lowering from the top must leave the ends alone too
    lowered = lower_to_budget(high, units, cost, config, pinned_layers(names, config))
    assert cost(lowered) <= config.budget
    assert lowered[names[0]] == lowered[names[-1]] == LayerBits(8, 8)
    assert any(b.w_bits < 8 for n, b in lowered.items() if n not in (names[0], names[-1]))


def test_filling_the_budget_only_raises_stays_within_it_and_leaves_no_raise_that_fits(model):
    layers = extract_layers(model, SHAPE)
    names = [op.name for op in layers]
    cost = AcceleratorCost(model, SHAPE, get_target("bitfusion"), "latency")
    units = decision_units(layers, "mixed")
    odd = {n: LayerBits(3, 3) for n in names}
    config = HAQConfig(budget=1.02 * cost(odd))
    pinned = frozenset((names[0],))
    filled = raise_within_budget(odd, units, cost, config, pinned)
    assert cost(filled) <= config.budget
    assert filled[names[0]] == odd[names[0]]
    assert all(filled[n].w_bits >= 3 and filled[n].a_bits >= 3 for n in names)
    assert sum(b.w_bits + b.a_bits for b in filled.values()) > 6 * len(names), "2% of slack left unused"
    for u in units:  # maximal: any one more bit breaks the budget
        b = filled[u.layers[0]]
        if u.layers[0] in pinned or QuantizationEnv._get(b, u.kind) == 8:
            continue
        more = QuantizationEnv._set(b, u.kind, QuantizationEnv._get(b, u.kind) + 1)
        assert cost({**filled, u.layers[0]: more}) > config.budget
    assert raise_within_budget(filled, units, cost, config, pinned) == filled


def test_cpu_ort_prices_the_uniform_policies_at_the_model_measured_end_to_end(model, monkeypatch):
    """A table calibrated for fp32 (as a search leaves it) but not for int8 must not decide int8 against fp32:
    each precision's operators are scaled to the model's own end-to-end latency at that precision."""
    cost_model = CostModel(get_target("cpu-ort"), progress=False)
    cost_model.table.scales[32] = 0.25
    timed = []

    def measure(self, policies, desc=""):  # noqa: ANN001, ANN202
        timed.append(list(policies))
        return {"fp32": 2.0, "int8": 1.5, "alternate-even": 1.75, "alternate-odd": 1.75}

    monkeypatch.setattr(OrtCost, "measure", measure)
    cost = OrtCost(model, cost_model)
    all_int8 = {n: LayerBits(8, 8) for layers in cost.operators for n in layers}
    assert cost(all_int8) == pytest.approx(1.5)
    assert cost({}) == pytest.approx(2.0)
    assert timed == [["fp32", "int8", "alternate-even", "alternate-odd"]]
    again = OrtCost(model, cost_model, anchor_ms=cost.anchor_ms)
    assert again.scales == cost.scales and len(timed) == 1


def test_cpu_ort_charges_each_change_of_precision_by_the_alternating_anchors(model, monkeypatch):
    """Alternating policies measured above what their operators cost fit a price per element of the tensors
    where the precision changes; a policy with more changes then costs more than one with the same operators
    int8 in one run, and the uniform policies still cost what they measured."""
    cost_model = CostModel(get_target("cpu-ort"), progress=False)
    n = len(quantize_costs.operator_layers(model))
    free = OrtCost(model, cost_model, anchor_ms={"fp32": 2.0, "int8": 1.5, "alternate-even": 0.0,
                                                 "alternate-odd": 0.0})
    assert free.ms_per_changed_element == 0.0  # measured below the operators' price: no negative charge
    price = 2e-6  # ms per element
    anchors = {"fp32": 2.0, "int8": 1.5}
    for name, p in quantize_costs.anchor_policies(n).items():
        if name not in anchors:
            anchors[name] = free.of_precisions(p) + price * free.changed_elements(p)
    cost = OrtCost(model, cost_model, anchor_ms=anchors)
    assert cost.ms_per_changed_element == pytest.approx(price)
    assert cost.of_precisions([8] * n) == pytest.approx(1.5) and cost.of_precisions([32] * n) == pytest.approx(2.0)
    half = n // 2
    runs = [8] * half + [32] * (n - half)
    scattered = sorted(range(n), key=lambda i: (i % 2, i))[:half]  # the same count of int8 operators, apart
    scattered_p = [8 if i in scattered else 32 for i in range(n)]
    assert cost.of_precisions(scattered_p) - free.of_precisions(scattered_p) == pytest.approx(
        price * cost.changed_elements(scattered_p))
    assert cost.changed_elements(scattered_p) > cost.changed_elements(runs)


def test_batch_norm_recalibration_takes_the_statistics_of_the_given_batches():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    x = torch.randn(32, 3, 8, 8) * 2 + 1
    recalibrate_batch_norm(net, [(x[:16], None), (x[16:], None)], count=2)
    with torch.no_grad():
        h = net[0](x)
    assert torch.allclose(net[1].running_mean, h.mean((0, 2, 3)), atol=1e-5)
    assert net[1].momentum == 0.1 and not net.training  # restored for later training, left in eval mode


@pytest.mark.parametrize("method", ["linear", "kmeans"])
def test_the_inference_copy_computes_the_fake_quantized_network_with_batch_norm_folded(model, calibration, method):
    """Weights-only policies leave nothing to flip, so the copy must agree to float rounding; with 4-bit
    activations a rounding difference may move a value one level, so only the predictions are compared."""
    names = quantizable_layers(model)
    x = torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(5))
    weights_only = quantize_model(model, QuantPolicy.uniform(names, 3, 32, method), calibration)
    frozen = inference_copy(weights_only)
    assert not any(isinstance(m, QuantLayer) for m in frozen.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in frozen.modules())  # every one follows a conv
    with torch.no_grad():
        expected, got = weights_only(x), frozen(x)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(expected, model(x), atol=1e-2)  # the weights really are quantized
    both = quantize_model(model, QuantPolicy.uniform(names, 4, 4, method), calibration)
    with torch.no_grad():
        agree = (inference_copy(both)(x).argmax(1) == both(x).argmax(1)).float().mean()
    assert agree >= 0.95


def test_the_inference_copy_keeps_the_batch_norm_of_a_layer_left_in_float(model, calibration):
    names = quantizable_layers(model)
    q = quantize_model(model, QuantPolicy({n: LayerBits(8, 8) for n in names[1:]}), calibration)
    frozen = inference_copy(q)
    stem = dict(frozen.named_modules())[names[0].rpartition(".")[0]]
    assert isinstance(stem[0], torch.nn.Conv2d) and isinstance(stem[1], torch.nn.BatchNorm2d)
    assert sum(isinstance(m, FrozenQuantLayer) for m in frozen.modules()) == len(names) - 1
    x = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert (frozen(x).argmax(1) == q(x).argmax(1)).all()


def test_the_packed_file_is_the_reported_size_and_decodes_to_the_quantized_weights(model, calibration, tmp_path):
    names = quantizable_layers(model)
    rng = random.Random(0)
    for method in ("linear", "kmeans"):
        policy = QuantPolicy({n: LayerBits(rng.randint(1 if method == "kmeans" else 2, 8), 32) for n in names},
                             method)
        q = quantize_model(model, policy, calibration)
        path = tmp_path / f"{method}.safetensors"
        reported = pack(q, policy, path)
        assert path.stat().st_size == reported
        layers = {op.name: op for op in extract_layers(model, SHAPE)}
        payload = SizeCost(model, SHAPE, method)(policy.bits)
        assert payload == sum(SizeCost(model, SHAPE, method).layer_bytes(layers[n], b.w_bits)
                              for n, b in policy.bits.items())
        floats = sum(v.numel() for k, v in model.state_dict().items()
                     if v.is_floating_point() and not (k.endswith(".weight") and k[:-7] in names))
        header = 8 + int.from_bytes(path.read_bytes()[:8], "little")  # safetensors: u64 length, then JSON
        assert reported == header + payload + 4 * floats  # and nothing else: no float copy of a weight
        state, decoded = unpack(path)
        assert decoded == policy
        for n in names:
            assert torch.equal(state[f"{n}.weight"], q.get_submodule(n).weight().detach().float()), n


def test_bit_packing_round_trips_every_width():
    rng = np.random.default_rng(0)
    for bits in range(1, 9):
        codes = rng.integers(0, 2**bits, 1001).astype(np.uint8)
        packed = pack_bits(codes, bits)
        assert packed.nbytes == -(-1001 * bits // 8)
        assert np.array_equal(unpack_bits(packed, bits, 1001), codes)


def test_a_truncated_packed_file_is_refused_clearly(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00")
    with pytest.raises(TightfitError, match="not a readable packed model"):
        unpack(bad)


def test_exported_node_names_map_back_to_their_modules():
    assert module_path("/blocks/blocks.3/conv/conv.0/conv.0.0/Conv") == "blocks.3.conv.0.0"
    assert module_path("/stem/stem.0/Conv") == "stem.0"
    assert module_path("/classifier/Gemm") == "classifier"
    assert module_path("Identity_3") == ""


def test_the_int8_onnx_model_agrees_with_the_fake_quantized_pytorch_model(model, calibration):
    """Tolerance: the same top-1 on at least 90% of random inputs and logits within 10% of their spread;
    ONNX Runtime also quantizes operator outputs and residual adds, which PyTorch keeps in float."""
    names = quantizable_layers(model)
    ops = len(model.plan.blocks) + 2
    precisions = [8 if i % 3 != 1 else 32 for i in range(ops)]  # a mixed policy
    from tightfit.methods.quantize.costs import operator_layers

    bits = {n: LayerBits(8, 8) for i, layer_names in enumerate(operator_layers(model)) if precisions[i] == 8
            for n in layer_names}
    assert bits and len(bits) < len(names)
    q = quantize_model(model, QuantPolicy(bits), calibration)
    gen = torch.Generator().manual_seed(2)
    cal = [torch.randn(16, *SHAPE, generator=gen).numpy() for _ in range(2)]
    onnx_int8 = mixed_int8_onnx(q, precisions, SHAPE, cal)
    session = ort.InferenceSession(onnx_int8, providers=["CPUExecutionProvider"])
    kinds = {n.op_type for n in __import__("onnx").load_from_string(onnx_int8).graph.node}
    assert "QuantizeLinear" in kinds and "Conv" in kinds
    x = torch.randn(64, *SHAPE, generator=gen)
    with torch.no_grad():
        expected = q(x).numpy()
    got = np.concatenate([session.run(None, {"input": x[i:i + 1].numpy()})[0] for i in range(64)])
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.9
    assert np.abs(got - expected).max() <= 0.1 * (expected.max() - expected.min())


def test_haq_search_returns_a_policy_within_budget(model, calibration):
    layers = extract_layers(model, SHAPE)
    cost = AcceleratorCost(model, SHAPE, get_target("bitfusion"), "energy")
    budget = cost({op.name: LayerBits(4, 4) for op in layers})
    gen = torch.Generator().manual_seed(3)
    batches = [(torch.randn(8, *SHAPE, generator=gen), torch.randint(0, 10, (8,), generator=gen))]
    x_val, y_val = batches[0]

    def accuracy(m):
        with torch.no_grad():
            return float((m(x_val).argmax(1) == y_val).float().mean())

    evaluate = quantized_accuracy(model, calibration, batches, steps=1, lr=1e-3, accuracy=accuracy)
    config = HAQConfig(budget=budget, episodes=4, ddpg=DDPGConfig(warmup_episodes=2, batch_size=8))
    result = search(decision_units(layers, "mixed"), config, cost, evaluate, accuracy(model), progress=False)
    assert len(result.history) == 4
    best = QuantPolicy.from_json(result.best["policy"])
    assert cost(best.bits) <= budget and result.best["cost"] <= budget
    assert set(best.bits) == {op.name for op in layers}


def test_rescoring_picks_the_best_rescored_of_the_top_distinct_policies(model):
    layers = extract_layers(model, SHAPE)
    cost = AcceleratorCost(model, SHAPE, get_target("bitfusion"), "latency")
    budget = cost({op.name: LayerBits(5, 5) for op in layers})

    def mean_w_bits(policy: QuantPolicy) -> float:
        return float(np.mean([b.w_bits for b in policy.bits.values()]))

    # the reward prefers more weight bits, the rescoring fewer: the two choices differ
    config = HAQConfig(budget=budget, episodes=8, rescore_top=4, ddpg=DDPGConfig(warmup_episodes=8, batch_size=8))
    result = search(decision_units(layers, "mixed"), config, cost, lambda p: mean_w_bits(p) / 8, 1.0,
                    progress=False, rescore=lambda p: -mean_w_bits(p))
    top = top_policies(result.history, 4)
    assert len({repr(sorted(h["policy"]["bits"].items())) for h in top}) == len(top) == 4
    assert [r["episode"] for r in result.rescored] == [h["episode"] for h in top]
    fewest = min(top, key=lambda h: mean_w_bits(QuantPolicy.from_json(h["policy"])))
    assert result.best["episode"] == fewest["episode"]
    assert result.best["rescored"] == -mean_w_bits(QuantPolicy.from_json(fewest["policy"]))
    assert cost(QuantPolicy.from_json(result.best["policy"]).bits) <= budget


def test_more_episodes_continue_a_finished_search_as_if_it_had_run_them_at_once(model, tmp_path):
    layers = extract_layers(model, SHAPE)
    cost = AcceleratorCost(model, SHAPE, get_target("bitfusion"), "latency")
    config = HAQConfig(budget=cost({op.name: LayerBits(5, 5) for op in layers}), episodes=7,
                       ddpg=DDPGConfig(warmup_episodes=3, batch_size=8))
    units = decision_units(layers, "mixed")

    def reward(p: QuantPolicy) -> float:
        return float(np.mean([b.w_bits for b in p.bits.values()])) / 8

    at_once = search(units, config, cost, reward, 1.0, progress=False)
    checkpoint = tmp_path / "haq.pt"
    search(units, replace(config, episodes=4), cost, reward, 1.0, checkpoint=checkpoint, progress=False)
    continued = search(units, config, cost, reward, 1.0, checkpoint=checkpoint, progress=False)
    assert continued.history == at_once.history and len(continued.history) == 7
    with pytest.raises(TightfitError, match="already holds 7 episodes, more than the 5 asked"):
        search(units, replace(config, episodes=5), cost, reward, 1.0, checkpoint=checkpoint, progress=False)


def test_a_finished_search_is_rescored_from_its_checkpoint_without_new_episodes(model, tmp_path):
    layers = extract_layers(model, SHAPE)
    cost = AcceleratorCost(model, SHAPE, get_target("bitfusion"), "latency")
    budget = cost({op.name: LayerBits(5, 5) for op in layers})
    config = HAQConfig(budget=budget, episodes=6, ddpg=DDPGConfig(warmup_episodes=6, batch_size=8))
    calls = []

    def reward(p: QuantPolicy) -> float:
        calls.append(p)
        return float(np.mean([b.w_bits for b in p.bits.values()])) / 8

    units, checkpoint = decision_units(layers, "mixed"), tmp_path / "haq.pt"
    first = search(units, config, cost, reward, 1.0, checkpoint=checkpoint, progress=False)
    episodes = len(calls)
    again = search(units, replace(config, rescore_top=3), cost, reward, 1.0, checkpoint=checkpoint,
                   progress=False, rescore=lambda p: -p.bits[layers[1].name].w_bits)
    assert len(calls) == episodes  # no episode ran again
    assert again.history == first.history and len(again.rescored) == 3
