"""AMC on CIFAR-10: the agent's policy against the hand-set ones of the paper, each fine-tuned alike.

For ResNet-20 and the MobileNetV2 reference (width 0.5, to fit the hour), trained on a seeded subset:
  * at 50% FLOPs: AMC (resource-constrained, R_err, FLOPs clamp) and the paper's hand policies, uniform,
    "deep" (deeper groups pruned harder) and "shallow" (the reverse), each scaled to the same FLOPs; all
    fine-tuned with the same epochs; test accuracy and speedup measured on cpu-ort (end to end, the lookup
    table's estimator, every network of a model timed together);
  * accuracy-guaranteed (R_FLOPs = -error * log FLOPs) on ResNet-20: the FLOPs it reaches and the accuracy
    it loses after the same fine-tuning.
Writes the reward per episode (JSON and a plot beside it).

    python bench/amc_cifar.py [--train-images 10000] [--episodes 200] ...
"""

from __future__ import annotations

import argparse
import time

from _cifar import add_reference_options, load_cifar, measure_ms, reference_recipe, train_and_test, trained_reference
from _common import RESULTS, write_result

from tightfit.hardware import get_target
from tightfit.methods.prune.amc import AMCConfig, accuracy_of, search
from tightfit.methods.prune.groups import PrunableNetwork, keep_channels
from tightfit.methods.rl.ddpg import DDPGConfig
from tightfit.metrics import measure_complexity
from tightfit.models import ModelSpec
from tightfit.train import TrainConfig, evaluate

SHAPE = (3, 32, 32)
MAX_REMOVE, MULTIPLE = 0.8, 8


