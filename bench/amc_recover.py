"""Recover bench/results/amc_cifar.json from the log of an amc_cifar.py run that crashed after its last
fine-tuning (in the plotting step, before writing its JSON).

The log printed every (model, policy) row: the keep vector, FLOPs ratio and test accuracies. What the crash
lost is re-measured or stated as lost:
  * latency: measured again here, on cpu-ort, for the unpruned and every pruned network rebuilt from its
    keep vector (latency depends on the shapes, not on the weights), all timed together;
  * the reward per episode: the log holds only the episodes that improved on the best, which are kept
    under `reward_best_so_far`; the full curve is not recoverable.

    python bench/amc_recover.py bench/results/amc_cifar.log
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import torch
from _cifar import measure_ms
from _common import write_result

from tightfit.hardware import get_target
from tightfit.methods.prune.groups import PrunableNetwork
from tightfit.methods.prune.surgery import prune_channels
from tightfit.models import ModelSpec, build_model

SHAPE = (3, 32, 32)
SPECS = {"resnet20": ModelSpec("resnet20", 32, 3, 10), "mobilenetv2": ModelSpec("mobilenetv2", 32, 3, 10, 0.5)}


def main() -> None:
    log = Path(sys.argv[1])
    lines = log.read_text().splitlines()
    rows = [ast.literal_eval(x) for x in lines if x.startswith("{'model'")]
    trained = {x.split()[0]: ast.literal_eval(x.split(" ", 2)[2]) for x in lines if " trained {" in x}
    best = [{"line": x} for x in lines if re.match(r"AMC episode \d+: reward", x)]
    target = get_target("cpu-ort")
    summary_rows = []
    for name, spec in SPECS.items():
        torch.manual_seed(0)
        base = build_model(spec).eval()
        net = PrunableNetwork(base, SHAPE)
        mine = [r for r in rows if r["model"] == name]
        base_ms, *ms = measure_ms(target, [base, *[prune_channels(net, r["keep"]) for r in mine]])
        for r, t in zip(mine, ms, strict=True):
            r.update(latency_ms=t, original_latency_ms=base_ms, speedup=base_ms / t)
            summary_rows.append({k: r[k] for k in ("model", "policy", "flops_ratio", "test_acc", "speedup",
                                                   "original_test_acc", "val_acc_no_finetune")})
            print(summary_rows[-1])
    summary = {"rows": summary_rows, "reward_curve": None,
               "reward_curve_lost": "the run crashed before writing it; see reward_best_so_far",
               "reward_best_so_far": best, "trained": trained}
    for name in SPECS:
        mine = {r["policy"]: r for r in summary_rows if r["model"] == name}
        hand = max(("uniform", "deep", "shallow"), key=lambda s: mine[s]["test_acc"])
        summary[name] = {"amc_test_acc": mine["amc"]["test_acc"], "best_hand_policy": hand,
                         "best_hand_test_acc": mine[hand]["test_acc"],
                         "amc_at_least_best_hand": mine["amc"]["test_acc"] >= mine[hand]["test_acc"],
                         "amc_speedup": mine["amc"]["speedup"], "speedup_goal_1_6_met": mine["amc"]["speedup"] >= 1.6}
    ag = next(r for r in summary_rows if r["policy"] == "amc_accuracy_guaranteed")
    summary["accuracy_guaranteed"] = {"model": "resnet20", "flops_ratio": ag["flops_ratio"],
                                      "test_acc_drop_points": 100 * (ag["original_test_acc"] - ag["test_acc"]),
                                      "within_half_point": ag["original_test_acc"] - ag["test_acc"] <= 0.005}
    protocol = {"command": "python bench/amc_cifar.py --train-images 6000 --val-images 1000 --train-epochs 8 "
                           "--finetune-epochs 2 --episodes 150 --warmup-episodes 40",
                "recovered_from": str(log), "note": __doc__.split("\n\n")[0],
                "latency": "cpu-ort, batch 1, 1 thread, end to end, median over 30 passes spread over 30 s, "
                           "measured by amc_recover.py on networks rebuilt from the logged keep vectors",
                "ran_alongside": "other benches shared the 2 cores during the run (training times are inflated)"}
    print(write_result("amc_cifar.py", protocol, summary, rows))


if __name__ == "__main__":
    main()
