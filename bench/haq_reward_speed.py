"""How long one HAQ reward takes, scoring the fake-quantized network as fine-tuned or its inference copy.

The reward (haq_cifar's protocol: batch-norm re-estimation on 2 training batches, then top-1 on 1,000 val
images) dominates an episode. Both ways are timed on the same policies, interleaved, several times; the
result has the median seconds per reward of each, their ratio, and both accuracies (they should agree).

    python bench/haq_reward_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from _cifar import add_reference_options, load_cifar, reference_recipe, trained_reference
from _common import write_result

from tightfit.methods.quantize.finetune import quantized_accuracy, recalibrate_batch_norm
from tightfit.methods.quantize.policy import Calibration, LayerBits, QuantPolicy, quantizable_layers, quantize_model
from tightfit.models import ModelSpec
from tightfit.train import evaluate


def policies(names: list[str], seed: int) -> dict[str, QuantPolicy]:
    rng = random.Random(seed)
    mixed = {n: LayerBits(rng.randint(2, 8), rng.randint(2, 8)) for n in names}
    return {"w4a4": QuantPolicy.uniform(names, 4, 4), "w8a8": QuantPolicy.uniform(names, 8, 8),
            "mixed-random": QuantPolicy(mixed), "kmeans-w2": QuantPolicy.uniform(names, 2, 32, "kmeans")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_reference_options(p)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--reward-images", type=int, default=1000)
    p.add_argument("--reward-bn-batches", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = load_cifar(args.train_images, args.val_images, args.seed)
    spec = ModelSpec("mobilenetv2", 32, 3, 10, args.width)
    model, _ = trained_reference(spec, data, reference_recipe(args.train_epochs, args.seed))
    model = model.eval().to(memory_format=torch.channels_last)
    train = data.loader("train", 64, shuffle=True, seed=args.seed)
    calibration = Calibration(model, [x for x, _ in list(train)[:4]], seed=args.seed)
    chosen = sorted(torch.randperm(len(data.val), generator=torch.Generator().manual_seed(args.seed))
                    [:args.reward_images].tolist())
    reward_val = data.loader_of(data.val.subset(chosen), 50)
    accuracy = lambda m: evaluate(m, reward_val)[1]  # noqa: E731

    def fake_quantized(policy: QuantPolicy) -> float:  # the reward as scored before the inference copy
        torch.manual_seed(0)
        q = recalibrate_batch_norm(quantize_model(model, policy, calibration), train, args.reward_bn_batches)
        return accuracy(q)

    ways = {"fake_quantized": fake_quantized,
            "inference_copy": quantized_accuracy(model, calibration, train, 0, 0.0, accuracy, args.reward_bn_batches)}
    rows = []
    for name, policy in policies(quantizable_layers(model), args.seed).items():
        seconds: dict[str, list[float]] = {w: [] for w in ways}
        acc = {}
        for _ in range(args.repeats):
            for way, fn in ways.items():
                t = time.perf_counter()
                acc[way] = fn(policy)
                seconds[way].append(time.perf_counter() - t)
        med = {w: statistics.median(s) for w, s in seconds.items()}
        rows.append({"policy": name, **{f"{w}_s": med[w] for w in ways}, "speedup": med["fake_quantized"] /
                     med["inference_copy"], **{f"{w}_acc": acc[w] for w in ways}, "seconds": seconds})
        print(rows[-1])
    summary = {"median_speedup": statistics.median(r["speedup"] for r in rows),
               "max_accuracy_difference_points": max(abs(r["fake_quantized_acc"] - r["inference_copy_acc"]) * 100
                                                     for r in rows)}
    protocol = {**vars(args), "model": spec.to_json(),
                "reward": f"batch-norm re-estimation on {args.reward_bn_batches} training batches of 64, then top-1 on "
                          f"{args.reward_images} val images in batches of 50; 1 torch thread",
                "timing": "per policy, the two ways alternate `repeats` times; the median of each"}
    print(summary)
    print(write_result(__file__, protocol, summary, rows))


if __name__ == "__main__":
    main()
