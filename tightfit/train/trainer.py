"""One small trainer for every stage: SGD + schedule, evaluation, KD hook, DDP, checkpoint and resume."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from tightfit.data.loader import BatchLoader
from tightfit.errors import TightfitError
from tightfit.train.checkpoint import load_checkpoint, save_checkpoint
from tightfit.train.config import TrainConfig
from tightfit.train.distributed import DistContext, all_reduce_sum, sync_buffers

ExtraLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, logits) -> scalar loss term


@dataclass
class EpochRecord:
    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    eval_loss: float | None
    eval_acc: float | None
    seconds: float


@dataclass
class History:
    epochs: list[EpochRecord] = field(default_factory=list)

    def to_json(self) -> list[dict]:
        return [asdict(e) for e in self.epochs]

    @classmethod
    def from_json(cls, rows: list[dict]) -> History:
        return cls([EpochRecord(**r) for r in rows])


@torch.no_grad()
def evaluate(model: nn.Module, loader: BatchLoader, ctx: DistContext = DistContext()) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) over the loader, summed over all ranks."""
    was_training = model.training
    model.eval()
    loss_sum = correct = count = 0.0
    for x, y in loader:
        x, y = x.to(ctx.device), y.to(ctx.device)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
    model.train(was_training)
    loss_sum, correct, count = all_reduce_sum([loss_sum, correct, count], ctx)
    return loss_sum / max(count, 1), correct / max(count, 1)


def cosine_with_warmup(total_steps: int | None, warmup_steps: int) -> Callable[[int], float]:
    """LR factor per step: linear warm-up, then a cosine decay to zero at `total_steps` (None: constant)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if total_steps is None:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


class Trainer:
    """Trains `model` in place. Under torchrun, pass the rank's `ctx` and sharded loaders."""

    def __init__(self, model: nn.Module, config: TrainConfig, train_loader: BatchLoader,
                 eval_loader: BatchLoader | None = None, *, extra_loss: ExtraLoss | None = None,
                 checkpoint: Path | None = None, ctx: DistContext = DistContext(), progress: bool = True,
                 log: Callable[[str], None] | None = None):
        self.model = model.to(ctx.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.config = config
        self.train_loader = train_loader
        self.eval_loader = eval_loader
        self.extra_loss = extra_loss
        self.checkpoint = checkpoint
        self.ctx = ctx
        self.progress = progress and ctx.is_main
        self.log = log if ctx.is_main else None
        self.history = History()
        decay, no_decay = self._param_groups()
        self.optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
        steps = len(train_loader)
        if config.schedule == "onecycle":
            self.scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=config.lr, total_steps=config.epochs * steps)
        else:
            total = config.epochs * steps if config.schedule == "cosine" else None
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, cosine_with_warmup(total, int(config.warmup_epochs * steps)))
        self.net = DistributedDataParallel(self.model) if ctx.enabled else self.model
        self.start_epoch = self._resume()

    def _param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """No weight decay on BatchNorm and biases (1-d parameters), as is usual for MobileNets."""
        decay = [p for p in self.model.parameters() if p.requires_grad and p.dim() > 1]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.dim() <= 1]
        return decay, no_decay

    def _resume(self) -> int:
        state = load_checkpoint(self.checkpoint) if self.checkpoint else None
        if state is None:
            return 0
        if state["config"] != self.config.to_json():
            raise TightfitError(f"checkpoint {self.checkpoint} was written with other training settings; "
                                "rerun with the same options or delete it to start over")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = History.from_json(state["history"])
        return int(state["epoch"]) + 1

    def _save(self, epoch: int) -> None:
        if self.checkpoint is None or not self.ctx.is_main:
            return
        save_checkpoint(self.checkpoint, {
            "epoch": epoch, "config": self.config.to_json(), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "history": self.history.to_json(),
        })

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        from tqdm import tqdm

        self.net.train()
        self.train_loader.set_epoch(epoch)
        loss_sum = correct = count = 0.0
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{self.config.epochs}", leave=False,
                   disable=None if self.progress else True, unit="batch")
        for x, y in bar:
            x, y = x.to(self.ctx.device, non_blocking=True), y.to(self.ctx.device, non_blocking=True)
            logits = self.net(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
            if self.extra_loss is not None:
                loss = loss + self.extra_loss(x, logits)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            # .item() syncs; cheap on the CPU and only once per batch
            loss_sum += loss.item() * len(y)
            correct += (logits.detach().argmax(1) == y).sum().item()
            count += len(y)
            bar.set_postfix(loss=f"{loss_sum / count:.3f}")
        sync_buffers(self.model, self.ctx)
        loss_sum, correct, count = all_reduce_sum([loss_sum, correct, count], self.ctx)
        return loss_sum / max(count, 1), correct / max(count, 1)

    def fit(self) -> History:
        for epoch in range(self.start_epoch, self.config.epochs):
            start = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_acc = self.train_epoch(epoch)
            eval_loss = eval_acc = None
            if self.eval_loader is not None:
                eval_loss, eval_acc = evaluate(self.model, self.eval_loader, self.ctx)
            record = EpochRecord(epoch + 1, lr, train_loss, train_acc, eval_loss, eval_acc,
                                 time.perf_counter() - start)
            self.history.epochs.append(record)
            self._save(epoch)
            if self.log:
                shown = f" val_loss {eval_loss:.3f} val_acc {eval_acc:.4f}" if eval_acc is not None else ""
                self.log(f"epoch {record.epoch}/{self.config.epochs} loss {train_loss:.3f} "
                         f"acc {train_acc:.4f}{shown} ({record.seconds:.1f}s)")
        return self.history
