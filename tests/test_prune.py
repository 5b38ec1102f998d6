"""AMC: coupled channel groups, real surgery, the budget clamp, reconstruction, the search loop."""

from __future__ import annotations

import random

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tightfit.errors import TightfitError
from tightfit.export.onnx import export_onnx
from tightfit.methods.prune.amc import AMCConfig, PruningEnv, search
from tightfit.methods.prune.groups import PrunableNetwork, keep_channels
from tightfit.methods.prune.surgery import prune_channels, reconstruct
from tightfit.methods.rl.ddpg import DDPGConfig
from tightfit.metrics import measure_complexity
from tightfit.models import ModelSpec, build_model

SHAPE = (3, 16, 16)


def _net(family: str, width: float = 0.5) -> PrunableNetwork:
    torch.manual_seed(0)
    model = build_model(ModelSpec(family, 16, 3, 10, width))
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so pruning changes something
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return PrunableNetwork(model.eval(), SHAPE)


@pytest.mark.parametrize("family", ["resnet20", "mobilenetv2", "plain20"])
def test_keeping_every_channel_leaves_the_outputs_unchanged(family):
    net = _net(family)
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        assert torch.equal(prune_channels(net, net.full())(x), net.model(x))


@pytest.mark.parametrize("family", ["resnet20", "mobilenetv2"])
def test_pruning_really_shrinks_the_network_by_the_predicted_flops_and_params(family):
    net = _net(family)
    rng = random.Random(0)
    keep = [keep_channels(g.channels, rng.uniform(0, 0.8), 8) for g in net.groups]
    pruned = prune_channels(net, keep)
    before, after = measure_complexity(net.model, SHAPE), measure_complexity(pruned, SHAPE)
    assert after.flops == pytest.approx(net.cost(keep, "flops"), rel=1e-9)
    assert after.flops < before.flops and after.params < before.params
    convs = sum(m.weight.numel() for m in pruned.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert convs == pytest.approx(net.cost(keep, "params"), rel=1e-9)


def test_a_residual_network_prunes_its_coupled_channels_together_and_still_runs_and_exports(tmp_path):
    net = _net("resnet20")
    stream = [g for g in net.groups if "shortcut" in g.root or g.root.startswith("stem")]
    assert stream, "the residual streams are groups of their own"
    keep = [max(1, g.channels // 2) for g in net.groups]
    pruned = prune_channels(net, keep)
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        y = pruned(x)
    assert y.shape == (2, 10)
    for block in pruned.blocks:  # both sides of every residual add shrank alike
        assert block.conv2.out_channels == (block.shortcut[0].out_channels if len(block.shortcut._modules) else
                                            block.conv1.in_channels)
    path = export_onnx(pruned, SHAPE, tmp_path / "pruned.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    assert np.abs(got - y.numpy()).max() < 1e-4


def test_groups_follow_execution_order_and_depthwise_convs_shrink_with_their_expansion():
    net = _net("mobilenetv2")
    order = [layer.op.name for layer in net.layers]
    firsts = [order.index(g.layer.name) for g in net.groups]
    assert firsts == sorted(firsts)
    for layer in net.layers:
        if layer.op.kind == "depthwise":
            assert layer.out_group is not None and layer.in_group in (None, layer.out_group)
            expand = [x for x in net.layers if x.out_group == layer.out_group and x.op.kind == "conv"]
            assert expand, "the expansion conv feeding a depthwise conv is in its group"


def _env(net: PrunableNetwork, budget: float, metric: str = "flops", multiple: int = 8) -> PruningEnv:
    config = AMCConfig(metric=metric, budget=budget, multiple=multiple, episodes=1)
    return PruningEnv(net, config, lambda keep: (0.5, None))


@pytest.mark.parametrize(("family", "metric", "budget", "multiple"), [
    ("resnet20", "flops", 0.5, 8), ("mobilenetv2", "flops", 0.3, 8), ("mobilenetv2", "params", 0.5, 1),
    ("plain20", "flops", 0.25, 1),
])
def test_the_clamp_meets_the_budget_for_any_actions(family, metric, budget, multiple):
    net = _net(family)
    env = _env(net, budget, metric, multiple)
    rng = np.random.default_rng(0)
    for episode in range(30):
        env.reset(seed=episode)
        done, info = False, {}
        style = episode % 3  # random, never prune, prune everything as far as allowed
        while not done:
            a = rng.uniform(0, 1, 1) if style == 0 else np.array([0.0 if style == 1 else 1.0])
            state, _, done, _, info = env.step(a)
            assert state.shape == (11,) and state.min() >= 0.0 and state.max() <= 1.0
        assert info[f"{metric}_ratio"] <= budget + 1e-12
        if style == 1:  # never pruning by choice: the clamp alone made it fit, and not by much more
            assert info[f"{metric}_ratio"] > 0.8 * budget


def test_an_impossible_budget_is_refused_with_the_least_reachable_share():
    with pytest.raises(TightfitError, match="cannot be met: pruning every group as far as allowed leaves"):
        _env(_net("resnet20"), 0.01)


@pytest.mark.parametrize("family", ["plain20", "resnet20"])
def test_reconstruction_brings_the_pruned_outputs_closer_to_the_original_and_repeats_exactly(family):
    net = _net(family)
    keep = [keep_channels(g.channels, 0.5, 1) for g in net.groups]
    images = torch.randn(64, *SHAPE)
    x = torch.randn(16, *SHAPE)
    with torch.no_grad():
        target = net.model(x)
        plain = (prune_channels(net, keep)(x) - target).pow(2).mean()
        fits = [reconstruct(prune_channels(net, keep), net, keep, [images]) for _ in range(2)]
        fitted = (fits[0](x) - target).pow(2).mean()
    assert fitted < plain
    # dead ReLU channels make the fit rank-deficient; plain least squares then varied from run to run
    for a, b in zip(fits[0].parameters(), fits[1].parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_search_returns_a_budget_meeting_policy_and_resumes(tmp_path):
    net = _net("resnet20")

    def evaluate(keep):  # a stand-in accuracy that prefers keeping the early groups
        share = [k / g.channels for k, g in zip(keep, net.groups, strict=True)]
        return 0.5 + 0.4 * share[0] - 0.1 * share[-1], None

    config = AMCConfig(budget=0.5, episodes=6, ddpg=DDPGConfig(warmup_episodes=3, batch_size=8))
    first = search(net, AMCConfig(**{**config.__dict__, "episodes": 4}), evaluate, progress=False)
    assert len(first.history) == 4
    ckpt = tmp_path / "amc.pt"
    done = search(net, config, evaluate, checkpoint=ckpt, progress=False)
    assert len(done.history) == 6 and done.best["flops_ratio"] <= 0.5
    assert done.best["reward"] == max(h["reward"] for h in done.history)
    again = search(net, config, evaluate, checkpoint=ckpt, progress=False)  # nothing left to run
    assert again.history == done.history


def test_fine_grained_pruning_sets_each_layers_sparsity_and_packs_smaller():
    from tightfit.methods.prune.finegrained import SparseNetwork, nonzero_weights, packed_bytes, sparsify

    net = SparseNetwork(_net("resnet20").model, SHAPE)
    keep = [g.channels // 4 for g in net.groups]
    sparse = sparsify(net.model, net.sparsity(keep))
    modules = dict(sparse.named_modules())
    for g, k in zip(net.groups, keep, strict=True):
        assert int((modules[g.root].weight != 0).sum()) == k
    assert nonzero_weights(sparse) == net.cost(keep, "params") == sum(keep)
    assert packed_bytes(sparse) < 0.3 * 4 * sum(g.channels for g in net.groups)
    env = PruningEnv(net, AMCConfig(metric="params", budget=0.3, multiple=1, max_remove=0.95, episodes=1),
                     lambda keep: (0.5, None))
    env.reset()
    done, info = False, {}
    while not done:
        _, _, done, _, info = env.step(np.array([0.0]))
    assert info["params_ratio"] <= 0.3


def test_run_prunes_as_step_two_and_the_export_rebuilds_the_pruned_network(tmp_path, capsys):
    import json

    from tightfit.cli.main import main

    out = tmp_path / "r"
    assert main(["run", "--model", "resnet20", "--epochs", "1", "--prune", "0.5", "--amc-episodes", "4",
                 "--amc-warmup", "2", "--finetune-epochs", "1", "--out", str(out), "--no-progress"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["pruning"]["flops_ratio"] <= 0.5 and card["pruning"]["episodes"] == 4
    spec = json.loads((out / "model.json").read_text())
    assert spec["keep"] == card["pruning"]["keep"]
    state = json.loads((out / "state.json").read_text())
    assert [r["stage"] for r in state["completed"]] == ["train", "prune", "export"]
    assert card["flops"] <= 0.5 * state["completed"][1]["results"]["flops_before"]
    assert "Step 2: channel pruning (AMC)" in (out / "report.html").read_text()
    (out / "model.onnx").unlink()
    assert main(["export", str(out)]) == 0 and (out / "model.onnx").is_file()


def test_prune_a_users_own_model_from_module_function_and_weights(tmp_path, capsys):
    import json

    import factory_nets
    from safetensors.torch import save_file

    from tightfit.cli.main import main

    save_file(factory_nets.gray_10().state_dict(), str(tmp_path / "w.safetensors"))
    out = tmp_path / "p"
    assert main(["prune", "--model", "factory_nets:gray_10", "--weights", str(tmp_path / "w.safetensors"),
                 "--flops", "0.5", "--amc-episodes", "3", "--amc-warmup", "2", "--finetune-epochs", "1",
                 "--channel-multiple", "1", "--out", str(out), "--no-progress"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["pruning"]["flops_ratio"] <= 0.5 and (out / "model.onnx").is_file()
    assert json.loads((out / "model.json").read_text())["factory"] == "factory_nets:gray_10"


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "nowhere_module:make", "--flops", "0.5"], "cannot be loaded"),
    (["--model", "resnet20"], "give a budget"),
    (["--model", "mobilenetv2", "--flops", "0.5"], "do not fit this model"),
])
def test_prune_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    from safetensors.torch import save_file

    from tightfit.cli.main import main

    torch.manual_seed(0)
    save_file(build_model(ModelSpec("resnet20", 8, 1, 10)).state_dict(), str(tmp_path / "w.safetensors"))
    assert main(["prune", *args, "--weights", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_latency_model_prices_pruned_networks_exactly_on_an_analytic_target():
    from tightfit.hardware import CostModel, get_target
    from tightfit.methods.prune.latency import LatencyModel

    net = _net("mobilenetv2")
    target = get_target("bitfusion")
    model = LatencyModel(net, target, progress=False)
    keep = [keep_channels(g.channels, 0.5, 8) for g in net.groups]
    priced = CostModel(target).of_model(prune_channels(net, keep), SHAPE).latency_ms
    assert model.cost(keep) == pytest.approx(priced, rel=1e-9)
    assert model.full_ms == pytest.approx(CostModel(target).of_model(net.model, SHAPE).latency_ms, rel=1e-9)


def test_a_latency_budget_on_a_measured_target_is_met_by_the_clamp():
    from tightfit.hardware import get_target
    from tightfit.methods.prune.latency import LatencyModel

    net = _net("resnet20")
    model = LatencyModel(net, get_target("cpu-ort"), progress=False)
    floor = model.cost([keep_channels(g.channels, 0.8, 8) for g in net.groups]) / model.full_ms
    assert floor <= 1.0
    budget = (1.0 + floor) / 2  # reachable whatever the (one-pass, noisy) timing of the test gave
    env = PruningEnv(net, AMCConfig(metric="latency", budget=budget, episodes=1), lambda keep: (0.5, None),
                     model.cost)
    env.reset()
    done, info = False, {}
    while not done:
        _, _, done, _, info = env.step(np.array([0.1]))
    assert info["budget_ratio_used"] <= budget
