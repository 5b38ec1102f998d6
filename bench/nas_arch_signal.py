"""How much the architecture gradient knows at the start of a search: its accuracy signal against its noise.

The specialisation runs end with near-uniform probabilities. This bench asks why, without searching: from a
warmed-up supernet (`nas_specialization.py`'s cache, trained here if missing), at uniform alpha, it takes
`--steps` architecture-step gradients exactly as the search does (two sampled paths per position, a
validation batch, the BinaryConnect estimate) and updates nothing. For each target it adds the latency
term's gradient (additive loss, each target its own cost of the all-`--reference` network) and reports:

  * the accuracy (CE) part per candidate: its mean and how far from zero that is (t = mean / standard error),
    and at how many positions some candidate's t exceeds 3;
  * steps to decide: Adam moves each alpha by -lr * g / rms(g), so after N steps two candidates' alphas part by
    N * mean(d) +- sqrt(N) * sd(d), d the per-step difference of their normalised gradients. The position's
    choice is decided (2 sd) after N* = (2 sd(d) / mean(d))^2 steps, d between the candidate with the
    largest mean drift and the runner-up (chosen on half the samples, measured on the other half). A
    linearisation at the start: alpha and the weights move during a real search, so N* is an order of
    magnitude, not a prediction. Counted against the stored protocols' 235 and 942 architecture steps;
  * the architecture the mean drifts point to (the infinitely long search, linearised) on each target, and
    whether those two specialise: each cheaper on its own target than the other is there; per lambda, and
    with each target's lambda tuned so that its linearised network just meets its T (`matched`).

    python bench/nas_arch_signal.py --warmup-epochs 6 --residual-init one --shared-weights --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import time

import torch
from _cifar import CIFAR, load_cifar
from _common import write_result
from nas_specialization import TARGETS, loaders_of, matching_targets, warmed_supernet
from torch.nn import functional as F
from tqdm import tqdm

from tightfit.hardware import CostModel, get_target
from tightfit.methods.search.costs import SpaceCosts, space_costs
from tightfit.methods.search.supernet import Supernet
from tightfit.space import SearchSpace

Z = 2.0  # standard deviations for "decided"
PROTOCOL_LAMBDA = 0.1  # the stored specialisation protocols' additive lambda
PROTOCOL_STEPS = (235, 942)  # architecture steps of the ref-k5e3 and ref-k5e3-ae1-se6 protocols
SIGNAL_T = 3.0  # a CE mean this many standard errors from 0: with <= 7 candidates, ~2% of positions by chance


def gradient_samples(net: Supernet, val, steps: int, seed: int) -> dict[str, list[torch.Tensor]]:  # noqa: ANN001
    """`steps` CE-only architecture gradients, nothing updated: per position, `ce` (steps, candidates), zero
    for the paths not sampled, and `pairs` (steps, 2), the two sampled."""
    gen = torch.Generator().manual_seed(seed)
    weights = net.weights()
    for w in weights:
        w.requires_grad_(False)
    net.train()  # as in the search's architecture step
    ce, pairs, batches = [], [], iter(())
    for step in tqdm(range(steps), desc="architecture gradients", unit="step", disable=None):
        try:
            x, y = next(batches)
        except StopIteration:
            val.set_epoch(step)
            batches = iter(val)
            x, y = next(batches)
        net.sample_pairs(gen)
        for a in net.alphas():
            a.grad = None
        F.cross_entropy(net(x), y).backward()
        for op in net.mixed:
            op.set_alpha_grad()
        ce.append([op.alpha.grad.detach().clone() for op in net.mixed])
        pairs.append([torch.tensor(op.sampled) for op in net.mixed])
        for op in net.mixed:
            op.gates = None
    for w in weights:
        w.requires_grad_(True)
    return {"ce": [torch.stack(col) for col in zip(*ce, strict=True)],
            "pairs": [torch.stack(col) for col in zip(*pairs, strict=True)]}


def cached_samples(args: argparse.Namespace, net: Supernet, data) -> dict[str, list[torch.Tensor]]:  # noqa: ANN001
    """The samples depend on the warm-up, the seed and their number only, so other lambdas reuse them."""
    key = {k: getattr(args, k) for k in ("train_images", "val_images", "space_width", "warmup_epochs",
                                         "residual_init", "shared_weights", "lr", "seed", "steps")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = CIFAR.parent / "bench-searches" / f"arch-signal-{digest}.pt"
    if path.is_file():
        print(f"architecture gradients loaded from {path} (delete it to sample again)")
        return torch.load(path, weights_only=True)
    samples = gradient_samples(net, loaders_of(data, args.seed)[1], args.steps, args.seed + 7)
    torch.save(samples, path)
    return samples


def finite(x: float) -> float | None:
    """JSON has no infinity: an undecided position is written as null."""
    return None if math.isinf(x) else x


def latency_gradient(costs: SpaceCosts, pos: int, pairs: torch.Tensor, scale: float) -> torch.Tensor:
    """d(scale * E_pair[cost]) / d alpha at uniform alpha, per sampled pair (steps, 2): p over the pair is
    (1/2, 1/2), so the two get +-scale * (F_i - F_k) / 4 and every other candidate nothing (`pair_probs`)."""
    prices = torch.tensor(costs.per_position[pos])
    g = torch.zeros(len(pairs), len(prices))
    rows = torch.arange(len(pairs))
    diff = scale * (prices[pairs[:, 0]] - prices[pairs[:, 1]]) / 4
    g[rows, pairs[:, 0]] = diff
    g[rows, pairs[:, 1]] = -diff
    return g


def position_report(ce: torch.Tensor, lat: torch.Tensor) -> dict:
    """ce, lat: (steps, candidates) gradients of one position. Under Adam (beta1 0) each alpha moves by
    -lr * g / rms(g) per step: `drift` is that in units of lr, positive where p grows.

    Steps to decide are estimated on held-out samples: the leader and runner-up are picked on the first half
    and their per-step difference d measured on the second, so that picking the largest of several noisy
    means does not make the lead look surer than it is. d's mean at or below 0 there: undecided (inf)."""
    total = ce + lat
    rms = total.pow(2).mean(0).sqrt().clamp_min(1e-12)
    u = -total / rms
    half = u.shape[0] // 2
    lead = u[:half].mean(0).argsort(descending=True).tolist()
    d = u[half:, lead[0]] - u[half:, lead[1]]
    steps = (Z * d.std() / d.mean()).pow(2).item() if d.mean() > 0 else math.inf
    se = ce.std(0) / ce.shape[0] ** 0.5
    return {"drift": u.mean(0).tolist(), "choice": int(u.mean(0).argmax()), "steps_to_decide": steps,
            "ce_mean": ce.mean(0).tolist(), "ce_t": (ce.mean(0) / se.clamp_min(1e-12)).tolist(),
            "latency_mean": lat.mean(0).tolist()}


