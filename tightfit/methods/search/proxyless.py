"""ProxylessNAS (Cai, Zhu and Han, ICLR 2019): search directly on the target task and hardware.

After a warm-up of weight-only training on random single paths, training alternates
  * weight steps: freeze alpha, sample one path per mixed op (g ~ p), update the active weights on a
    training batch (SGD, weight decay = lambda1 ||w||^2);
  * architecture steps, every `arch_every` weight steps: freeze the weights, sample two paths per mixed op,
    and update their alphas on a validation batch with the BinaryConnect-style gradient
    dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i), then rescale them so that every other path's
    probability is unchanged (Adam, betas (0, 0.999), as published).
The loss of an architecture step adds the expected latency E[lat] = sum_i sum_j p_j^i F(o_j^i) from the
target's lookup table (or energy on targets that model it), additively or, as in the released code,
multiplicatively: CE * a * (log E[lat] / log T)^b.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F

from tightfit.data.loader import BatchLoader
from tightfit.errors import TightfitError
from tightfit.methods.search.costs import SpaceCosts
from tightfit.methods.search.derive import constrained_argmax
from tightfit.methods.search.supernet import Supernet
from tightfit.space.arch import Arch
from tightfit.train.checkpoint import load_checkpoint, save_checkpoint
from tightfit.train.distributed import DistContext, average_gradients, sync_buffers
from tightfit.train.trainer import cosine_with_warmup

LOSSES = ("mul", "add")


@dataclass(frozen=True)
class SearchConfig:
    """Hyper-parameters of the search. `arch_lr` is above the published 1e-3 because a CPU search takes
    about a hundred times fewer architecture steps than the paper's ImageNet search."""

    warmup_epochs: int = 5
    epochs: int = 10  # search epochs, after the warm-up (0: only train the supernet on random paths)
    batch_size: int = 64
    lr: float = 0.01  # single-path weight sharing diverges above: digits, 4 warm-up epochs: 74% at 0.01, 33% at 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5  # lambda1
    arch_lr: float = 6e-3
    arch_every: int = 5  # one architecture step every k weight steps
    loss: str = "mul"
    mul_alpha: float = 0.2
    mul_beta: float = 0.3
    add_lambda: float = 0.1  # lambda2, on E[cost] / T
    target: float | None = None  # T, in the metric's unit (ms or mJ); None: the initial E[cost] is the reference
    inherit: bool = False  # derived network starts from the supernet's weights (else from scratch)
    shared_weights: bool = False  # a position's candidates are slices of one block (shared.py), not separate
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise TightfitError(f"search loss {self.loss!r}: use one of {', '.join(LOSSES)}")
        if min(self.epochs, self.warmup_epochs) < 0 or self.epochs + self.warmup_epochs < 1:
            raise TightfitError("search and warm-up epochs must not be negative, and not both 0")
        if self.arch_every < 1 or self.batch_size < 1:
            raise TightfitError("arch_every and the batch size must be positive")
        if self.target is not None and self.target <= 0:
            raise TightfitError(f"search target {self.target} must be positive")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> SearchConfig:
        return cls(**obj)


@dataclass
class SearchEpoch:
    epoch: int
    phase: str  # "warmup" or "search"
    train_loss: float
    train_acc: float
    arch_loss: float | None  # mean loss of the architecture steps
    expected_cost: float  # E[cost] under the full p
    argmax_arch: str
    argmax_cost: float
    probs: list[list[float]]  # p per mixed op, after the epoch
    seconds: float


@dataclass
class SearchResult:
    arch: Arch
    argmax_arch: Arch
    cost: float  # predicted, of `arch`
    argmax_cost: float
    reference: float  # T, or the initial E[cost] when no target was given
    history: list[SearchEpoch] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"arch": str(self.arch), "argmax_arch": str(self.argmax_arch), "cost": self.cost,
                "argmax_cost": self.argmax_cost, "reference": self.reference,
                "history": [asdict(h) for h in self.history]}


def cost_loss(ce: torch.Tensor, expected: torch.Tensor, reference: float, config: SearchConfig) -> torch.Tensor:
    """The latency (or energy) term. Multiplicative: CE * a * (log E / log T)^b, with E and T in micro-units
    (us or uJ) so that both logarithms are positive; additive: CE + lambda2 * E / T (unit-free)."""
    if config.loss == "add":
        return ce + config.add_lambda * expected / reference
    e, t = expected * 1e3, reference * 1e3
    if t <= 1.0:
        raise TightfitError(f"target {reference} is below one micro-unit; the multiplicative loss needs log T > 0, "
                            "use the additive loss")
    return ce * config.mul_alpha * (torch.log(e.clamp_min(1.0 + 1e-6)) / math.log(t)) ** config.mul_beta


