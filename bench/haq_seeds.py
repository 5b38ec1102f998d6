"""Fine-tuning seeds: is HAQ's margin over its best uniform rival bigger than the fine-tune's own luck?

haq_cifar.py fine-tunes every policy once (seed 0). This takes the policies recorded in haq_cifar.json or
`--source` (nothing is searched again): for each chosen budget, HAQ's policy and the best uniform rival, each
quantized with the same calibration and fine-tuned with several seeds (data order, augmentation, torch's
RNG), then tested on the whole test set, on the inference copy as haq_cifar.py tests (cpu-ort: the int8 ONNX
model in ONNX Runtime, as haq_cifar.py tests it since it has --cpu-reward). Seed 0 repeats
haq_cifar.py's own fine-tune, so its figures must equal the file's (`summary.seed0_reproduces`).

    python bench/haq_seeds.py [--seeds 0,1,2,3] [--budgets bitfusion-latency,bitfusion-energy] [--source NAME]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _cifar import load_cifar, reference_recipe, trained_reference
from _common import RESULTS, write_result
from haq_cifar import onnx_test_accuracy, ort_calibration_of, uniform_policy

from tightfit.hardware.layers import extract_layers
from tightfit.hardware.runtime_ort import OrtRuntime
from tightfit.methods.quantize.costs import operator_layers, operator_precisions
from tightfit.methods.quantize.deploy import mixed_int8_onnx
from tightfit.methods.quantize.finetune import finetune
from tightfit.methods.quantize.inference import inference_copy
from tightfit.methods.quantize.policy import Calibration, QuantPolicy, quantize_model
from tightfit.models import ModelSpec
from tightfit.train import evaluate

SHAPE = (3, 32, 32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--budgets", default="bitfusion-latency,bitfusion-energy")
    p.add_argument("--finetune-steps", type=int, help="default: the source run's (smoke runs: fewer)")
    p.add_argument("--source", default="haq_cifar", help="the haq_cifar result (merged or one run) to take from")
    p.add_argument("--tag", default="", help="write haq_seeds-TAG.json (a variant beside the main result)")
    args = p.parse_args()
    started = time.perf_counter()
    source = json.loads((RESULTS / f"{args.source}.json").read_text())
    verdicts, rows_of = source["summary"]["verdicts"], source["rows"]
    budgets = args.budgets.split(",")
    if missing := [b for b in budgets if b not in source["summary"]["policies"]]:
        raise SystemExit(f"{args.source}.json has no recorded HAQ policy for {missing}; rerun haq_cifar.py for them")
    merged = source["protocol"].get("merged_from")

    def protocol_of(row: dict) -> dict:
        return merged[row["source"]] if merged else source["protocol"]

    part = protocol_of(next(r for r in rows_of if r["budget"] == budgets[0]))
    if any(protocol_of(r)["finetune_steps"] != part["finetune_steps"] for r in rows_of if r["budget"] in budgets):
        raise SystemExit("the chosen budgets were fine-tuned differently; compare them one at a time")
    steps = part["finetune_steps"] if args.finetune_steps is None else args.finetune_steps

    data = load_cifar(part["train_images"], part["val_images"], part["seed"])
    spec = ModelSpec.from_json(part["model"])
    model, _ = trained_reference(spec, data, reference_recipe(part["train_epochs"], part["seed"]))
    model = model.eval().to(memory_format=torch.channels_last)
    train = data.loader("train", 64, shuffle=True, seed=part["seed"])
    calibration = Calibration(model, [x for x, _ in list(train)[:4]], seed=part["seed"])
    names = [op.name for op in extract_layers(model, SHAPE)]
    test = data.loader("test", 50)

    policies: dict[str, QuantPolicy] = {}  # by name; a uniform rival shared by two budgets is tuned once
    deployed: set[str] = set()  # the cpu-ort policies, tested as ONNX Runtime runs them
    for budget in budgets:
        policies[f"haq@{budget}"] = QuantPolicy.from_json(source["summary"]["policies"][budget])
        rival = verdicts[budget]["best_uniform"]
        policies[rival] = uniform_policy(rival, names)
        row = next(r for r in rows_of if r["budget"] == budget)
        if budget == "cpu-ort-latency" and "cpu_reward" in protocol_of(row):  # rows scored as deployed since then
            deployed |= {f"haq@{budget}", rival}
    seeds = [int(s) for s in args.seeds.split(",")]
    operators, ort_calibration = operator_layers(model), ort_calibration_of(data)
    rows = []
    for name, policy in policies.items():
        for seed in seeds:
            torch.manual_seed(seed)
            q = quantize_model(model, policy, calibration)
            q = finetune(q, data.loader("train", 64, shuffle=True, seed=seed), steps, part["finetune_lr"])
            if name in deployed:
                blob = mixed_int8_onnx(q, operator_precisions(operators, policy.bits), SHAPE, ort_calibration)
                acc = onnx_test_accuracy(OrtRuntime().session(blob), data)
            else:
                acc = evaluate(inference_copy(q), test)[1]
            rows.append({"policy": name, "seed": seed, "test_acc": acc})
            print(rows[-1])

    def accs(name: str) -> list[float]:
        return [r["test_acc"] for r in rows if r["policy"] == name]

    summary, reproduces = {"budgets": {}}, True
    for budget in budgets:
        rival = verdicts[budget]["best_uniform"]
        mine, theirs = accs(f"haq@{budget}"), accs(rival)
        diffs = [m - t for m, t in zip(mine, theirs, strict=True)]
        summary["budgets"][budget] = {
            "uniform": rival, "haq_mean": statistics.mean(mine), "uniform_mean": statistics.mean(theirs),
            "haq_stdev": statistics.stdev(mine), "uniform_stdev": statistics.stdev(theirs),
            "mean_difference": statistics.mean(diffs), "haq_ahead_in_seeds": sum(d >= 0 for d in diffs),
            "haq_at_least_as_accurate_on_average": statistics.mean(mine) >= statistics.mean(theirs)}
        if 0 in seeds and steps == part["finetune_steps"]:
            file_acc = {r["policy"]: r["test_acc"] for r in rows_of if r["budget"] == budget}
            reproduces &= mine[seeds.index(0)] == file_acc["haq"] and theirs[seeds.index(0)] == file_acc[rival]
    summary["seed0_reproduces"] = reproduces if 0 in seeds and steps == part["finetune_steps"] else None
    summary["bench_minutes"] = (time.perf_counter() - started) / 60
    protocol = {**vars(args), "policies": f"as recorded in {args.source}.json (HAQ's chosen policy per budget and the "
                "best uniform rival that meets it)", "finetune_steps": steps,
                "finetune_lr": part["finetune_lr"], "calibration": "4 x 64 training images, seed of the source run",
                "seed": "torch.manual_seed and the training loader's order and augmentation",
                "test": "all 10,000 test images, PyTorch fake-quantized; cpu-ort policies of a source run that has "
                        "cpu_reward: the int8 ONNX model in ONNX Runtime, one image at a time"}
    print(write_result("haq_seeds", protocol, summary, rows, tag=args.tag))


if __name__ == "__main__":
    main()