def matched_lambdas(by_lambda: dict, targets: dict[str, float]) -> dict:
    """Each target's lambda tuned as the paper tunes it per device: the smallest analysed lambda whose
    linearised network meets that target's T (so it spends its budget). The pair then specialises, or not,
    at matched cost; `steps` says how long a search would need for those choices to show."""
    pick = {}
    for name, t in targets.items():
        meeting = [float(lam) for lam, v in by_lambda.items() if v["linearised_cross_cost"][name][f"on_{name}"] <= t]
        if not meeting:
            return {"found": False}
        pick[name] = str(min(meeting))
    cost = {name: by_lambda[lam]["linearised_cross_cost"][name] for name, lam in pick.items()}
    return {"found": True, "lambda": {n: float(lam) for n, lam in pick.items()},
            "archs": {n: by_lambda[lam]["linearised_archs"][n] for n, lam in pick.items()},
            "cross_cost": cost, "cost_over_target": {n: cost[n][f"on_{n}"] / targets[n] for n in targets},
            "median_steps_to_decide": {n: by_lambda[lam]["median_steps_to_decide"][n] for n, lam in pick.items()},
            "positions_decided_within": {n: by_lambda[lam]["positions_decided_within"][n] for n, lam in pick.items()},
            "specialise": (cost["cpu-ort"]["on_cpu-ort"] < cost["bitfusion"]["on_cpu-ort"] and
                           cost["bitfusion"]["on_bitfusion"] < cost["cpu-ort"]["on_bitfusion"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-images", type=int, default=10000)
    p.add_argument("--val-images", type=int, default=2500)
    p.add_argument("--space-width", type=float, default=0.5)
    p.add_argument("--warmup-epochs", type=int, default=6)
    p.add_argument("--residual-init", choices=("zero", "one"), default="one")
    p.add_argument("--shared-weights", action="store_true")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=300, help="architecture gradients sampled")
    p.add_argument("--reference", default="k5e3", help="each target's T: its cost of the all-REFERENCE network")
    p.add_argument("--lambdas", type=lambda v: [float(x) for x in v.split(",")], default=[0.1, 0.3, 1.0, 3.0],
                   help="additive loss weights to analyse (the stored protocols used 0.1)")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    args.target_rule = "reference"
    started = time.perf_counter()
    data = load_cifar(args.train_images, args.val_images, args.seed)
    space = SearchSpace(32, 3, 10, width_mult=args.space_width)
    # one table price level throughout: the targets are each the same table's cost of one network, and the
    # additive term is lambda E / T, so the level cancels and no refit against this moment's speed is needed
    costs = {name: space_costs(CostModel(get_target(name)), space) for name in TARGETS}
    targets = matching_targets(args, space, costs)
    net, warm_history = warmed_supernet(args, space, costs["cpu-ort"], data)
    samples = cached_samples(args, net, data)

    by_lambda, rows = {}, []
    for lam in args.lambdas:
        per_target = {name: [position_report(ce, latency_gradient(costs[name], pos, pairs, lam / targets[name]))
                             for pos, (ce, pairs) in enumerate(zip(samples["ce"], samples["pairs"], strict=True))]
                      for name in TARGETS}
        archs = {name: net.arch_of([r["choice"] for r in per_target[name]]) for name in TARGETS}
        cross = {name: {f"on_{t}": costs[t].of_arch(space, archs[name]) for t in TARGETS} for name in TARGETS}
        by_lambda[str(lam)] = {
            "median_steps_to_decide": {n: finite(statistics.median(r["steps_to_decide"] for r in per_target[n]))
                                       for n in TARGETS},
            "positions_decided_within": {n: {str(k): sum(r["steps_to_decide"] <= k for r in per_target[n])
                                             for k in PROTOCOL_STEPS} for n in TARGETS},
            "linearised_archs": {n: str(a) for n, a in archs.items()},
            "linearised_cross_cost": cross,
            "linearised_positions_differ": sum(a != b for a, b in zip(archs["cpu-ort"].blocks,
                                                                      archs["bitfusion"].blocks, strict=True)),
            "linearised_specialise": (cross["cpu-ort"]["on_cpu-ort"] < cross["bitfusion"]["on_cpu-ort"] and
                                      cross["bitfusion"]["on_bitfusion"] < cross["cpu-ort"]["on_bitfusion"]),
        }
        rows += [{"lambda": lam, "target": n, "position": i, **r, "steps_to_decide": finite(r["steps_to_decide"])}
                 for n in TARGETS for i, r in enumerate(per_target[n])]
    matched = matched_lambdas(by_lambda, targets)
    # the CE part does not depend on lambda or target: one set of positions
    ce_t = [max(abs(t) for t in r["ce_t"]) for r in rows if r["lambda"] == rows[0]["lambda"] and
            r["target"] == TARGETS[0]]
    # per-position rows only for the stored protocols' lambda and the matched ones (the summary has every lambda)
    kept = {PROTOCOL_LAMBDA, *matched.get("lambda", {}).values()}
    rows = [r for r in rows if r["lambda"] in kept]
    summary = {
        "final_warmup_train_acc": warm_history[-1]["train_acc"],
        "positions_with_a_ce_signal": sum(t > SIGNAL_T for t in ce_t),
        "positions": len(ce_t),
        "by_lambda": by_lambda,
        "matched": matched,
        "targets": targets,
        "bench_minutes": (time.perf_counter() - started) / 60,
    }
    protocol = {**vars(args), "alpha": "uniform (the search's start)", "z": Z,
                "cost_prices": "lookup table (cpu-ort, as cached) and analytic model (bitfusion), predicted",
                "batch": 64, "warm_up": "nas_specialization.py's cached warm-up for these settings"}
    print(json.dumps(summary, indent=1))
    print(write_result("nas_arch_signal", protocol, summary, rows, tag=args.tag))


if __name__ == "__main__":
    main()
