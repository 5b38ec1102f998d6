"""Hardware specialisation in miniature (ProxylessNAS, section 4.2): search for two targets, cross-measure.

One supernet is warmed up on random single paths (target-agnostic), then searched twice from those
weights: for `cpu-ort` (lookup table, measured) and for `bitfusion` (analytic Bit Fusion model), each at a
matching target, by `--target-rule`:
  * fraction: the same fraction of the way from the space's cheapest to its dearest network on that target
    (half of MobileNetV2-w1.0 is not matching: in the 2026-11-29 run it sat at 30% of that range on
    cpu-ort and 59% on bitfusion, so the cpu-ort search was pressed about twice as hard per block);
  * reference: each target's cost of one network of the space, every block the MBConv `--reference`
    (as the paper sets each device's budget near MobileNetV2's latency there). A fraction of each range
    is not one network: at 0.3 the cpu-ort target admits more than all-k3e3 and the bitfusion one less,
    so the bitfusion search is pressed harder and its network can be faster on both targets. Each
derived network is then priced on both targets: measured end to end on cpu-ort, computed on bitfusion.
Also their depth and kernel mix.

    python bench/nas_specialization.py [--train-images 10000] [--search-epochs 6] ...
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import re
import time
from collections import Counter
from dataclasses import asdict

import torch
from _cifar import CIFAR, load_cifar, measure_ms
from _common import RESULTS, write_result

from tightfit.export.weights import load_weights, save_weights
from tightfit.hardware import CostModel, get_target, profile
from tightfit.methods.search.costs import SpaceCosts, space_costs
from tightfit.methods.search.proxyless import ProxylessSearch, SearchConfig, SearchEpoch
from tightfit.methods.search.supernet import Supernet, residual_gammas
from tightfit.models import MobileNet, ModelSpec, build_model
from tightfit.space import Arch, SearchSpace
from tightfit.space.arch import MBConvChoice

TARGETS = ("cpu-ort", "bitfusion")


def stored_run_names() -> list[str]:
    """Every stored result of this bench: the main one, then each --tag variant."""
    return ["nas_specialization", *sorted(f.stem for f in RESULTS.glob("nas_specialization-*.json"))]


def describe(arch: Arch) -> dict:
    kept = [b for b in arch.blocks if b is not None]
    return {"depth": len(kept), "kernels": dict(sorted(Counter(b.kernel for b in kept).items())),
            "expands": dict(sorted(Counter(b.expand for b in kept).items()))}


def epoch_summary(h: SearchEpoch) -> dict:
    """One epoch of a search's history without its probabilities (the rows keep the final ones): how well the
    supernet was trained is what decides whether the accuracy term asks for capacity."""
    return {k: v for k, v in asdict(h).items() if k != "probs"}


def range_fraction(costs: SpaceCosts, fraction: float) -> float:
    """Rule fraction: `fraction` of the way from the space's cheapest to its dearest network."""
    return costs.cheapest() + fraction * (costs.dearest() - costs.cheapest())


def reference_arch(space: SearchSpace, reference: str) -> Arch:
    """Rule reference: the space's network with the MBConv `reference` ("k3e3") at every block, or with several
    ("k7e3/k3e6") alternating position by position."""
    blocks = []
    for op in reference.split("/"):
        if not (m := re.fullmatch(r"k(\d+)e(\d+)", op)):
            raise SystemExit(f"--reference {reference}: write blocks as kKeE, e.g. k3e3 or k7e3/k3e6")
        blocks.append(MBConvChoice(int(m[1]), int(m[2])))
    cycle = itertools.cycle(blocks)
    return Arch(tuple(tuple(next(cycle) for _ in range(d)) for d in space.stage_depths))


def matching_targets(args: argparse.Namespace, space: SearchSpace, costs: dict[str, SpaceCosts]) -> dict:
    if args.target_rule == "reference":
        reference = reference_arch(space, args.reference)
        return {name: c.of_arch(space, reference) for name, c in costs.items()}
    return {name: range_fraction(c, args.target_fraction) for name, c in costs.items()}


