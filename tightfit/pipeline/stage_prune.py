"""Stage (step 2): AMC prunes the candidate's channels under a FLOPs or parameter budget, then fine-tunes.

The reward of every episode is the validation accuracy of the pruned network without fine-tuning; the
best policy is applied (channels really removed), fine-tuned on the training split, and recorded in the
network's spec (`keep`) so that the pruned network can be rebuilt and exported.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from tightfit.data.loader import BatchLoader
from tightfit.errors import TightfitError
from tightfit.methods.prune.amc import AMCConfig, accuracy_of, search
from tightfit.methods.prune.finegrained import (
    SparseNetwork,
    freeze_zeros,
    nonzero_weights,
    packed_bytes,
    sparse_accuracy_of,
)
from tightfit.methods.prune.groups import PrunableNetwork
from tightfit.methods.prune.latency import LatencyModel
from tightfit.methods.rl.ddpg import DDPGConfig
from tightfit.metrics.complexity import measure_complexity
from tightfit.pipeline.stages import Candidate, RunContext, StageRecord
from tightfit.train.trainer import Trainer, evaluate


class PruneStage:
    name = "prune"
    distributed = False

    def run(self, candidate: Candidate | None, ctx: RunContext, workdir: Path) -> tuple[Candidate, StageRecord]:
        assert candidate is not None, "pruning needs a network"
        start = time.perf_counter()
        settings, cfg = ctx.config.prune, ctx.config
        model = candidate.model.cpu().to(memory_format=torch.contiguous_format).eval()
        fine = settings.mode == "weights"
        net = SparseNetwork(model, ctx.input_shape) if fine else PrunableNetwork(model, ctx.input_shape)
        ratio = settings.ratio
        if ratio is None and settings.reward == "err":  # only a --flops constraint asked for pruning
            ratio = cfg.constraints.flops / net.flops
            if ratio >= 1:
                print(f"step 2 (AMC): {net.flops:,.0f} FLOPs already meet --flops; nothing to prune")
                return candidate, StageRecord(self.name, time.perf_counter() - start, {"skipped": True})
        if fine and settings.metric == "latency":
            raise TightfitError("fine-grained pruning (--prune-mode weights) bounds the model size; give it a "
                                "params budget, not a latency one")
        config = AMCConfig(metric="params" if fine else settings.metric,
                           budget=ratio if settings.reward == "err" else None, reward=settings.reward,
                           multiple=1 if fine else settings.multiple, max_remove=0.95 if fine else 0.8,
                           episodes=settings.episodes, reconstruct=settings.reconstruct and not fine, seed=cfg.seed,
                           ddpg=DDPGConfig(warmup_episodes=settings.warmup_episodes, sigma_decay=0.95))
        val = BatchLoader(ctx.val, 256, ctx.normalize)
        images = None
        if settings.reconstruct:
            images = next(iter(BatchLoader(ctx.train, 256, ctx.normalize, shuffle=True, seed=cfg.seed)))[0]
        accuracy = lambda m: evaluate(m, val)[1]  # noqa: E731
        reward_of = sparse_accuracy_of(net, accuracy) if fine else accuracy_of(net, accuracy, images)
        latency = None
        if config.metric == "latency":
            latency = LatencyModel(net, ctx.target, ctx.progress)
            print(f"step 2 (AMC): latency model on {ctx.target.name}: {latency.full_ms:.3f} ms unpruned")
        result = search(net, config, reward_of, checkpoint=workdir / "amc.pt", progress=ctx.progress, log=print,
                        latency=None if latency is None else latency.cost)
        keep = result.best["keep"]
        _, pruned = reward_of(keep)
        before_finetune = evaluate(pruned, val)[1]
        history = []
        if settings.finetune_epochs:
            train_cfg = replace(cfg.train, epochs=settings.finetune_epochs, lr=cfg.train.lr * 0.1, warmup_epochs=0.0)
            loader = BatchLoader(ctx.train, train_cfg.batch_size, ctx.normalize, augment=ctx.data.augment,
                                 shuffle=True, seed=cfg.seed, channels_last=train_cfg.channels_last)
            trainer = Trainer(pruned, train_cfg, loader, val, checkpoint=workdir / "finetune.pt",
                              progress=ctx.progress, log=print)
            hooks = freeze_zeros(trainer.model) if fine else []
            history = trainer.fit().to_json()
            for h in hooks:
                h.remove()
            pruned = trainer.model.cpu().to(memory_format=torch.contiguous_format)
        after = measure_complexity(pruned, ctx.input_shape)
        record = StageRecord(self.name, time.perf_counter() - start, {
            "config": config.to_json(), "budget_ratio": config.budget, "best": result.best,
            "reward_curve": [h["reward"] for h in result.history], "history": result.history,
            "groups": [{"root": g.root, "layer": g.layer.name, "kind": g.layer.kind, "channels": g.channels}
                       for g in net.groups],
            "flops_before": net.flops, "flops_after": after.flops, "params_before": measure_complexity(
                model, ctx.input_shape).params, "params_after": after.params,
            "val_acc_before_finetune": before_finetune,
            "val_acc_after_finetune": evaluate(pruned, val)[1], "finetune_history": history, "mode": settings.mode,
            "latency_model": None if latency is None else {**latency.describe(),
                                                           "predicted_ms": latency.cost(keep)},
            "nonzero_weights": nonzero_weights(pruned), "packed_sparse_bytes": packed_bytes(pruned) if fine else None,
        })
        # fine-grained pruning keeps the shapes (zeros in the weights); channel pruning is re-applied on rebuild
        return Candidate(pruned, candidate.spec if fine else replace(candidate.spec, keep=tuple(keep))), record