class ProxylessSearch:
    """Runs the search on a `Supernet`; checkpoints every epoch to `checkpoint` and resumes from it."""

    def __init__(self, supernet: Supernet, costs: SpaceCosts, config: SearchConfig, train: BatchLoader,
                 val: BatchLoader, *, ctx: DistContext = DistContext(), checkpoint: Path | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None):
        if supernet.shared_weights != config.shared_weights:
            raise TightfitError(f"the supernet's shared_weights={supernet.shared_weights} differs from the search "
                                f"config's {config.shared_weights}: build it with Supernet(space, "
                                "shared_weights=config.shared_weights)")
        self.net = supernet.to(ctx.device)
        self.costs = costs
        self.config = config
        self.train_loader = train
        self.val_loader = val
        self.ctx = ctx
        self.checkpoint = checkpoint
        self.progress = progress and ctx.is_main
        self.log = log if ctx.is_main else None
        self.w_opt = torch.optim.SGD(supernet.weights(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                     weight_decay=config.weight_decay)
        total = (config.warmup_epochs + config.epochs) * len(train)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.w_opt, cosine_with_warmup(total, len(train)))
        self.a_opt = torch.optim.Adam(supernet.alphas(), lr=config.arch_lr, betas=(0.0, 0.999), eps=1e-8)
        self.reference = config.target or float(costs.expected([op.probs.detach() for op in supernet.mixed]))
        self.history: list[SearchEpoch] = []
        self.start_epoch = self._resume()

    # -- the two steps ------------------------------------------------------------------------------------

    def weight_step(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[float, float]:
        self.net.sample_single(gen)
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.w_opt.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.net.weights(), self.ctx)
        self.w_opt.step()
        self.sched.step()
        return loss.item(), (logits.argmax(1) == y).float().mean().item()

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> float:
        net = self.net
        net.sample_pairs(gen)
        weights = net.weights()
        for w in weights:
            w.requires_grad_(False)
        try:
            ce = F.cross_entropy(net(x), y)
            expected = self.costs.expected([op.pair_probs() for op in net.mixed])
            loss = cost_loss(ce, expected, self.reference, self.config)
            self.a_opt.zero_grad(set_to_none=True)
            loss.backward()  # dL/dg for every gate; the cost term's gradient lands on the two alphas directly
        finally:
            for w in weights:
                w.requires_grad_(True)
        for op in net.mixed:
            op.set_alpha_grad()
        average_gradients(net.alphas(), self.ctx)
        before = [a.detach().clone() for a in net.alphas()]
        self.a_opt.step()
        for op, old in zip(net.mixed, before, strict=True):
            op.rescale_pair(old)
            op.gates = None
        return loss.item()

    # -- the loop -----------------------------------------------------------------------------------------

    def run(self) -> SearchResult:
        from tqdm import tqdm

        cfg = self.config
        val_batches = self._cycle(self.val_loader)
        for epoch in range(self.start_epoch, cfg.warmup_epochs + cfg.epochs):
            start = time.perf_counter()
            searching = epoch >= cfg.warmup_epochs
            # same paths on every rank; during the warm-up p is uniform, so single paths are random
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            self.net.train()
            self.train_loader.set_epoch(epoch)
            sums = [0.0, 0.0, 0, 0.0, 0]  # loss, acc, steps, arch loss, arch steps
            bar = tqdm(self.train_loader, desc=f"search {'epoch' if searching else 'warm-up'} {epoch + 1}/"
                       f"{cfg.warmup_epochs + cfg.epochs}", leave=False, unit="batch",
                       disable=None if self.progress else True)
            for step, (x, y) in enumerate(bar):
                loss, acc = self.weight_step(x.to(self.ctx.device), y.to(self.ctx.device), gen)
                sums[0] += loss
                sums[1] += acc
                sums[2] += 1
                if searching and (step + 1) % cfg.arch_every == 0:
                    vx, vy = next(val_batches)
                    sums[3] += self.arch_step(vx.to(self.ctx.device), vy.to(self.ctx.device), gen)
                    sums[4] += 1
            sync_buffers(self.net, self.ctx)
            self.history.append(self._record(epoch, "search" if searching else "warmup", sums,
                                             time.perf_counter() - start))
            self._save(epoch)
            if self.log:
                h = self.history[-1]
                self.log(f"search {h.phase} epoch {h.epoch}: loss {h.train_loss:.3f} acc {h.train_acc:.3f} "
                         f"E[{self.costs.metric}] {h.expected_cost:.3f} {self.costs.unit}, argmax "
                         f"{h.argmax_cost:.3f} {self.costs.unit} ({h.seconds:.1f}s)")
        return self.result()

    def result(self) -> SearchResult:
        space = self.net.space
        argmax = self.net.argmax_arch()
        arch = constrained_argmax(self.net, self.costs, self.config.target)
        return SearchResult(arch, argmax, self.costs.of_arch(space, arch), self.costs.of_arch(space, argmax),
                            self.reference, self.history)

    def _record(self, epoch: int, phase: str, sums: list, seconds: float) -> SearchEpoch:
        probs = [op.probs.detach() for op in self.net.mixed]
        argmax = self.net.argmax_arch()
        steps, arch_steps = max(sums[2], 1), sums[4]
        return SearchEpoch(epoch + 1, phase, sums[0] / steps, sums[1] / steps,
                           sums[3] / arch_steps if arch_steps else None, float(self.costs.expected(probs)),
                           str(argmax), self.costs.of_arch(self.net.space, argmax), [p.tolist() for p in probs],
                           seconds)

    @staticmethod
    def _cycle(loader: BatchLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            yield from loader
            epoch += 1

    # -- checkpoint and resume ----------------------------------------------------------------------------

    def _save(self, epoch: int) -> None:
        if self.checkpoint is None or not self.ctx.is_main:
            return
        save_checkpoint(self.checkpoint, {
            "epoch": epoch, "config": self.config.to_json(), "supernet": self.net.state_dict(),
            "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(), "sched": self.sched.state_dict(),
            "reference": self.reference, "history": [asdict(h) for h in self.history]})

    def _resume(self) -> int:
        state = load_checkpoint(self.checkpoint) if self.checkpoint else None
        if state is None:
            return 0
        if state["config"] != self.config.to_json():
            raise TightfitError(f"search checkpoint {self.checkpoint} was written with other search settings; "
                                "rerun with the same options or delete it to start over")
        self.net.load_state_dict(state["supernet"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.sched.load_state_dict(state["sched"])
        self.reference = float(state["reference"])
        self.history = [SearchEpoch(**h) for h in state["history"]]
        return int(state["epoch"]) + 1