def hand_policy(net: PrunableNetwork, shape: str, budget: float) -> list[int]:
    """Removal ratios r_t = s * w_t (uniform: w = 1; deep: w grows with depth; shallow: the reverse), with s
    found by bisection so that the network keeps at most `budget` of its FLOPs."""
    n = len(net.groups)
    weights = {"uniform": [1.0] * n, "deep": [(t + 1) / n for t in range(n)],
               "shallow": [(n - t) / n for t in range(n)]}[shape]

    def keep(s: float) -> list[int]:
        return [keep_channels(g.channels, min(MAX_REMOVE, s * w), MULTIPLE) for g, w in zip(net.groups, weights,
                                                                                            strict=True)]

    lo, hi = 0.0, MAX_REMOVE / min(weights)
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if net.cost(keep(mid)) <= budget * net.flops else (mid, hi)
    return keep(hi)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_reference_options(p)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--warmup-episodes", type=int, default=60)
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--mbv2-width", type=float, default=0.5)
    p.add_argument("--reconstruct-images", type=int, default=64,
                   help="training images for the least-squares reconstruction of every pruned network (0: off)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    started = time.perf_counter()
    data = load_cifar(args.train_images, args.val_images, args.seed)
    target = get_target("cpu-ort")
    val = data.loader("val", 500)
    rows, curves, protocol_models = [], {}, {}
    finetune = TrainConfig(epochs=args.finetune_epochs, batch_size=128, lr=0.01, warmup_epochs=0.0, seed=args.seed)
    for name, spec in (("resnet20", ModelSpec("resnet20", 32, 3, 10)),
                       ("mobilenetv2", ModelSpec("mobilenetv2", 32, 3, 10, args.mbv2_width))):
        base, trained = trained_reference(spec, data, reference_recipe(args.train_epochs, args.seed))
        print(name, "trained", trained)
        net = PrunableNetwork(base.eval(), SHAPE)
        first = data.loader("train", max(1, args.reconstruct_images), shuffle=True, seed=args.seed + 1)
        recon = next(iter(first))[0] if args.reconstruct_images else None
        reward_of = accuracy_of(net, lambda m: evaluate(m, val)[1], recon)
        config = AMCConfig(budget=args.budget, episodes=args.episodes, max_remove=MAX_REMOVE, multiple=MULTIPLE,
                           seed=args.seed, ddpg=DDPGConfig(warmup_episodes=args.warmup_episodes, sigma_decay=0.95))
        amc = search(net, config, reward_of, log=print)
        curves[name] = [h["reward"] for h in amc.history]
        policies = {"amc": amc.best["keep"], **{s: hand_policy(net, s, args.budget)
                                                for s in ("uniform", "deep", "shallow")}}
        if name == "resnet20":
            guaranteed = search(net, AMCConfig(budget=None, reward="flops", episodes=args.episodes, seed=args.seed,
                                               max_remove=MAX_REMOVE, multiple=MULTIPLE,
                                               ddpg=DDPGConfig(warmup_episodes=args.warmup_episodes,
                                                               sigma_decay=0.95)), reward_of, log=print)
            policies["amc_accuracy_guaranteed"] = guaranteed.best["keep"]
            curves[f"{name}_accuracy_guaranteed"] = [h["reward"] for h in guaranteed.history]
        models = {}
        for policy, keep in policies.items():
            no_finetune, model = reward_of(keep)
            scores = train_and_test(model, data, finetune, log=False)
            models[policy] = model
            rows.append({"model": name, "policy": policy, "keep": keep,
                         "flops_ratio": net.cost(keep) / net.flops, "val_acc_no_finetune": no_finetune,
                         "test_acc": scores["test_acc"], "val_acc": scores["val_acc"],
                         "original_test_acc": trained["test_acc"],
                         "params_ratio": measure_complexity(model, SHAPE).params / measure_complexity(
                             base, SHAPE).params})
            print(rows[-1])
        latencies = measure_ms(target, [base, *models.values()])
        for row, ms in zip([r for r in rows if r["model"] == name], latencies[1:], strict=True):
            row.update(latency_ms=ms, original_latency_ms=latencies[0], speedup=latencies[0] / ms)
        protocol_models[name] = {"spec": spec.to_json(), "trained": trained, "groups": len(net.groups)}
    summary = {"rows": [{k: r[k] for k in ("model", "policy", "flops_ratio", "test_acc", "speedup",
                                           "original_test_acc", "val_acc_no_finetune")} for r in rows],
               "reward_curve": curves["resnet20"], "reward_curves": curves}
    for name in protocol_models:
        mine = {r["policy"]: r for r in rows if r["model"] == name}
        best_hand = max(("uniform", "deep", "shallow"), key=lambda s: mine[s]["test_acc"])
        summary[name] = {"amc_test_acc": mine["amc"]["test_acc"], "best_hand_policy": best_hand,
                         "best_hand_test_acc": mine[best_hand]["test_acc"],
                         "amc_at_least_best_hand": mine["amc"]["test_acc"] >= mine[best_hand]["test_acc"],
                         "amc_speedup": mine["amc"]["speedup"], "speedup_goal_1_6_met": mine["amc"]["speedup"] >= 1.6}
    ag = next(r for r in rows if r["policy"] == "amc_accuracy_guaranteed")
    summary["accuracy_guaranteed"] = {"model": "resnet20", "flops_ratio": ag["flops_ratio"],
                                      "test_acc_drop_points": 100 * (ag["original_test_acc"] - ag["test_acc"]),
                                      "within_half_point": ag["original_test_acc"] - ag["test_acc"] <= 0.005}
    summary["bench_minutes"] = (time.perf_counter() - started) / 60
    protocol = {**vars(args), "data": "CIFAR-10 JPEG copy (../shared/data), seeded stratified subsets; test: all "
                "10,000", "models": protocol_models, "finetune": finetune.to_json(),
                "reward": "validation accuracy of the pruned network without fine-tuning (val subset), after the "
                          "least-squares reconstruction of the released AMC code (10 points per image) on "
                          "reconstruct_images training images, when that is > 0; every policy's network is built "
                          "the same way before its fine-tuning",
                "latency": "cpu-ort, batch 1, 1 thread, end to end, median over 30 passes spread over 30 s",
                "hand_policies": "removal r_t = s * w_t, w uniform / (t+1)/n (deep) / (n-t)/n (shallow), s bisected "
                                 "to the budget; max removal 0.8, channels rounded to 8 as for AMC"}
    print(write_result(__file__, protocol, summary, rows))
    _plot(curves, args.warmup_episodes)


def _plot(curves: dict[str, list[float]], warmup: int) -> None:
    from tightfit.pipeline.figures import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.2))
    for ax, (name, rewards) in zip(axes, curves.items(), strict=True):
        ax.plot(range(1, len(rewards) + 1), rewards, ".", ms=3, alpha=0.5)
        window = 10
        smooth = [sum(rewards[max(0, i - window + 1):i + 1]) / len(rewards[max(0, i - window + 1):i + 1])
                  for i in range(len(rewards))]
        ax.plot(range(1, len(rewards) + 1), smooth, label=f"mean of last {window}")
        ax.axvline(warmup + 0.5, color="k", linestyle="--", linewidth=0.8, label="end of warm-up")
        ax.set(title=name, xlabel="episode", ylabel="reward")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "amc_reward.png", dpi=110)


if __name__ == "__main__":
    main()
