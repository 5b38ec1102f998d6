"""ProxylessNAS on CIFAR-10 against the width-scaled MobileNetV2 and random search, at one latency target.

T = half the measured cpu-ort latency of MobileNetV2-w1.0 (32x32, batch 1, one thread). Three networks
that meet T get identical training and are compared on the whole test set:
  * tightfit: ProxylessNAS searched on the target's lookup table with the multiplicative latency loss;
  * mbv2_scaled: MobileNetV2 at the largest width (grid of 0.05) whose measured latency meets T;
  * random_best: K random architectures of the space predicted to meet T, each trained for an equal share
    of the search's wall time (the same total compute), the best on the validation subset kept.
Every latency is measured end to end with the lookup table's estimator, all networks timed together.
A seeded, class-stratified subset of the training set keeps the protocol within about an hour on 2 cores.

    python bench/nas_cifar.py [--train-images 10000] [--final-epochs 12] ...
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from _cifar import load_cifar, measure_ms, train_and_test
from _common import write_result

from tightfit.hardware import CostModel, get_target, profile
from tightfit.methods.search.costs import space_costs
from tightfit.methods.search.proxyless import ProxylessSearch, SearchConfig
from tightfit.methods.search.supernet import Supernet
from tightfit.models import MobileNet, ModelSpec, build_model
from tightfit.space import Arch, SearchSpace
from tightfit.train import TrainConfig

WIDTHS = [round(1.0 - 0.05 * i, 2) for i in range(16)]  # 1.0 .. 0.25


def mbv2(width: float) -> torch.nn.Module:
    return build_model(ModelSpec("mobilenetv2", 32, 3, 10, width))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-images", type=int, default=10000)
    p.add_argument("--val-images", type=int, default=2500)
    p.add_argument("--space-width", type=float, default=0.5)
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--search-epochs", type=int, default=4)
    p.add_argument("--final-epochs", type=int, default=5)
    p.add_argument("--random-k", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    data = load_cifar(args.train_images, args.val_images, args.seed)
    target = get_target("cpu-ort")

    # T, and the width-scaled MobileNetV2 that meets it (measured, not predicted). The table's scale is
    # refitted on its calibration networks timed in the same session, so that the search's predictions
    # and T share the machine's current speed (it drifts by tens of percent over minutes here).
    space = SearchSpace(32, 3, 10, width_mult=args.space_width)
    cost = CostModel(target)
    cost.profile_space(space, (32,))
    calibration = profile.calibration_plans(space)
    times = measure_ms(target, [mbv2(w) for w in WIDTHS] + [MobileNet(p) for p in calibration])
    profile.fit_scale(cost.table, calibration, times[len(WIDTHS):], 32)
    widths_ms = dict(zip(WIDTHS, times[:len(WIDTHS)], strict=True))
    t_ms = 0.5 * widths_ms[1.0]
    width = max((w for w, ms in widths_ms.items() if ms <= t_ms), default=min(WIDTHS))
    print(f"MobileNetV2-w1.0 {widths_ms[1.0]:.3f} ms -> T = {t_ms:.3f} ms; width-scaled MobileNetV2: w{width}")
    costs = space_costs(cost, space)

    # step 1: the search
    search_start = time.perf_counter()
    net = Supernet(space)
    config = SearchConfig(warmup_epochs=args.warmup_epochs, epochs=args.search_epochs, batch_size=64,
                          target=t_ms, seed=args.seed)
    result = ProxylessSearch(net.to(memory_format=torch.channels_last), costs, config,
                             data.loader("train", 64, shuffle=True, seed=args.seed),
                             data.loader("val", 64, shuffle=True, seed=args.seed + 1), log=print).run()
    search_seconds = time.perf_counter() - search_start
    print(f"searched {result.arch} (predicted {result.cost:.3f} ms) in {search_seconds:.0f} s")

    # random search with the same total compute: K architectures meeting T, each an equal share of it
    rng = random.Random(args.seed)
    candidates = []
    for _ in range(100_000):
        arch = space.random_arch(rng)
        if 0.85 * t_ms <= costs.of_arch(space, arch) <= t_ms:
            candidates.append(arch)
            if len(candidates) == args.random_k:
                break
    random_start = time.perf_counter()
    share = search_seconds / len(candidates)
    proxy = []
    for arch in candidates:
        probe = TrainConfig(epochs=1, batch_size=64, lr=0.05, warmup_epochs=0.2, seed=args.seed)
        first = train_and_test(MobileNet(space.plan(arch)), data, probe, log=False)
        epochs = max(1, round(share / first["train_seconds"]))
        cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, warmup_epochs=0.2, seed=args.seed)
        scored = first if epochs == 1 else train_and_test(MobileNet(space.plan(arch)), data, cfg, log=False)
        proxy.append({"arch": str(arch), "predicted_ms": costs.of_arch(space, arch), "proxy_epochs": epochs,
                      "proxy_val_acc": scored["val_acc"]})
        print(proxy[-1])
    random_seconds = time.perf_counter() - random_start
    best = max(proxy, key=lambda r: r["proxy_val_acc"])

    # identical final training for the three, then measured latency
    final = TrainConfig(epochs=args.final_epochs, batch_size=128, lr=0.1, warmup_epochs=1.0, seed=args.seed)

    nets = {"tightfit": MobileNet(space.plan(result.arch)), "mbv2_scaled": mbv2(width),
            "random_best": MobileNet(space.plan(Arch.parse(best["arch"])))}
    rows = []
    for name, model in nets.items():
        torch.manual_seed(args.seed)
        scores = train_and_test(model, data, final)
        rows.append({"network": name, **scores})
        print(rows[-1])
    # the final figures: the three and MobileNetV2-w1.0 timed together, T re-derived in the same session
    *latencies, ref_ms = measure_ms(target, [*nets.values(), mbv2(1.0)])
    t_final = 0.5 * ref_ms
    summary = {"target_ms": t_final, "mbv2_w1_ms": ref_ms, "target_ms_at_search": t_ms}
    for row, ms in zip(rows, latencies, strict=True):
        row["latency_ms"] = ms
        summary[row["network"]] = {"test_acc": row["test_acc"], "latency_ms": ms, "val_acc": row["val_acc"],
                                   "meets_target": ms <= t_final, "within_1_05_target": ms <= 1.05 * t_final}
    summary["tightfit"].update({"arch": str(result.arch), "predicted_ms": result.cost,
                                "argmax_arch": str(result.argmax_arch), "argmax_predicted_ms": result.argmax_cost})
    summary["mbv2_scaled"]["width"] = width
    summary["random_best"].update({"arch": best["arch"], "predicted_ms": best["predicted_ms"]})
    summary["most_accurate"] = max(rows, key=lambda r: r["test_acc"])["network"]
    summary["goal_met"] = summary["most_accurate"] == "tightfit" and summary["tightfit"]["within_1_05_target"]
    summary["search_seconds"] = search_seconds
    summary["random_search_seconds"] = random_seconds
    summary["bench_minutes"] = (time.perf_counter() - started) / 60
    protocol = {**vars(args), "data": "CIFAR-10 JPEG copy (../shared/data), seeded stratified subsets; test: all "
                "10,000", "target": "cpu-ort, batch 1, 1 thread",
                "T": "0.5 x measured MobileNetV2-w1.0; target_ms from the final session (with the three networks), "
                     "target_ms_at_search from the first (with the width grid and the calibration networks)",
                "search": config.to_json(), "final_training": final.to_json(),
                "random_search": "K archs with predicted latency in [0.85 T, T]; each trained for round(search "
                                 "seconds / K / one epoch's seconds) epochs; best proxy val acc retrained",
                "mbv2_widths_ms": widths_ms, "random_proxy": proxy,
                "search_history": [h.__dict__ for h in result.history]}
    print(write_result(__file__, protocol, summary, rows))


if __name__ == "__main__":
    main()
