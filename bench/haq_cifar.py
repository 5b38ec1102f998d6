"""HAQ on CIFAR-10: the agent's mixed-precision policy against every uniform one that meets the same budget.

The MobileNetV2 reference (width 0.5, to fit the hour) is trained on a seeded subset, then quantized under:
  * bitfusion-latency / bitfusion-energy: the budget is the cost of uniform w4a4 on the Bit Fusion model;
    the uniform competitors are the Pareto-maximal (w, a) settings in 2..8 that meet it;
  * size-2bit / size-3bit: weight bytes (k-means codes + codebooks) of uniform k-means at 2 and 3 bits per
    weight (Deep Compression); HAQ picks per-layer weight bits (k-means), activations stay fp32;
  * cpu-ort-latency: halfway between the lookup table's all-int8 and all-fp32 latencies; each operator
    int8 or fp32; the policies are also exported (ONNX Runtime int8 QDQ) and timed together end to end, and
    must also meet the half-way budget in that timing's own milliseconds. HAQ's policy is first lowered
    until it measures within that point timed beside all-int8 and all-fp32 (--measured-check), as
    `tightfit quantize` lowers it until it measures within the user's budget. HAQ's rewards score the
    int8 ONNX model in ONNX Runtime, and so does each row's test accuracy: that model is what cpu-ort runs.
Every policy, HAQ's and the uniform ones, then gets the same straight-through fine-tuning before its test
accuracy is taken on the whole test set.

    python bench/haq_cifar.py [--train-images 5000] [--episodes 30] ...
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _cifar import CIFAR, add_reference_options, load_cifar, reference_recipe, timed_together, trained_reference
from _common import RESULTS, timing_lock, write_result

from tightfit.export.onnx import onnx_accuracy
from tightfit.hardware import CostModel, get_target
from tightfit.hardware.layers import extract_layers
from tightfit.hardware.runtime_ort import OrtRuntime
from tightfit.methods.quantize.costs import AcceleratorCost, OrtCost, SizeCost, operator_layers
from tightfit.methods.quantize.deploy import mixed_int8_onnx
from tightfit.methods.quantize.deployed_reward import deployed_accuracy
from tightfit.methods.quantize.finetune import finetune, quantized_accuracy
from tightfit.methods.quantize.haq import HAQConfig, decision_units, search
from tightfit.methods.quantize.inference import inference_copy
from tightfit.methods.quantize.measured import lower_until_measured
from tightfit.methods.quantize.policy import FP, Calibration, LayerBits, QuantPolicy, quantize_model
from tightfit.methods.rl.ddpg import DDPGConfig
from tightfit.models import ModelSpec
from tightfit.train import evaluate

SHAPE = (3, 32, 32)
ORT_BUDGET_FRACTION = 0.5  # cpu-ort: the budget's place from all-int8 (0) to all-fp32 (1)
ROWS = ("all", "haq", "uniform")
BUDGETS = ("bitfusion-latency", "bitfusion-energy", "size-2bit", "size-3bit", "cpu-ort-latency")


def uniform_bits(names: list[str], w: int, a: int, ends8: bool) -> dict[str, LayerBits]:
    """Every layer at (w, a); with `ends8` the first and last at 8 bits, the usual habit for uniform quantization
    (and HAQ's `keep_ends`)."""
    bits = {n: LayerBits(w, a) for n in names}
    if ends8:
        bits[names[0]] = bits[names[-1]] = LayerBits(8, 8)
    return bits


def uniform_policy(name: str, names: list[str]) -> QuantPolicy:
    """A uniform policy by its row name: wWaA[-ends8] (Bit Fusion), kmeans-Bbit (size), int8 or fp32 (cpu-ort)."""
    if name in ("int8", "fp32"):
        return QuantPolicy({n: LayerBits(8, 8) if name == "int8" else LayerBits() for n in names})
    if match := re.fullmatch(r"kmeans-(\d)bit", name):
        return QuantPolicy({n: LayerBits(int(match.group(1)), FP) for n in names}, "kmeans")
    w, a, ends8 = re.fullmatch(r"w(\d)a(\d)(-ends8)?", name).groups()
    return QuantPolicy(uniform_bits(names, int(w), int(a), bool(ends8)))


def ort_budget(int8_ms: float, fp32_ms: float) -> float:
    """The cpu-ort budget from all-int8's and all-fp32's latency in one timing (or one pricing)."""
    return int8_ms + ORT_BUDGET_FRACTION * (fp32_ms - int8_ms)


def maximal_uniform(cost, names: list[str], budget: float, ends8: bool) -> list[tuple[int, int]]:  # noqa: ANN001
    """Uniform (w, a) settings in 2..8 that meet the budget and that no other fitting setting dominates."""
    fits = [(w, a) for w in range(2, 9) for a in range(2, 9) if cost(uniform_bits(names, w, a, ends8)) <= budget]
    return [s for s in fits if not any(o != s and o[0] >= s[0] and o[1] >= s[1] for o in fits)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_reference_options(p)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--warmup-episodes", type=int, default=10)
    p.add_argument("--reward-images", type=int, default=500, help="validation images behind each episode's reward")
    p.add_argument("--reward-steps", type=int, default=5, help="fine-tuning steps before each episode's reward")
    p.add_argument("--reward-bn-batches", type=int, default=2,
                   help="training batches of batch-norm re-estimation before each episode's reward")
    p.add_argument("--sigma-decay", type=float, default=0.99, help="exploration noise decay per episode (paper 0.99)")
    p.add_argument("--keep-ends", action=argparse.BooleanOptionalAction, default=True,
                   help="bitfusion: HAQ keeps the first and last layer at 8 bits (the released code)")
    p.add_argument("--rescore-top", type=int, default=0,
                   help="rescore HAQ's k best distinct policies with the final fine-tune on the whole val split, "
                        "and keep the best (0: the best reward)")
    p.add_argument("--rescore-images", type=int, default=0,
                   help="rescore on this many held-out training images, in neither subset, instead of the val split")
    p.add_argument("--fill-budget", action=argparse.BooleanOptionalAction, default=False,
                   help="raise HAQ's top policies into the budget they leave unused before rescoring (not a uniform "
                        "policy's: one more bit anywhere makes it mixed)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="keep each search's episodes in a checkpoint beside the cached reference and resume from "
                        "it (rescoring options do not invalidate it; more --episodes continue it)")
    p.add_argument("--measured-check", action=argparse.BooleanOptionalAction, default=True,
                   help="cpu-ort: lower HAQ's policy until it measures within the half-way point of all-int8 and "
                        "all-fp32 timed beside it (methods/quantize/measured.py, as `tightfit quantize` does)")
    p.add_argument("--cpu-reward", choices=("deployed", "simulated"), default="deployed",
                   help="cpu-ort: each episode's and each rescoring's accuracy from the int8 ONNX model as ONNX "
                        "Runtime runs it (as `tightfit quantize` does), or from PyTorch's fake quantization (the "
                        "reward of the runs before 2026-12-01); the rows' test accuracy is the deployed model's "
                        "either way")
    p.add_argument("--finetune-steps", type=int, default=150, help="fine-tuning steps of every final policy")
    p.add_argument("--finetune-lr", type=float, default=0.005)
    p.add_argument("--test-images", type=int, default=10000, help="a seeded random N of the test set (smoke runs)")
    p.add_argument("--size-bmin", type=int, default=1,
                   help="fewest weight bits under a size budget: at 2, a budget of uniform 2 bits admits only that")
    p.add_argument("--budgets", default=",".join(BUDGETS), help="a comma list of " + ", ".join(BUDGETS))
    p.add_argument("--rows", choices=ROWS, default="all",
                   help="haq: only HAQ's search and row; uniform: only the uniform rivals' rows (bitfusion and "
                        "size), so that one budget's search and its rivals can run side by side; haq_merge.py "
                        "joins the parts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="append -TAG to the result's name (a variant beside the main result)")
    args = p.parse_args()
    chosen = args.budgets.split(",")
    if set(chosen) - set(BUDGETS):
        p.error(f"--budgets {args.budgets}: use some of {', '.join(BUDGETS)}")
    if "cpu-ort-latency" in chosen and args.rows != "all":
        p.error("cpu-ort-latency times HAQ's policy beside all-int8 and all-fp32: run it with --rows all")
    # a subset writes beside the full result, not over it
    out = "haq_cifar" if set(chosen) == set(BUDGETS) else "haq_cifar-" + "+".join(chosen)
    out += f"-{args.rows}" if args.rows != "all" else ""
    out += f"-{args.tag}" if args.tag else ""
    started = time.perf_counter()
    data = load_cifar(args.train_images, args.val_images, args.seed, args.rescore_images)
    data.test = data.test.subset(_sample(len(data.test), args.test_images, args.seed))
    spec = ModelSpec("mobilenetv2", 32, 3, 10, args.width)
    model, trained = trained_reference(spec, data, reference_recipe(args.train_epochs, args.seed))
    model = model.eval().to(memory_format=torch.channels_last)  # about 2x faster convolutions on this CPU
    print("trained", trained)
    train = data.loader("train", 64, shuffle=True, seed=args.seed)
    val, test = data.loader("val", 50), data.loader("test", 50)  # small batches stay in cache: faster here
    calibration = Calibration(model, [x for x, _ in list(train)[:4]], seed=args.seed)
    accuracy = lambda m: evaluate(m, val)[1]  # noqa: E731
    reward_val = data.loader_of(data.val.subset(_sample(len(data.val), args.reward_images, args.seed)), 50)
    reward_accuracy = lambda m: evaluate(m, reward_val)[1]  # noqa: E731
    original = reward_accuracy(model)
    reward_of = quantized_accuracy(model, calibration, train, args.reward_steps, args.finetune_lr, reward_accuracy,
                                   args.reward_bn_batches)
    rescore_split = data.loader_of(data.holdout, 50) if args.rescore_images else val
    ort_calibration = ort_calibration_of(data)
    layers = extract_layers(model, SHAPE)
    names = [op.name for op in layers]
    tuned: dict[str, torch.nn.Module] = {}  # the rescored policies, fine-tuned: the winner's final reuses its own

    def finetuned(policy: QuantPolicy) -> torch.nn.Module:
        torch.manual_seed(args.seed)
        return finetune(quantize_model(model, policy, calibration), train, args.finetune_steps, args.finetune_lr)

    def rescore(policy: QuantPolicy) -> float:
        q = tuned[_key(policy)] = finetuned(policy)
        return evaluate(inference_copy(q), rescore_split)[1]

    def final(policy: QuantPolicy) -> tuple[torch.nn.Module, dict]:
        """The policy fine-tuned (or its fine-tune from rescoring: the same steps, learning rate and seed),
        scored on its inference copy (the same network, quantized weights and folded batch norm computed once)."""
        before = accuracy(inference_copy(quantize_model(model, policy, calibration)))
        q = tuned.pop(_key(policy), None)
        q = finetuned(policy) if q is None else q
        tuned.clear()
        frozen = inference_copy(q)
        return q, {"val_acc_before_finetune": before, "val_acc": accuracy(frozen),
                   "test_acc": evaluate(frozen, test)[1]}

    def run_haq(budget_name: str, config: HAQConfig, cost, units, reward=reward_of, base=original,  # noqa: ANN001
                rescorer=rescore) -> dict:
        t0 = time.perf_counter()
        config = replace(config, rescore_top=args.rescore_top, fill_budget=args.fill_budget)
        checkpoint = _checkpoint(args, spec, budget_name, config) if args.resume else None
        result = search(units, config, cost, reward, base, checkpoint, progress=False, log=print, rescore=rescorer)
        policy = QuantPolicy.from_json(result.best["policy"])
        curves[budget_name] = [h["reward"] for h in result.history]
        policies[budget_name] = policy
        return {"policy_obj": policy, "search_seconds": time.perf_counter() - t0, "best_episode":
                result.best["episode"], "rescored": result.rescored}

    rows, curves, policies, models_cpu = [], {}, {}, {}
    ddpg = DDPGConfig(warmup_episodes=args.warmup_episodes, sigma_decay=args.sigma_decay, seed=args.seed)
    cache: dict[str, dict] = {}  # a uniform policy's fine-tuned scores, shared by the budgets it fits

    def add_row(budget_name: str, name: str, policy: QuantPolicy, cost, budget: float, extra=None) -> None:  # noqa: ANN001
        key = f"{name}:{policy.method}"
        if name == "haq" or key not in cache:
            q, scores = final(policy)
            if budget_name == "cpu-ort-latency":
                models_cpu[name] = (q, policy)
            if name != "haq":
                cache[key] = scores
        else:
            scores = cache[key]
        rows.append({"budget": budget_name, "policy": name, "cost": cost(policy.bits), "budget_value": budget,
                     "unit": cost.unit, "meets_budget": cost(policy.bits) <= budget * (1 + 1e-9), **scores,
                     **(extra or {})})
        print(rows[-1])

    # bit-flexible accelerator: latency, then energy, both at the cost of uniform w4a4
    target = get_target("bitfusion")
    for metric in ("latency", "energy"):
        budget_name = f"bitfusion-{metric}"
        if budget_name not in chosen:
            continue
        cost = AcceleratorCost(model, SHAPE, target, metric)
        budget = cost({n: LayerBits(4, 4) for n in names})
        config = HAQConfig(budget=budget, mode="mixed", episodes=args.episodes, keep_ends=args.keep_ends,
                           seed=args.seed, ddpg=ddpg)
        if args.rows != "uniform":
            haq = run_haq(budget_name, config, cost, decision_units(layers, "mixed"))
            add_row(budget_name, "haq", haq.pop("policy_obj"), cost, budget, haq)
        for ends8 in (False, True) if args.rows != "haq" else ():
            for w, a in maximal_uniform(cost, names, budget, ends8):
                rival = f"w{w}a{a}" + ("-ends8" if ends8 else "")
                add_row(budget_name, rival, uniform_policy(rival, names), cost, budget)

        _partial(out, args, rows)

    # model size with k-means (Deep Compression): weights only
    for avg in (2, 3):
        budget_name = f"size-{avg}bit"
        if budget_name not in chosen:
            continue
        cost = SizeCost(model, SHAPE, "kmeans")
        uniform = uniform_policy(f"kmeans-{avg}bit", names)
        budget = cost(uniform.bits)
        config = HAQConfig(budget=budget, mode="weights", method="kmeans", b_min=args.size_bmin,
                           episodes=args.episodes, seed=args.seed, ddpg=ddpg)
        if args.rows != "uniform":
            haq = run_haq(budget_name, config, cost, decision_units(layers, "weights"))
            add_row(budget_name, "haq", haq.pop("policy_obj"), cost, budget, haq)
        if args.rows != "haq":
            add_row(budget_name, f"kmeans-{avg}bit", uniform, cost, budget)
        _partial(out, args, rows)

    if "cpu-ort-latency" in chosen:  # which operators run int8, half way between all-int8 and all-fp32
        cpu = CostModel(get_target("cpu-ort"), progress=False)
        cost = OrtCost(model, cpu)
        groups = operator_layers(model)
        all_int8, all_fp32 = uniform_policy("int8", names), uniform_policy("fp32", names)
        lo, hi = cost(all_int8.bits), cost(all_fp32.bits)
        budget = ort_budget(lo, hi)
        config = HAQConfig(budget=budget, mode="int8", episodes=args.episodes, seed=args.seed, ddpg=ddpg)
        units = decision_units(layers, "int8", groups)
        if args.cpu_reward == "deployed":  # what cpu-ort runs: ORT's int8, calibrated as the final models are
            reward = deployed_accuracy(model, SHAPE, ort_calibration, reward_val, cost.precisions)

            def rescore_deployed(policy: QuantPolicy) -> float:
                q = tuned[_key(policy)] = finetuned(policy)
                blob = mixed_int8_onnx(q, cost.precisions(policy.bits), SHAPE, ort_calibration)
                return onnx_accuracy(OrtRuntime(threads=torch.get_num_threads()).session(blob), rescore_split)

            haq = run_haq("cpu-ort-latency", config, cost, units, reward, reward(all_fp32), rescore_deployed)
        else:
            haq = run_haq("cpu-ort-latency", config, cost, units)
        policy = haq.pop("policy_obj")
        if args.measured_check:  # as the product does, with the budget half way in the same timing
            n_ops = len(groups)
            with timing_lock():
                bits, haq["measured_check"] = lower_until_measured(
                    policy.bits, units, cost, lambda ms: ort_budget(ms["int8"], ms["fp32"]),
                    {"int8": [8] * n_ops, "fp32": [32] * n_ops}, log=print)
            policy = policies["cpu-ort-latency"] = QuantPolicy(bits, policy.method)
        add_row("cpu-ort-latency", "haq", policy, cost, budget, haq)
        add_row("cpu-ort-latency", "int8", all_int8, cost, budget)
        add_row("cpu-ort-latency", "fp32", all_fp32, cost, budget)
        measured = _measure_cpu(models_cpu, cost, data, ort_calibration)
        # the same budget, half way from all-int8 to all-fp32, in this timing's own milliseconds: the table's
        # anchors were timed minutes earlier, and a shared machine drifts by more than the margins at stake
        lo_ms, hi_ms = measured["int8"]["measured_ms"], measured["fp32"]["measured_ms"]
        for row in rows:
            if row["budget"] == "cpu-ort-latency":
                row.update(measured[row["policy"]])
                # cpu-ort's accuracy is the deployed model's; PyTorch's simulation of it beside
                row["torch_test_acc"], row["test_acc"] = row["test_acc"], row["onnx_test_acc"]
                row["measured_budget_ms"] = ort_budget(lo_ms, hi_ms)
                row["meets_budget_measured"] = row["measured_ms"] <= row["measured_budget_ms"]

    shown = ("budget", "policy", "meets_budget", "test_acc", "cost", "budget_value", "unit", "measured_ms",
             "measured_budget_ms", "meets_budget_measured")
    summary = {"rows": [{k: r[k] for k in shown if k in r} for r in rows],
               "original_test_acc": trained["test_acc"], "original_val_acc": trained["val_acc"],
               "original_reward_val_acc": original,
               "reward_curves": curves, "bits_by_kind": {b: _bits_by_kind(policies[b], layers) for b in policies},
               "policies": {b: policy.to_json() for b, policy in policies.items()}}
    summary["verdicts"] = verdicts_of(rows)
    summary["goal_met"] = goal_met(summary["verdicts"]) if summary["verdicts"] else None  # no HAQ row: haq_merge.py
    summary["bench_minutes"] = (time.perf_counter() - started) / 60
    protocol = {**vars(args), "model": spec.to_json(), "trained": trained,
                "data": "CIFAR-10 JPEG copy (../shared/data), seeded stratified subsets; test: all 10,000",
                "reward": "0.1 x (val top-1 in % after reward_bn_batches batches of batch-norm re-estimation and "
                          "reward_steps STE steps - original), a seeded random reward_images of the val subset",
                "rescoring": "with rescore_top k > 0: HAQ's k best distinct policies by reward get the final "
                             "fine-tune and are scored on the whole val split, or with rescore_images n on n "
                             "held-out training images in neither subset; the best of them is HAQ's policy, and its "
                             "rescoring fine-tune is its final one",
                "fill_budget": "with --fill-budget, each of those policies is first raised into the budget it leaves "
                               "unused (haq.raise_within_budget: one bit at a time, cheapest raise first)",
                "uniform": "bitfusion rivals: every Pareto-maximal uniform (w, a) in 2..8 that meets the budget, "
                           "plain and with the first and last layer at 8 bits (-ends8)",
                "final": "every policy: finetune_steps SGD steps (batch 64, momentum 0.9, constant lr) with the "
                         "straight-through estimator (seeded alike), then test accuracy of the PyTorch "
                         "fake-quantized network on its inference copy (weights quantized and batch norm folded once)",
                "budgets": "bitfusion: cost of uniform w4a4; size: bytes of uniform k-means at 2/3 bits (codes + "
                           "fp32 codebooks); cpu-ort: lookup-table all-int8 + half the gap to all-fp32",
                "cpu_ort": "int8 via ONNX Runtime static QDQ quantization of the chosen operators (per-channel "
                           "weights, min/max activations on 4 x 64 training images); 1 thread, batch 1. With "
                           "cpu_reward deployed, every episode's reward and every rescoring scores that ONNX model "
                           "in ONNX Runtime (rewards without fine-tuning or batch-norm re-estimation). Each row's "
                           "test_acc is the deployed ONNX model's (onnx_test_acc); torch_test_acc is PyTorch's "
                           "fake-quantized network after the same fine-tune"}
    print(write_result(out, protocol, summary, rows))
    _plot_bits(policies, layers, out)  # after the JSON: a plotting failure must not lose the measurements


def verdicts_of(rows: list[dict]) -> dict:
    """Per budget: HAQ's test accuracy against the best uniform policy that meets the same budget, and whether
    HAQ's own policy meets it; where policies were also measured, a policy meets the budget only if it does
    both as the cost model prices it and as measured."""
    def meets(r: dict) -> bool:
        return r["meets_budget"] and r.get("meets_budget_measured", True)

    verdicts = {}
    for budget_name in dict.fromkeys(r["budget"] for r in rows):
        mine = [r for r in rows if r["budget"] == budget_name]
        h = next((r for r in mine if r["policy"] == "haq"), None)
        if h is None:  # a part of the rivals only (--rows uniform): judged once merged with its HAQ part
            continue
        rivals = [r for r in mine if r["policy"] != "haq" and meets(r)]
        best = max(rivals, key=lambda r: r["test_acc"]) if rivals else None
        verdicts[budget_name] = {"haq_test_acc": h["test_acc"], "best_uniform": best and best["policy"],
                                 "best_uniform_test_acc": best and best["test_acc"],
                                 "haq_at_least_as_accurate": best is None or h["test_acc"] >= best["test_acc"],
                                 "haq_meets_budget": meets(h)}
    return verdicts


def goal_met(verdicts: dict) -> bool:
    """The issue's goal: in every row, HAQ meets the budget and is at least as accurate as every uniform policy
    that does."""
    return all(v["haq_at_least_as_accurate"] and v["haq_meets_budget"] for v in verdicts.values())


def _checkpoint(args: argparse.Namespace, spec: ModelSpec, budget_name: str, config: HAQConfig) -> Path:
    """Where a search keeps its episodes: named by everything that shapes them, the reward's settings included
    (the search itself checks only the HAQ config)."""
    key = {"budget": budget_name, "model": spec.to_json(), "config": config.search_identity(),
           **{k: getattr(args, k) for k in ("train_images", "val_images", "train_epochs", "reward_images",
                                              "reward_steps", "reward_bn_batches", "finetune_lr", "seed")}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return CIFAR.parent / "bench-searches" / f"haq-{budget_name}-{digest}.pt"


def _key(policy: QuantPolicy) -> str:
    return json.dumps(policy.to_json(), sort_keys=True)


def _sample(total: int, n: int, seed: int) -> list[int]:
    """A seeded random n of range(total), in order: the image folders are sorted by class, so a prefix is not
    a sample."""
    if n >= total:
        return list(range(total))
    return sorted(torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].tolist())


def _partial(out: str, args: argparse.Namespace, rows: list[dict]) -> None:
    """The rows so far, in case the run is cut short (the final file replaces it)."""
    write_result(out, {**vars(args), "partial": True}, {"rows": rows, "partial": True}, rows)


def _bits_by_kind(policy: QuantPolicy, layers) -> dict:  # noqa: ANN001
    kinds = {op.name: op.kind for op in layers}
    out = {}
    for kind in ("depthwise", "conv", "linear"):
        chosen = [b for n, b in policy.bits.items() if kinds[n] == kind]
        if chosen:
            out[kind] = {"mean_w_bits": float(np.mean([b.w_bits for b in chosen])),
                         "mean_a_bits": float(np.mean([b.a_bits for b in chosen]))}
    return out


def ort_calibration_of(data) -> list:  # noqa: ANN001
    """ONNX Runtime's calibration images for every cpu-ort model of the bench: 4 x 64 training images."""
    return [x.numpy() for x, _ in itertools.islice(data.loader("train", 64, shuffle=True, seed=1), 4)]


def _measure_cpu(models: dict, cost: OrtCost, data, calibration: list) -> dict:  # noqa: ANN001
    """Each cpu-ort policy exported (int8 operators through ONNX Runtime) and timed together end to end;
    ONNX Runtime's test accuracy beside it."""
    import onnxruntime as ort

    runtime = cost.cost.target.runtime()
    sessions, fns = {}, []
    for name, (q, policy) in models.items():
        precisions = cost.precisions(policy.bits)
        blob = mixed_int8_onnx(q, precisions, SHAPE, calibration)
        sessions[name] = (ort.InferenceSession(blob, providers=["CPUExecutionProvider"]), precisions)
        fns.append(runtime.prepare_onnx(blob, SHAPE))
    ms = timed_together(fns)
    out = {}
    for (name, (session, precisions)), t in zip(sessions.items(), ms, strict=True):
        out[name] = {"measured_ms": t, "onnx_test_acc": onnx_test_accuracy(session, data),
                     "int8_operators": precisions.count(8), "operators": len(precisions)}
    return out


def onnx_test_accuracy(session, data) -> float:  # noqa: ANN001
    """Top-1 of an ONNX Runtime session on the test set, one image at a time as cpu-ort runs it."""
    correct = total = 0
    for x, y in data.loader("test", 500):
        for i in range(len(x)):
            logits = session.run(None, {"input": x[i:i + 1].contiguous().numpy()})[0]
            correct += int(logits.argmax() == y[i])
        total += len(x)
    return correct / total


def _plot_bits(policies: dict[str, QuantPolicy], layers, out: str) -> None:  # noqa: ANN001
    from tightfit.pipeline.figures import pyplot

    plt = pyplot()
    shown = [b for b in ("bitfusion-latency", "bitfusion-energy", "size-2bit", "size-3bit") if b in policies]
    if not shown:  # cpu-ort policies are int8/fp32 per operator: the rows say which
        return
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, 2.4 * len(shown)), sharex=True)
    x = np.arange(len(layers))
    for ax, name in zip(np.atleast_1d(axes), shown, strict=True):
        bits = policies[name].bits
        w = [bits[op.name].w_bits for op in layers]
        a = [bits[op.name].a_bits if bits[op.name].a_bits <= 8 else 0 for op in layers]
        dw = [op.kind == "depthwise" for op in layers]
        ax.bar(x - 0.2, w, 0.4, label="weight bits", color=["tab:orange" if d else "tab:blue" for d in dw])
        if any(a):
            ax.bar(x + 0.2, a, 0.4, label="activation bits", color="tab:gray")
        ax.set(ylabel="bits", title=f"{name} (orange: depthwise)", ylim=(0, 8.5))
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3, axis="y")
    np.atleast_1d(axes)[-1].set_xlabel("layer")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{out.replace('haq_cifar', 'haq_bits')}.png", dpi=110)


if __name__ == "__main__":
    main()