def loaders_of(data, seed: int) -> tuple:  # noqa: ANN001
    return data.loader("train", 64, shuffle=True, seed=seed), data.loader("val", 64, shuffle=True, seed=seed + 1)


def warmed_supernet(args: argparse.Namespace, space: SearchSpace, cost: SpaceCosts,
                    data) -> tuple[Supernet, list]:  # noqa: ANN001
    """The target-agnostic warm-up, cached by everything that shapes it (it is most of a run's time, and runs
    that differ only in how they search share it). Each search then starts from fresh loaders, so a run reads
    the same batches whether its warm-up was trained or loaded."""
    key = {k: getattr(args, k) for k in ("train_images", "val_images", "space_width", "warmup_epochs",
                                         "residual_init", "shared_weights", "lr", "seed")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    weights = CIFAR.parent / "bench-searches" / f"nas-warmup-{digest}.safetensors"
    history = weights.with_suffix(".json")
    torch.manual_seed(args.seed)
    warm = Supernet(space, shared_weights=args.shared_weights).to(memory_format=torch.channels_last)
    if args.residual_init == "one":
        for gamma in residual_gammas(warm):
            torch.nn.init.ones_(gamma)
    if weights.is_file() and history.is_file():
        load_weights(warm, weights)
        print(f"warm-up loaded from {weights} (delete it to retrain)")
        return warm, json.loads(history.read_text())
    config = SearchConfig(warmup_epochs=args.warmup_epochs, epochs=0, lr=args.lr,
                          shared_weights=args.shared_weights, seed=args.seed)
    result = ProxylessSearch(warm, cost, config, *loaders_of(data, args.seed), log=print).run()
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_weights(warm, weights)
    epochs = [epoch_summary(h) for h in result.history]
    history.write_text(json.dumps(epochs))
    return warm, epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-images", type=int, default=10000)
    p.add_argument("--val-images", type=int, default=2500)
    p.add_argument("--space-width", type=float, default=0.5)
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--search-epochs", type=int, default=5)
    p.add_argument("--target-rule", choices=("fraction", "reference"), default="fraction")
    p.add_argument("--target-fraction", type=float, default=0.3,
                   help="rule fraction: T = cheapest + f (dearest - cheapest), the same f on every target")
    p.add_argument("--reference", default="k3e3",
                   help="rule reference: T = each target's cost of the space's network with this block everywhere")
    p.add_argument("--loss", choices=("mul", "add"), default="add",
                   help="add: lambda E/T is unit-free, so both searches feel the same pressure; mul's log E is in "
                        "microseconds, which presses the faster target harder")
    p.add_argument("--add-lambda", type=float, default=0.1)
    p.add_argument("--arch-every", type=int, default=5, help="one architecture step every k weight steps")
    p.add_argument("--arch-lr", type=float, default=SearchConfig.arch_lr, help="Adam's step size on the alphas")
    p.add_argument("--residual-init", choices=("zero", "one"), default="zero",
                   help="the residual candidates' last BatchNorm gamma at the start: zero (the library's identity "
                        "start) or one (the released code's). The arch gradient of keeping a block over `zero` is "
                        "<dL/dy, F(x)>, so a branch started at zero says little against the latency term")
    p.add_argument("--shared-weights", action="store_true",
                   help="each position's candidates are slices of one block (shared.py), so every step trains all")
    p.add_argument("--lr", type=float, default=SearchConfig.lr, help="the supernet weights' SGD learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="write nas_specialization-TAG.json (a variant beside the main result)")
    args = p.parse_args()
    started = time.perf_counter()
    data = load_cifar(args.train_images, args.val_images, args.seed)
    space = SearchSpace(32, 3, 10, width_mult=args.space_width)
    mbv2 = build_model(ModelSpec("mobilenetv2", 32, 3, 10, 1.0))
    models = {name: CostModel(get_target(name)) for name in TARGETS}
    # as in nas_cifar.py: the table's scale refitted on its calibration networks timed with the reference,
    # so that T and the search's predictions share the machine's current speed (this run's only, not saved)
    models["cpu-ort"].profile_space(space, (32,))
    calibration = profile.calibration_plans(space)
    ref_ms, *cal_ms = measure_ms(models["cpu-ort"].target, [mbv2] + [MobileNet(p) for p in calibration])
    profile.fit_scale(models["cpu-ort"].table, calibration, cal_ms, 32, save=False)
    reference = {"cpu-ort": ref_ms, "bitfusion": models["bitfusion"].of_model(mbv2, (3, 32, 32)).latency_ms}
    costs = {name: space_costs(cost, space) for name, cost in models.items()}
    space_range = {name: (c.cheapest(), c.dearest()) for name, c in costs.items()}
    targets = matching_targets(args, space, costs)

    warm, warm_history = warmed_supernet(args, space, costs["cpu-ort"], data)
    archs, results = {}, {}
    for name in TARGETS:
        net = copy.deepcopy(warm)
        loaders = loaders_of(data, args.seed)
        config = SearchConfig(warmup_epochs=0, epochs=args.search_epochs, target=targets[name],
                              loss=args.loss, add_lambda=args.add_lambda, arch_every=args.arch_every,
                              arch_lr=args.arch_lr, lr=args.lr, shared_weights=args.shared_weights,
                              seed=args.seed)
        results[name] = ProxylessSearch(net, costs[name], config, *loaders, log=print).run()
        archs[name] = results[name].arch
        print(name, archs[name])

    nets = {name: MobileNet(space.plan(arch)) for name, arch in archs.items()}
    cpu_ms = dict(zip(TARGETS, measure_ms(models["cpu-ort"].target, list(nets.values())), strict=True))
    rows = []
    for name, net in nets.items():
        rows.append({"searched_for": name, "arch": str(archs[name]), **describe(archs[name]),
                     "cpu_ort_ms": cpu_ms[name],
                     "bitfusion_ms": models["bitfusion"].of_model(net, (3, 32, 32)).latency_ms,
                     "predicted_on_own_target": results[name].cost,
                     "target_on_own_target": targets[name],
                     "argmax_arch": str(results[name].argmax_arch), "argmax_cost": results[name].argmax_cost,
                     "final_probs": results[name].history[-1].probs,
                     "search_epochs": [epoch_summary(h) for h in results[name].history]})
        print(rows[-1])
    by = {r["searched_for"]: r for r in rows}
    summary = {
        "cross_latency_ms": {name: {"on_cpu_ort": by[name]["cpu_ort_ms"], "on_bitfusion": by[name]["bitfusion_ms"]}
                             for name in TARGETS},
        "networks_differ": str(archs["cpu-ort"]) != str(archs["bitfusion"]),
        "cpu_net_faster_on_cpu": by["cpu-ort"]["cpu_ort_ms"] < by["bitfusion"]["cpu_ort_ms"],
        "bitfusion_net_faster_on_bitfusion": by["bitfusion"]["bitfusion_ms"] < by["cpu-ort"]["bitfusion_ms"],
        "targets": targets,
        "space_range": space_range,
        "warmup_epochs": warm_history,
        "mbv2_w1": reference, "bench_minutes": (time.perf_counter() - started) / 60,
    }
    rule = (f"each target's cost of the space's all-{args.reference} network" if args.target_rule == "reference"
            else "cheapest + target_fraction x (dearest - cheapest) of the space on each target")
    protocol = {**vars(args), "targets": rule + " (lookup table / analytic model)",
                "warm_up": "one shared supernet warm-up on random single paths (cached by its settings), then "
                "one search per target from its weights, each with fresh loaders seeded by --seed",
                "cpu_ort_timing": "end to end, lookup table's estimator"}
    print(write_result("nas_specialization", protocol, summary, rows, tag=args.tag))


if __name__ == "__main__":
    main()
