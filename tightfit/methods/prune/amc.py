"""AMC (He, Lin, Liu, Wang, Li and Han, ECCV 2018): a DDPG agent picks every group's pruning ratio.

The environment walks the channel groups in execution order. At group t the agent sees
    s_t = (t, n, c, h, w, stride, k, FLOPs[t], reduced, rest, a_{t-1})
(min-max normalised over the network) and answers a_t in [0, 1]; the group loses a_t * max_remove of its
channels (rounded to `multiple`, at least one kept). Two protocols:
  * resource-constrained: the action is clamped so the budget (FLOPs, parameters, or latency on a target
    through `latency.LatencyModel`) is always met
    (Algorithm 1: a_t is raised to the least ratio that still reaches the budget if every later group is
    pruned as far as allowed), and R_err = -error;
  * accuracy-guaranteed: no budget, R_FLOPs = -error * log(FLOPs) or R_Param = -error * log(#params).
The reward is the pruned network's validation accuracy without fine-tuning (optionally after He et al.'s
least-squares reconstruction), given to every step of the episode by the shared DDPG agent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from tightfit.errors import TightfitError
from tightfit.methods.prune.groups import PrunableNetwork, PruningUnits, keep_channels
from tightfit.methods.prune.surgery import prune_channels, reconstruct
from tightfit.methods.rl.checkpointed import checkpointed_search
from tightfit.methods.rl.ddpg import DDPGAgent, DDPGConfig

PROTOCOLS = ("err", "flops", "params")  # the reward: R_err (with a budget), R_FLOPs, R_Param


@dataclass(frozen=True)
class AMCConfig:
    metric: str = "flops"  # what the budget bounds: "flops", "params" or "latency" (on a target)
    budget: float | None = 0.5  # share of the original network's metric; None: accuracy-guaranteed
    reward: str = "err"
    max_remove: float = 0.8  # AMC keeps at least 20% of every layer
    multiple: int = 8  # round channel counts for the hardware (1: any count)
    episodes: int = 300
    reconstruct: bool = False
    seed: int = 0
    ddpg: DDPGConfig = field(default_factory=lambda: DDPGConfig(warmup_episodes=100, sigma_decay=0.95))

    def __post_init__(self) -> None:
        if self.reward not in PROTOCOLS:
            raise TightfitError(f"AMC reward {self.reward!r}: use one of {', '.join(PROTOCOLS)}")
        if self.metric not in ("flops", "params", "latency"):
            raise TightfitError(f"AMC budget metric {self.metric!r}: use 'flops', 'params' or 'latency'")
        if self.budget is not None and not 0 < self.budget <= 1:
            raise TightfitError(f"AMC budget {self.budget} must be a share of the original in (0, 1], e.g. 0.5")
        if (self.budget is None) == (self.reward == "err"):
            raise TightfitError("R_err needs a budget (resource-constrained); R_FLOPs and R_Param run without one "
                                "(accuracy-guaranteed)")
        if not 0 < self.max_remove < 1 or self.multiple < 1 or self.episodes < 1:
            raise TightfitError("max_remove must lie in (0, 1), multiple and episodes be positive")

    def to_json(self) -> dict:
        return {**asdict(self), "ddpg": self.ddpg.to_json()}

    @classmethod
    def from_json(cls, obj: dict) -> AMCConfig:
        return cls(**{**obj, "ddpg": DDPGConfig.from_json(obj["ddpg"])})


Evaluate = Callable[[list[int]], tuple[float, nn.Module | None]]  # keep vector -> (val accuracy, model or None)


class PruningEnv(gym.Env):
    """One episode prunes every group once; the reward arrives at the last step."""

    def __init__(self, net: PruningUnits, config: AMCConfig, evaluate: Evaluate,
                 latency: Callable[[list[int]], float] | None = None):
        self.net, self.config, self.evaluate = net, config, evaluate
        self.observation_space = gym.spaces.Box(0.0, 1.0, (11,), dtype=np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
        if config.metric == "latency" and latency is None:
            raise TightfitError("a latency budget needs the target's latency model (methods.prune.latency)")
        self.budget_cost = latency if config.metric == "latency" else partial(net.cost, metric=config.metric)
        self.total = self.budget_cost(net.full())
        self.bound = None if config.budget is None else config.budget * self.total
        self.floor = [keep_channels(g.channels, config.max_remove, config.multiple) for g in net.groups]
        if self.bound is not None and self.budget_cost(self.floor) > self.bound:
            least = self.budget_cost(self.floor) / self.total
            raise TightfitError(f"a {config.metric} budget of {config.budget:.0%} cannot be met: pruning every group "
                                f"as far as allowed leaves {least:.0%}; raise the budget (or max_remove)")
        self._static = self._static_features()
        self.t, self.keep, self.prev = 0, list(net.full()), 0.0

    def _static_features(self) -> np.ndarray:
        """(t, n, c, h, w, stride, k, FLOPs[t]) per group, min-max normalised over the groups."""
        rows = []
        for g in self.net.groups:
            op = g.layer
            rows.append([g.index, op.out_channels, op.in_channels // op.groups, op.in_h, op.in_w, op.stride,
                         op.kernel, self.net.group_flops(g.index)])
        a = np.asarray(rows, dtype=np.float64)
        span = a.max(0) - a.min(0)
        return ((a - a.min(0)) / np.where(span > 0, span, 1.0)).astype(np.float32)

    def _observe(self) -> np.ndarray:
        flops = self.net.flops
        reduced = flops - self.net.cost(self.keep, "flops")  # removed by the decisions so far
        rest = sum(2 * layer.op.macs for layer in self.net.layers
                   if layer.out_group is not None and layer.out_group > self.t)  # layers still to decide
        return np.concatenate([self._static[self.t], [reduced / flops, rest / flops, self.prev]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.keep, self.prev = 0, list(self.net.full()), 0.0
        return self._observe(), {}

    def clamp(self, t: int, wanted: int) -> int:
        """Algorithm 1: the most channels group t may keep (at most `wanted`) so that the budget is still met
        when every later group keeps only its floor."""
        if self.bound is None:
            return wanted
        step = self.config.multiple if self.net.groups[t].channels > self.config.multiple else 1
        options = [self.floor[t], *range(self.floor[t] + step, wanted, step), wanted]  # ascending, cost too

        def fits(k: int) -> bool:
            return self.budget_cost(self.keep[:t] + [k] + self.floor[t + 1:]) <= self.bound

        lo, hi = 0, len(options) - 1  # options[lo] fits (the floor does, checked at construction)
        while lo < hi:  # the largest fitting option, by bisection
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(options[mid]) else (lo, mid - 1)
        return options[lo]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = float(np.clip(np.asarray(action).reshape(-1)[0], 0.0, 1.0))
        group = self.net.groups[self.t]
        wanted = keep_channels(group.channels, a * self.config.max_remove, self.config.multiple)
        self.keep[self.t] = self.clamp(self.t, wanted)
        self.prev = 1.0 - self.keep[self.t] / group.channels  # the ratio actually applied
        self.t += 1
        if self.t < len(self.net.groups):
            return self._observe(), 0.0, False, False, {}
        return np.zeros(11, dtype=np.float32), *self._finish()

    def _finish(self) -> tuple[float, bool, bool, dict[str, Any]]:
        accuracy, _ = self.evaluate(self.keep)
        flops, params = self.net.cost(self.keep, "flops"), self.net.cost(self.keep, "params")
        error = 1.0 - accuracy
        reward = {"err": -error, "flops": -error * math.log(flops), "params": -error * math.log(params)}
        preserve = [k / g.channels for k, g in zip(self.keep, self.net.groups, strict=True)]
        info = {"keep": list(self.keep), "preserve": preserve, "accuracy": accuracy, "flops": flops, "params": params,
                "flops_ratio": flops / self.net.flops, "params_ratio": params / self.net.params,
                "budget_ratio_used": self.budget_cost(self.keep) / self.total}
        return reward[self.config.reward], True, False, info


@dataclass
class AMCResult:
    best: dict  # the best episode's info: keep, preserve, accuracy, flops, params (and its reward)
    history: list[dict]  # per episode: reward, accuracy, flops_ratio, params_ratio


def search(net: PruningUnits, config: AMCConfig, evaluate: Evaluate, checkpoint: Path | None = None,
           progress: bool = True, log: Callable[[str], None] | None = None,
           latency: Callable[[list[int]], float] | None = None) -> AMCResult:
    """Run `config.episodes` episodes of DDPG on the pruning environment; resumable from `checkpoint`."""
    env = PruningEnv(net, config, evaluate, latency)
    groups = len(net.groups)
    agent = DDPGAgent(11, 1, replace(config.ddpg, seed=config.seed, buffer_size=100 * groups))
    best, history = checkpointed_search(
        env, agent, config.episodes, "AMC", config.to_json(),
        lambda r: {k: r.info[k] for k in ("accuracy", "flops_ratio", "params_ratio")},
        lambda r: f"val acc {r.info['accuracy']:.4f} at {r.info['flops_ratio']:.1%} FLOPs", checkpoint, progress, log)
    return AMCResult(best, history)


def accuracy_of(net: PrunableNetwork, evaluate_model: Callable[[nn.Module], float],
                reconstruct_images: torch.Tensor | None = None) -> Evaluate:
    """keep -> (accuracy of the pruned network without fine-tuning, the pruned network), with He et al.'s
    least-squares reconstruction on `reconstruct_images` when given."""

    def evaluate(keep: list[int]) -> tuple[float, nn.Module]:
        model = prune_channels(net, keep)
        if reconstruct_images is not None:
            model = reconstruct(model, net, keep, [reconstruct_images])
        return evaluate_model(model), model

    return evaluate
