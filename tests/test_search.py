"""ProxylessNAS: the two-path architecture step, the latency term, derivation, resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.nn import functional as F

from tightfit.cli.main import main
from tightfit.data import BatchLoader, Normalize, TensorSet
from tightfit.errors import TightfitError
from tightfit.hardware import CostModel, get_target
from tightfit.methods.search.costs import space_costs
from tightfit.methods.search.derive import constrained_argmax
from tightfit.methods.search.proxyless import ProxylessSearch, SearchConfig
from tightfit.methods.search.supernet import MixedOp, Supernet, Zero, residual_gammas
from tightfit.space import Arch, SearchSpace

SPACE = SearchSpace(8, 1, 10, width_mult=0.35)


@pytest.fixture(scope="module")
def costs():
    return space_costs(CostModel(get_target("bitfusion")), SPACE, "latency")


def _loader(n: int = 64, seed: int = 0) -> BatchLoader:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return BatchLoader(TensorSet(x, y), 16, Normalize((0.5,), (0.25,)), shuffle=True, seed=seed)


def _net(seed: int = 0, spread: float = 1.0) -> Supernet:
    torch.manual_seed(seed)
    net = Supernet(SPACE)
    with torch.no_grad():
        for a in net.alphas():
            a.normal_(0, spread)  # p far from uniform, so that unchanged probabilities mean something
    return net


def test_zero_is_offered_only_where_the_block_keeps_stride_and_width():
    net = Supernet(SPACE)
    for op, spec, (_, index) in zip(net.mixed, SPACE.position_specs(), SPACE.positions(), strict=True):
        has_zero = any(isinstance(c, Zero) for c in op.candidates)
        assert has_zero == (spec.stride == 1 and spec.in_channels == spec.out_channels)
        assert (None in op.choices) == has_zero
        if index > 0:
            assert has_zero
    # at width 0.35 rounding gives stage 1 the first block's width, so its first block may be skipped too
    assert None in net.mixed[0].choices and None not in Supernet(SearchSpace(8, 1, 10)).mixed[0].choices


def test_an_arch_step_moves_only_the_two_sampled_alphas_and_keeps_other_probabilities(costs):
    net = _net()
    search = ProxylessSearch(net, costs, SearchConfig(warmup_epochs=0, epochs=1, arch_lr=0.05), _loader(),
                             _loader(seed=1), progress=False)
    alphas = [a.detach().clone() for a in net.alphas()]
    probs = [op.probs.detach().clone() for op in net.mixed]
    x, y = next(iter(_loader(seed=2)))
    search.arch_step(x, y, torch.Generator().manual_seed(0))
    moved = 0
    for op, a0, p0 in zip(net.mixed, alphas, probs, strict=True):
        others = [i for i in range(len(a0)) if i not in op.sampled]
        assert torch.equal(op.alpha.detach()[others], a0[others])
        assert torch.allclose(op.probs.detach()[others], p0[others], rtol=0, atol=1e-6)
        pair = list(op.sampled)
        assert torch.logsumexp(op.alpha.detach()[pair], 0) == pytest.approx(float(torch.logsumexp(a0[pair], 0)),
                                                                             abs=1e-5)
        moved += not torch.equal(op.alpha.detach()[pair], a0[pair])
    assert moved > len(net.mixed) // 2  # the pair's alphas really were updated


def test_two_path_gate_gives_the_gradient_of_the_explicit_gated_sum():
    torch.manual_seed(0)
    spec = SPACE.position_specs()[1]
    op = MixedOp(spec, SPACE.candidates(0, 1)).eval()
    op.sample_pair(torch.Generator().manual_seed(3))
    x = torch.randn(4, spec.in_channels, spec.in_resolution, spec.in_resolution, requires_grad=True)
    out = op(x)
    w = torch.randn_like(out)
    (out * w).sum().backward()

    x2 = x.detach().clone().requires_grad_(True)
    g = torch.zeros(len(op.choices))
    g[op.sampled[0]] = 1.0
    g.requires_grad_(True)
    explicit = sum(g[j] * op.candidates[j](x2) for j in op.sampled)
    (explicit * w).sum().backward()
    assert torch.allclose(out, explicit)
    assert torch.allclose(op.gates.grad[list(op.sampled)], g.grad[list(op.sampled)], rtol=1e-4)
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)


def test_alpha_gradient_is_the_binaryconnect_estimate_over_the_pair():
    op = MixedOp(SPACE.position_specs()[1], SPACE.candidates(0, 1))
    with torch.no_grad():
        op.alpha.normal_()
    op.sample_pair(torch.Generator().manual_seed(1))
    op.gates.grad = torch.randn(len(op.choices))
    op.set_alpha_grad()
    pair = list(op.sampled)
    alpha = op.alpha.detach().clone().requires_grad_(True)
    # d/dalpha_i of sum_j dL/dg_j p_j over the pair is sum_j dL/dg_j p_j (delta_ij - p_i)
    (op.gates.grad[pair] * F.softmax(alpha[pair], 0)).sum().backward()
    assert torch.allclose(op.alpha.grad, alpha.grad, atol=1e-6)


def test_a_larger_latency_weight_derives_a_faster_network(costs):
    found = {}
    for weight in (0.0, 20.0):
        net = _net(seed=0, spread=0.0)
        config = SearchConfig(warmup_epochs=0, epochs=3, arch_every=1, arch_lr=0.05, loss="add", add_lambda=weight)
        found[weight] = ProxylessSearch(net, costs, config, _loader(), _loader(seed=1), progress=False).run()
    assert found[20.0].argmax_cost < found[0.0].argmax_cost
    assert found[20.0].history[-1].expected_cost < found[0.0].history[-1].expected_cost


def test_the_multiplicative_loss_pulls_expected_latency_below_a_target(costs):
    net = _net(seed=0, spread=0.0)
    start = float(costs.expected([op.probs.detach() for op in net.mixed]))
    config = SearchConfig(warmup_epochs=0, epochs=3, arch_every=1, arch_lr=0.05, target=0.5 * start)
    result = ProxylessSearch(net, costs, config, _loader(), _loader(seed=1), progress=False).run()
    assert result.history[-1].expected_cost < start
    assert result.cost <= 0.5 * start  # the derived network meets the target


def test_constrained_argmax_meets_a_reachable_target_and_is_the_argmax_without_one(costs):
    net = _net(seed=1)
    argmax = net.argmax_arch()
    assert constrained_argmax(net, costs, None) == argmax
    cheapest = costs.of_indices([min(range(len(c)), key=c.__getitem__) for c in costs.per_position])
    target = (cheapest + costs.of_arch(SPACE, argmax)) / 2
    arch = constrained_argmax(net, costs, target)
    assert costs.of_arch(SPACE, arch) <= target < costs.of_arch(SPACE, argmax)


def test_expected_cost_is_the_probability_weighted_sum(costs):
    net = _net(seed=2)
    probs = [op.probs.detach() for op in net.mixed]
    by_hand = costs.fixed + sum(float((p * torch.tensor(c)).sum()) for p, c in zip(probs, costs.per_position,
                                                                                     strict=True))
    assert float(costs.expected(probs)) == pytest.approx(by_hand, rel=1e-6)
    # a one-hot p prices the architecture exactly like the analytic model prices its plain network
    arch = net.argmax_arch()
    plain = CostModel(get_target("bitfusion")).of_plan(SPACE.plan(arch)).latency_ms
    assert costs.of_arch(SPACE, arch) == pytest.approx(plain, rel=1e-9)


def test_the_derived_network_with_inherited_weights_computes_what_the_supernet_path_did():
    net = _net(seed=3).eval()
    arch = net.argmax_arch()
    for op in net.mixed:
        op.sampled, op.gates = (int(op.alpha.argmax()),), None
    derived = net.derived_network(arch, inherit=True).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net(x), derived(x), atol=1e-5)
    with torch.no_grad():
        assert math.isfinite(float(derived(x).sum()))


def test_an_interrupted_search_resumes_at_the_next_epoch(costs, tmp_path):
    config = SearchConfig(warmup_epochs=1, epochs=2, arch_every=2)
    ckpt = tmp_path / "search.pt"

    class Stop(Exception):
        pass

    train = _loader()
    calls = {"epochs": 0}
    real = train.set_epoch

    def stop_at_third(epoch: int) -> None:
        calls["epochs"] += 1
        if calls["epochs"] == 3:
            raise Stop
        real(epoch)

    train.set_epoch = stop_at_third
    with pytest.raises(Stop):
        ProxylessSearch(_net(), costs, config, train, _loader(seed=1), checkpoint=ckpt, progress=False).run()
    resumed = ProxylessSearch(_net(), costs, config, _loader(), _loader(seed=1), checkpoint=ckpt, progress=False)
    assert resumed.start_epoch == 2 and [h.phase for h in resumed.history] == ["warmup", "search"]
    result = resumed.run()
    assert len(result.history) == 3



@pytest.mark.parametrize("shared", [False, True])
def test_tightfit_search_alone_writes_the_architecture_and_a_report(tmp_path, capsys, shared):
    out = tmp_path / "s"
    assert main(["search", "--target", "bitfusion", "--latency", "0.03ms", "--search-warmup", "1",
                 "--search-epochs", "1", "--out", str(out), "--no-progress"] + ["--shared-weights"] * shared) == 0
    found = json.loads((out / "search.json").read_text())
    assert found["config"]["shared_weights"] is shared
    assert found["target"] == 0.03 and found["metric"] == "latency" and found["cost"] <= 0.03
    SearchSpace(8, 1, 10, width_mult=0.35).validate(Arch.parse(found["arch"]))  # digits' space
    assert found["arch"] in capsys.readouterr().out
    assert "Step 1: searched architecture" in (out / "report.html").read_text()
    assert not (out / "card.json").exists() and json.loads((out / "state.json").read_text())["finished"]


def test_a_target_below_the_cheapest_network_is_refused_with_the_numbers(tmp_path, capsys):
    assert main(["search", "--target", "bitfusion", "--latency", "0.002ms", "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--latency 0.002 ms cannot be met on bitfusion" in err and "raise --latency" in err


def test_candidates_start_aligned_all_computing_the_smallest_ones_function():
    torch.manual_seed(0)
    net = Supernet(SearchSpace(16, 3, 10, width_mult=0.5)).eval()
    for op in net.mixed[:6]:
        spec_in = op.candidates[0]
        x = torch.randn(2, _in_channels(spec_in), 16, 16)
        outs = [c(x) for c, b in zip(op.candidates, op.choices, strict=True) if b is not None]
        with torch.no_grad():
            for out in outs[1:]:
                assert torch.allclose(out, outs[0], atol=1e-5)
        assert len({tuple(p.shape) for c in op.candidates for p in c.parameters()}) > 1  # weights of their own


def _in_channels(block: torch.nn.Module) -> int:
    return next(m for m in block.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


def _trained_shared_net(seed: int = 0) -> Supernet:
    """A shared-weights supernet after a few random-path steps, with non-trivial residual scales and BN stats."""
    torch.manual_seed(seed)
    net = Supernet(SearchSpace(16, 3, 10, width_mult=0.5), shared_weights=True)
    for gamma in residual_gammas(net):
        torch.nn.init.normal_(gamma)
    opt = torch.optim.SGD(net.weights(), lr=0.1)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(3):
        net.sample_single(gen)
        loss = F.cross_entropy(net(torch.randn(8, 3, 16, 16)), torch.randint(0, 10, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_shared_candidates_are_slices_of_one_block_and_a_step_on_one_trains_the_others():
    net = _trained_shared_net()
    op = net.mixed[1]
    assert not any(True for c in op.candidates for _ in c.parameters(recurse=False))  # no weights of their own
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in Supernet(net.space).parameters()) / 2
    small = op.choices.index(min((b for b in op.choices if b is not None), key=lambda b: (b.kernel, b.expand)))
    large = op.choices.index(max((b for b in op.choices if b is not None), key=lambda b: (b.kernel, b.expand)))
    x = torch.randn(2, op.shared.spec.in_channels, 16, 16)
    before = op.candidates[small](x).detach()
    op.candidates[large](x).sum().backward()  # the largest path's gradient reaches the smallest one's slice
    with torch.no_grad():
        for p in op.shared.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    assert not torch.allclose(op.candidates[small](x), before)


def test_a_shared_weights_derived_network_computes_what_the_supernet_path_did():
    net = _trained_shared_net(seed=1)
    gen = torch.Generator().manual_seed(5)
    net.sample_single(gen)
    arch = net.arch_of([op.sampled[0] for op in net.mixed])
    assert len({b.kernel for b in arch.blocks if b is not None}) > 1  # the crop of the kernel is exercised
    derived = net.derived_network(arch, inherit=True).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net(x), derived(x), atol=1e-5)
        assert not torch.allclose(net(x), net.derived_network(arch, inherit=False).eval()(x), atol=1e-5)


def test_a_search_refuses_a_supernet_built_otherwise_than_its_config_says(costs):
    with pytest.raises(TightfitError, match="shared_weights"):
        ProxylessSearch(Supernet(SPACE), costs, SearchConfig(shared_weights=True), _loader(), _loader(seed=1))
