"""Stage (step 3): HAQ picks every layer's bits under a latency, energy or size budget, then fine-tunes.

What the budget bounds depends on the target (SPEC section 3):
  * a bit-flexible accelerator (`bitfusion`, a user's accel.yaml): weight and activation bits per layer,
    linear quantization, latency or energy from the accelerator model;
  * a size budget, on any target: weight bits per layer, k-means (Deep Compression), bytes of the weights;
  * `cpu-ort`, whose kernels are int8 or fp32: which operators run int8, latency from the lookup table.
The reward of every episode is the validation accuracy after a short straight-through fine-tune; on cpu-ort
it is the accuracy of the int8 ONNX model as ONNX Runtime runs it (methods/quantize/deployed_reward.py). The best
policy is applied, fine-tuned for a few epochs, packed (the packed file's size is the model size) and,
on cpu-ort, built into the int8 ONNX model that is deployed. On cpu-ort the policy is first timed as
deployed and lowered (one more operator int8 at a time) until it measures within the budget
(methods/quantize/measured.py): the table's price alone is minutes old.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tightfit.data.loader import BatchLoader
from tightfit.errors import TightfitError
from tightfit.fileio import write_atomic
from tightfit.hardware.cost import CostModel
from tightfit.hardware.layers import LayerOp, extract_layers
from tightfit.hardware.targets import Target
from tightfit.methods.quantize.costs import AcceleratorCost, OrtCost, SizeCost, operator_layers
from tightfit.methods.quantize.deploy import mixed_int8_onnx, quantized_values_model
from tightfit.methods.quantize.deployed_reward import deployed_accuracy
from tightfit.methods.quantize.finetune import quantized_accuracy
from tightfit.methods.quantize.haq import HAQConfig, decision_units, search
from tightfit.methods.quantize.measured import lower_until_measured
from tightfit.methods.quantize.packing import pack
from tightfit.methods.quantize.policy import FP, Calibration, LayerBits, QuantLayer, QuantPolicy, quantize_model
from tightfit.methods.rl.ddpg import DDPGConfig
from tightfit.pipeline.config import QuantizeSettings, RunConfig, parse_uniform
from tightfit.pipeline.stages import Candidate, QuantizedArtifacts, RunContext, StageRecord
from tightfit.train.trainer import Trainer, evaluate

CALIBRATION_BATCHES = 4  # of 64 training images: activation clipping, and ORT's int8 calibration
BATCH = 64
PACKED = "weights.packed.safetensors"
INT8_ONNX = "model.int8.onnx"
UNITS = {"latency": "ms", "energy": "mJ", "size": "bytes"}


@dataclass(frozen=True)
class HAQPlan:
    """How HAQ runs on a target: what one decision sets, how weights are quantized, what the budget bounds."""

    mode: str  # "mixed", "weights" or "int8" (haq.MODES)
    method: str  # "linear" or "kmeans"
    metric: str  # "latency", "energy" or "size"


def haq_plan(settings: QuantizeSettings, target: Target) -> HAQPlan:
    if settings.metric == "size":
        return HAQPlan("weights", "kmeans", "size")
    if target.kind == "analytic":
        return HAQPlan("mixed", "linear", settings.metric)
    if not target.int8:
        raise TightfitError(f"target {target.name} has no low-bit kernels to choose between; quantize for cpu-ort "
                            "(int8), bitfusion or an accel.yaml, or give a size budget (--size-bits 3)")
    if settings.metric != "latency":
        raise TightfitError(f"on {target.name} HAQ bounds the latency from the lookup table (its energy is "
                            "modelled from latency); give --latency, or a size budget (--size-bits 3)")
    if settings.uniform is not None and parse_uniform(settings.uniform) != (8, 8):
        raise TightfitError(f"{target.name} runs operators int8 or fp32 only: --budget-uniform {settings.uniform} "
                            "has no meaning there; use --budget-uniform w8a8 (every operator int8) or --latency")
    return HAQPlan("int8", "linear", "latency")


class QuantizeStage:
    name = "quantize"
    distributed = False

    def check(self, config: RunConfig, target: Target) -> None:
        """The budget and the target must make sense together (before any work or folder)."""
        if not config.quantize.enabled:
            raise TightfitError("step 3 (HAQ) needs a budget: --latency 0.5ms, --energy 2mJ, --size-bits 3 or "
                                "--budget-uniform w4a4")
        haq_plan(config.quantize, target)

    def run(self, candidate: Candidate | None, ctx: RunContext, workdir: Path) -> tuple[Candidate, StageRecord]:
        assert candidate is not None, "quantization needs a network"
        start = time.perf_counter()
        settings, cfg, shape = ctx.config.quantize, ctx.config, ctx.input_shape
        plan = haq_plan(settings, ctx.target)
        model = candidate.model.cpu().to(memory_format=torch.contiguous_format).eval()
        if plan.mode == "int8" and candidate.spec.keep is not None:
            raise TightfitError("the cpu-ort lookup table prices the search space's unpruned operators; quantize "
                                "a channel-pruned network for bitfusion or an accel.yaml, or under a size budget")
        layers = extract_layers(model, shape)
        cost = _cost(plan, model, shape, ctx.target, ctx.progress)
        budget, budget_source = _budget(settings, plan, cost, layers)
        config = HAQConfig(budget=budget, mode=plan.mode, method=plan.method, b_min=settings.b_min,
                           b_max=settings.b_max, keep_ends=settings.keep_ends, episodes=settings.episodes,
                           seed=cfg.seed, ddpg=DDPGConfig(warmup_episodes=settings.warmup_episodes, sigma_decay=0.99))
        loader = BatchLoader(ctx.train, BATCH, ctx.normalize, shuffle=True, seed=cfg.seed)
        calibration_batches = _take(loader, CALIBRATION_BATCHES)
        calibration = Calibration(model, [x for x, _ in calibration_batches], seed=cfg.seed)
        val = BatchLoader(ctx.val, 256, ctx.normalize)
        accuracy = lambda m: evaluate(m, val)[1]  # noqa: E731
        if plan.mode == "int8":  # what cpu-ort runs: ORT's int8, not PyTorch's simulation of it
            reward_of = deployed_accuracy(model, shape, [x.numpy() for x, _ in calibration_batches], val,
                                          cost.precisions)
            original = reward_of(QuantPolicy({op.name: LayerBits() for op in layers}))
        else:
            reward_of = quantized_accuracy(model, calibration, _take(loader, settings.reward_steps),
                                           settings.reward_steps, settings.reward_lr, accuracy)
            original = accuracy(model)
        units = decision_units(layers, plan.mode, operator_layers(model) if plan.mode == "int8" else None)
        print(f"step 3 (HAQ): {plan.mode} precision, budget {budget:.4g} {UNITS[plan.metric]} ({budget_source}); "
              f"{len(units)} decisions per episode")
        result = search(units, config, cost, reward_of, original, checkpoint=workdir / "haq.pt",
                        progress=ctx.progress, log=print)
        policy = QuantPolicy.from_json(result.best["policy"])
        measured_check = None
        if plan.mode == "int8":  # the table's price is minutes old: the deployed policy must fit as timed
            bits, measured_check = lower_until_measured(policy.bits, units, cost,
                                                        *_measured_budget(settings, budget, len(cost.operators)),
                                                        log=print)
            policy = QuantPolicy(bits, policy.method)
        quantized = quantize_model(model, policy, calibration)
        before = accuracy(quantized)
        quantized, history = _finetune(quantized, ctx, workdir)
        packed_bytes = pack(quantized, policy, workdir / PACKED)
        onnx, precisions = None, None
        if plan.mode == "int8":
            precisions = cost.precisions(policy.bits)
            data = mixed_int8_onnx(quantized, precisions, shape, [x.numpy() for x, _ in calibration_batches])
            write_atomic(workdir / INT8_ONNX, lambda tmp: tmp.write_bytes(data))
            onnx = str((workdir / INT8_ONNX).relative_to(ctx.run_dir))
        clips = {n: (float(m.a_clip), bool(m.a_signed)) for n, m in quantized.named_modules()
                 if isinstance(m, QuantLayer) and m.bits.a_bits < FP}
        artifacts = QuantizedArtifacts(policy.to_json(), clips, str((workdir / PACKED).relative_to(ctx.run_dir)),
                                       onnx)
        record = StageRecord(self.name, time.perf_counter() - start, {
            "plan": {"mode": plan.mode, "method": plan.method, "metric": plan.metric, "unit": UNITS[plan.metric]},
            "budget": budget, "budget_source": budget_source, "cost": cost(policy.bits), "config": config.to_json(),
            "best": result.best, "reward_curve": [h["reward"] for h in result.history], "history": result.history,
            "layers": _layers(layers, policy), "avg_weight_bits": _avg_weight_bits(layers, policy),
            "bitops": sum(op.macs * min(policy.bits[op.name].w_bits, FP) * min(policy.bits[op.name].a_bits, FP)
                          for op in layers),
            "predicted": _predicted(plan, model, shape, ctx.target, policy, cost),
            "int8_operators": precisions, "measured_check": measured_check, "packed_bytes": packed_bytes,
            "val_acc_original": original, "val_acc_before_finetune": before,
            "val_acc_after_finetune": accuracy(quantized), "finetune_history": history,
        })
        return Candidate(quantized_values_model(quantized), candidate.spec, artifacts), record


def _cost(plan: HAQPlan, model: nn.Module, shape: tuple[int, ...], target: Target,
          progress: bool) -> AcceleratorCost | SizeCost | OrtCost:
    if plan.metric == "size":
        return SizeCost(model, shape, "kmeans")
    if plan.mode == "mixed":
        return AcceleratorCost(model, shape, target, plan.metric)
    return OrtCost(model, CostModel(target, progress))


def _budget(settings: QuantizeSettings, plan: HAQPlan, cost: AcceleratorCost | SizeCost | OrtCost,
            layers: list[LayerOp]) -> tuple[float, str]:
    """The budget in the cost's unit: the value given, or what a uniform policy costs. A size budget of b
    bits per weight is the k-means size of the uniform b-bit policy (interpolated between whole bits)."""
    def uniform(w: int, a: int) -> float:
        return cost({op.name: LayerBits(w, FP if plan.metric == "size" else a) for op in layers})

    if settings.uniform is not None:
        return uniform(*parse_uniform(settings.uniform)), f"the cost of uniform {settings.uniform}"
    value = float(settings.value)
    if plan.metric == "size":
        low, high = math.floor(value), math.ceil(value)
        return (uniform(low, FP) + (value - low) * (uniform(high, FP) - uniform(low, FP)),
                f"{value:g} bits per weight, k-means")
    return value, f"{value:g} {UNITS[plan.metric]}"


def _measured_budget(settings: QuantizeSettings, budget: float,
                     n_ops: int) -> tuple[Callable[[Mapping[str, float]], float], dict[str, list[int]]]:
    """What the cpu-ort policy must measure within, and the references timed beside it: the milliseconds
    given, or (--budget-uniform w8a8) every operator int8 in the same timing."""
    if settings.uniform is not None:
        return (lambda ms: ms["int8"]), {"int8": [8] * n_ops}
    return (lambda ms: budget), {}


def _take(loader: BatchLoader, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first n batches, going round the loader again if it has fewer (the reward's fixed batches)."""
    batches: list = []
    while len(batches) < n:
        batches.extend(b for b, _ in zip(loader, range(n - len(batches)), strict=False))
    return batches


