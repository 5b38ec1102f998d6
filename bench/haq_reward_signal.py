"""HAQ's reward signal: does an episode's reward rank policies as the final fine-tune does?

haq_cifar.py's Bit Fusion searches rewarded each policy by its accuracy after batch-norm re-estimation
alone (no fine-tune), and the policy of best reward came out the worst of eight after the final
fine-tune. This takes the top-k distinct policies of a finished search (its checkpoint, nothing is searched
again) and scores each: on the val split after 0, 10 and 30 straight-through steps (the candidate rewards),
and on held-out training images after the final fine-tune (what the row is decided by). The summary gives
each reward's Spearman rank correlation with the final score, and the final score of the policy it would
have picked. Uniform policies (`--uniform`) are scored the same way for reference, outside the ranking.

    python bench/haq_reward_signal.py --checkpoint ~/.cache/tightfit/bench-searches/haq-bitfusion-latency-*.pt
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch
from _cifar import add_reference_options, load_cifar, reference_recipe, trained_reference
from _common import write_result
from haq_cifar import uniform_bits
from scipy.stats import spearmanr

from tightfit.hardware.layers import extract_layers
from tightfit.methods.quantize.finetune import finetune, recalibrate_batch_norm
from tightfit.methods.quantize.haq import top_policies
from tightfit.methods.quantize.policy import Calibration, QuantPolicy, quantize_model
from tightfit.models import ModelSpec
from tightfit.train import evaluate
from tightfit.train.checkpoint import load_checkpoint

SHAPE = (3, 32, 32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_reference_options(p)
    p.add_argument("--checkpoint", type=Path, required=True, help="a finished haq_cifar.py search's checkpoint")
    p.add_argument("--top", type=int, default=8, help="distinct policies of highest search reward")
    p.add_argument("--reward-steps", default="0,10,30", help="fine-tuning steps of the candidate rewards")
    p.add_argument("--reward-bn-batches", type=int, default=2)
    p.add_argument("--finetune-steps", type=int, default=100)
    p.add_argument("--finetune-lr", type=float, default=0.005)
    p.add_argument("--holdout-images", type=int, default=5000)
    p.add_argument("--uniform", default="w4a4", help="comma list of uniform wXaY references ('' for none)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    started = time.perf_counter()
    state = load_checkpoint(args.checkpoint)
    if state is None:
        raise SystemExit(f"--checkpoint {args.checkpoint}: no such file; run haq_cifar.py first")
    data = load_cifar(args.train_images, args.val_images, args.seed, args.holdout_images)
    spec = ModelSpec("mobilenetv2", 32, 3, 10, 0.5)
    model, _ = trained_reference(spec, data, reference_recipe(args.train_epochs, args.seed))
    model = model.eval().to(memory_format=torch.channels_last)
    train = data.loader("train", 64, shuffle=True, seed=args.seed)
    calibration = Calibration(model, [x for x, _ in list(train)[:4]], seed=args.seed)
    val, holdout = data.loader("val", 50), data.loader_of(data.holdout, 50)
    names = [op.name for op in extract_layers(model, SHAPE)]
    steps = sorted(int(s) for s in args.reward_steps.split(","))

    def score(policy: QuantPolicy) -> dict:
        torch.manual_seed(0)  # as haq_cifar's reward: the same batches for every policy
        q = recalibrate_batch_norm(quantize_model(model, policy, calibration), train, args.reward_bn_batches)
        out, done = {}, 0
        for s in steps:  # one run, scored on the way (a fresh optimizer at each stop)
            q, done = finetune(q, train, s - done, args.finetune_lr), s
            out[f"val_after_{s}"] = evaluate(q, val)[1]
        torch.manual_seed(args.seed)  # as haq_cifar's final fine-tune
        q = finetune(quantize_model(model, policy, calibration), train, args.finetune_steps, args.finetune_lr)
        return {**out, "holdout_final": evaluate(q, holdout)[1]}

    rows = []
    for h in top_policies(state["history"], args.top):
        rows.append({"policy": f"episode {h['episode']}", "search_reward": h["reward"],
                     **score(QuantPolicy.from_json(h["policy"]))})
        print(rows[-1], flush=True)
    for name in filter(None, args.uniform.split(",")):
        if not (m := re.fullmatch(r"w([2-8])a([2-8])", name)):
            raise SystemExit(f"--uniform {name}: give wXaY with X and Y in 2..8, e.g. w4a4")
        rows.append({"policy": name, **score(QuantPolicy(uniform_bits(names, int(m[1]), int(m[2]), False)))})
        print(rows[-1], flush=True)

    ranked = [r for r in rows if "search_reward" in r]
    final = [r["holdout_final"] for r in ranked]
    signals = {"search_reward": [r["search_reward"] for r in ranked],
               **{f"val_after_{s}": [r[f"val_after_{s}"] for r in ranked] for s in steps}}
    picks = {name: max(range(len(v)), key=v.__getitem__) for name, v in signals.items()}
    summary = {name: {"spearman_with_final": float(spearmanr(v, final).statistic),
                      "pick": ranked[picks[name]]["policy"], "pick_holdout_final": final[picks[name]]}
               for name, v in signals.items()}
    summary["best_holdout_final"] = max(final)
    summary["uniform_holdout_final"] = {r["policy"]: r["holdout_final"] for r in rows if "search_reward" not in r}
    summary["bench_minutes"] = (time.perf_counter() - started) / 60
    protocol = {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "search": {"episodes": len(state["history"]), "config": state["config"]},
                "val": "the whole val split (the reward split of haq_cifar.py at --reward-images 1000)",
                "final": "finetune_steps straight-through SGD steps from the quantized reference, then top-1 on "
                         "holdout_images training images in neither the training nor the val subset"}
    print(write_result("haq_reward_signal", protocol, summary, rows))


if __name__ == "__main__":
    main()
