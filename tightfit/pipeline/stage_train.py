"""Stage: train the candidate with the run's recipe, resumable per epoch."""

from __future__ import annotations

import time
from pathlib import Path

from tightfit.data.loader import BatchLoader
from tightfit.pipeline.stages import Candidate, RunContext, StageRecord
from tightfit.train.trainer import Trainer


class TrainStage:
    name = "train"
    distributed = True

    def run(self, candidate: Candidate, ctx: RunContext, workdir: Path) -> tuple[Candidate, StageRecord]:
        cfg = ctx.config.train
        d = ctx.dist
        train = BatchLoader(ctx.train, cfg.batch_size, ctx.normalize, augment=ctx.data.augment, shuffle=True,
                            seed=cfg.seed, rank=d.rank, world_size=d.world_size, channels_last=cfg.channels_last)
        val = BatchLoader(ctx.val, 256, ctx.normalize, rank=d.rank, world_size=d.world_size,
                          channels_last=cfg.channels_last)
        start = time.perf_counter()
        trainer = Trainer(candidate.model, cfg, train, val, checkpoint=workdir / "checkpoint.pt", ctx=d,
                          progress=ctx.progress, log=print)
        if trainer.start_epoch and d.is_main:
            print(f"resuming training at epoch {trainer.start_epoch + 1} from {workdir / 'checkpoint.pt'}")
        history = trainer.fit()
        last = history.epochs[-1]
        record = StageRecord(self.name, time.perf_counter() - start, {
            "epochs": cfg.epochs, "val_acc": last.eval_acc, "train_loss": last.train_loss,
            "history": history.to_json(), "processes": d.world_size,
        })
        return Candidate(trainer.model.cpu(), candidate.spec), record