def _finetune(quantized: nn.Module, ctx: RunContext, workdir: Path) -> tuple[nn.Module, list[dict]]:
    """Straight-through fine-tuning of the chosen policy on the training split, resumable per epoch."""
    settings, cfg = ctx.config.quantize, ctx.config
    if not settings.finetune_epochs:
        return quantized, []
    train_cfg = replace(cfg.train, epochs=settings.finetune_epochs, lr=cfg.train.lr * 0.1, warmup_epochs=0.0)
    loader = BatchLoader(ctx.train, train_cfg.batch_size, ctx.normalize, augment=ctx.data.augment, shuffle=True,
                         seed=cfg.seed, channels_last=train_cfg.channels_last)
    val = BatchLoader(ctx.val, 256, ctx.normalize)
    trainer = Trainer(quantized, train_cfg, loader, val, checkpoint=workdir / "finetune.pt", progress=ctx.progress,
                      log=print)
    history = trainer.fit().to_json()
    return trainer.model.cpu().to(memory_format=torch.contiguous_format).eval(), history


def _layers(layers: list[LayerOp], policy: QuantPolicy) -> list[dict]:
    return [{"name": op.name, "kind": op.kind, "w_bits": policy.bits[op.name].w_bits,
             "a_bits": policy.bits[op.name].a_bits, "weights": op.weight_count, "macs": op.macs} for op in layers]


def _avg_weight_bits(layers: list[LayerOp], policy: QuantPolicy) -> float:
    counts = np.array([op.weight_count for op in layers], dtype=np.float64)
    bits = np.array([policy.bits[op.name].w_bits for op in layers], dtype=np.float64)
    return float((counts * bits).sum() / counts.sum())


def _predicted(plan: HAQPlan, model: nn.Module, shape: tuple[int, ...], target: Target, policy: QuantPolicy,
               cost: AcceleratorCost | SizeCost | OrtCost) -> dict | None:
    """The policy's cost as the target's model predicts it: the accelerator's latency and energy, or the
    cpu-ort lookup table's latency (the deployed model is also measured end to end at export)."""
    if target.kind == "analytic":
        widest = target.accelerator.max_bits
        pairs = {n: (min(b.w_bits, widest), min(b.a_bits, widest)) for n, b in policy.bits.items()}
        c = CostModel(target).of_policy(model, shape, pairs)
        return {"latency_ms": c.latency_ms, "energy_mj": c.energy_mj, "source": c.latency_source}
    if plan.mode == "int8":
        return {"latency_ms": cost(policy.bits), "energy_mj": None,
                "source": "lookup table anchored to the model measured end to end, int8/fp32 per operator"}
    return None
