"""HAQ (Wang, Liu, Lin, Lin and Han, CVPR 2019): a DDPG agent picks every layer's bits from hardware feedback.

An episode walks the layers; each step decides one quantity (SPEC section 3):
  * mode "mixed" (bit-flexible accelerators): a layer's weight bits, then its activation bits;
  * mode "weights" (size budgets, k-means as Deep Compression): the weight bits only;
  * mode "int8" (cpu-ort, whose kernels are int8 or fp32): one operator (stem, block, head) at a time,
    int8 for an action below 0.5, fp32 otherwise.
The 10-number state is (k, c_in, c_out, kernel, stride, feature size, params, depthwise, weight/activation,
previous action); the action a in [0, 1] maps to b = round(b_min - 0.5 + a (b_max - b_min + 1)). At the
end of the episode the policy is lowered, one bit at a time from the last layer backwards (activations,
then weights), until it meets the budget. In mode "mixed" the first and the last layer stay at b_max bits,
weights and activations, as in the released code (`keep_ends`). The reward is
lambda (acc_quant - acc_original), top-1 in percent, after a short fine-tune of the quantized network.

With `rescore_top` k > 0 and a `rescore` function, the k distinct policies of highest reward are scored
again (typically: a longer fine-tune, more images) and the best of them is returned. tightfit's addition,
for searches whose per-episode reward is a cheap proxy: the best of hundreds of noisy rewards is biased
upwards (the winner's curse), and a proxy without fine-tuning cannot see which policy recovers best.

With `fill_budget`, those policies are first raised into the budget they leave unused (`raise_within_budget`),
also tightfit's addition: the lowering stops at the first policy that fits, and the agent's coarse actions
miss the cheapest precision. Where a layer is memory-bound on the accelerator model, the weight bits of a
layer with few weights cost almost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from tightfit.errors import TightfitError
from tightfit.hardware.layers import LayerOp
from tightfit.methods.quantize.policy import FP, LayerBits, QuantPolicy
from tightfit.methods.rl.checkpointed import checkpointed_search
from tightfit.methods.rl.ddpg import DDPGAgent, DDPGConfig

MODES = ("mixed", "weights", "int8")
STATE = 10

Cost = Callable[[dict[str, LayerBits]], float]
Evaluate = Callable[[QuantPolicy], float]  # policy -> accuracy after the short fine-tune


@dataclass(frozen=True)
class HAQConfig:
    budget: float  # in the cost's unit (ms, mJ or bytes)
    mode: str = "mixed"
    method: str = "linear"  # or "kmeans" (size budgets)
    b_min: int = 2
    b_max: int = 8
    episodes: int = 300
    reward_lambda: float = 0.1
    keep_ends: bool = True  # mode "mixed": first and last layer at b_max bits (the released code's habit)
    rescore_top: int = 0  # after the search, rescore the k best distinct policies (0: keep the best reward)
    fill_budget: bool = False  # after the search, raise the chosen (or rescored) policies into the unused budget
    seed: int = 0
    ddpg: DDPGConfig = field(default_factory=lambda: DDPGConfig(warmup_episodes=20, sigma_decay=0.99))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TightfitError(f"HAQ mode {self.mode!r}: use one of {', '.join(MODES)}")
        if not 1 <= self.b_min <= self.b_max <= 8:
            raise TightfitError(f"bits range {self.b_min}..{self.b_max}: need 1 <= b_min <= b_max <= 8")
        if self.budget <= 0 or self.episodes < 1:
            raise TightfitError("the HAQ budget and the number of episodes must be positive")
        if self.rescore_top < 0:
            raise TightfitError(f"rescore_top {self.rescore_top} must not be negative (0 turns rescoring off)")

    def to_json(self) -> dict:
        return {**asdict(self), "ddpg": self.ddpg.to_json()}

    def search_identity(self) -> dict:
        """What shapes the episodes, for resuming. Rescoring comes after them, so a finished search can be
        rescored differently without re-running it; and no episode depends on how many follow (the noise
        decays per episode), so asking for more episodes continues a finished search."""
        return {k: v for k, v in self.to_json().items() if k not in ("rescore_top", "fill_budget", "episodes")}

    @classmethod
    def from_json(cls, obj: dict) -> HAQConfig:
        return cls(**{**obj, "ddpg": DDPGConfig.from_json(obj["ddpg"])})


def bits_of_action(a: float, b_min: int = 2, b_max: int = 8) -> int:
    """b = round(b_min - 0.5 + a (b_max - b_min + 1)), rounding halves up so that each width gets an equal
    share 1 / (b_max - b_min + 1) of [0, 1] (Python's round would favour even widths)."""
    b = math.floor(b_min - 0.5 + float(a) * (b_max - b_min + 1) + 0.5)
    return min(b_max, max(b_min, b))


@dataclass(frozen=True)
class Unit:
    """One decision: `layers` (one layer, or an operator's layers in int8 mode) and which bits it sets."""

    layers: tuple[str, ...]
    kind: str  # "w", "a" or "wa"
    features: tuple[float, ...]  # k, c_in, c_out, kernel, stride, feature size, params, depthwise


def decision_units(layers: list[LayerOp], mode: str, operators: list[list[str]] | None = None) -> list[Unit]:
    by_name = {op.name: op for op in layers}

    def features(k: int, ops: list[LayerOp]) -> tuple[float, ...]:
        main = max(ops, key=lambda o: o.macs)
        fc = main.kind == "linear"
        return (k, ops[0].in_channels, ops[-1].out_channels, main.kernel, 0 if fc else main.stride,
                1 if fc else main.in_h * main.in_w, sum(o.weight_count for o in ops),
                float(any(o.kind == "depthwise" for o in ops)))

    if mode == "int8":
        if operators is None:
            raise TightfitError("int8 mode decides per operator; give the operators' layer names")
        return [Unit(tuple(names), "wa", features(k, [by_name[n] for n in names]))
                for k, names in enumerate(operators) if names]
    kinds = ("w", "a") if mode == "mixed" else ("w",)
    return [Unit((op.name,), kind, features(k, [op])) for k, op in enumerate(layers) for kind in kinds]


class QuantizationEnv(gym.Env):
    """One episode sets every unit's bits; the reward arrives at the last step, after the budget is met."""

    def __init__(self, units: list[Unit], config: HAQConfig, cost: Cost, evaluate: Evaluate, original_acc: float):
        self.units, self.config, self.cost, self.evaluate = units, config, cost, evaluate
        self.original_acc = original_acc
        self.observation_space = gym.spaces.Box(0.0, 1.0, (STATE,), dtype=np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
        a = np.asarray([u.features for u in units], dtype=np.float64)
        span = a.max(0) - a.min(0)
        self._static = ((a - a.min(0)) / np.where(span > 0, span, 1.0)).astype(np.float32)
        self.layers = list(dict.fromkeys(n for u in units for n in u.layers))
        self.pinned = pinned_layers(self.layers, config)
        floor = self.lowest()
        if cost(floor) > config.budget:
            raise TightfitError(f"a budget of {config.budget:.4g} cannot be met: even the lowest policy "
                                f"({self._describe_floor()}) costs {cost(floor):.4g}; raise the budget")
        self.t, self.prev, self.bits = 0, 0.0, self.start()

    def _describe_floor(self) -> str:
        if self.config.mode == "int8":
            return "every operator int8"
        ends = f", first and last layer at {self.config.b_max}" if self.pinned else ""
        return f"every width at {self.config.b_min} bits{ends}"

    def start(self) -> dict[str, LayerBits]:
        """Before any decision: weights-only modes keep activations in floating point."""
        return {n: LayerBits() for n in self.layers}

    def lowest(self) -> dict[str, LayerBits]:
        bits = self.start()
        for u in self.units:
            for n in u.layers:
                low = self.config.b_max if n in self.pinned else self.config.b_min
                bits[n] = self._set(bits[n], u.kind, 8 if u.kind == "wa" else low)
        return bits

    @staticmethod
    def _get(b: LayerBits, kind: str) -> int:
        """The width a unit of `kind` decides ("wa": an operator's, weights and activations alike)."""
        return b.a_bits if kind == "a" else b.w_bits

    @staticmethod
    def _set(b: LayerBits, kind: str, value: int) -> LayerBits:
        if kind == "w":
            return replace(b, w_bits=value)
        if kind == "a":
            return replace(b, a_bits=value)
        return LayerBits(value, value)

    def _observe(self) -> np.ndarray:
        u = self.units[self.t]
        return np.concatenate([self._static[self.t][:7], [self._static[self.t][7], float(u.kind == "w"),
                                                          self.prev]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.prev, self.bits = 0, 0.0, self.start()
        return self._observe(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = float(np.clip(np.asarray(action).reshape(-1)[0], 0.0, 1.0))
        u = self.units[self.t]
        value = (8 if a < 0.5 else FP) if u.kind == "wa" else bits_of_action(a, self.config.b_min, self.config.b_max)
        if u.layers[0] in self.pinned:
            value = self.config.b_max
        for n in u.layers:
            self.bits[n] = self._set(self.bits[n], u.kind, value)
        self.prev = a
        self.t += 1
        if self.t < len(self.units):
            return self._observe(), 0.0, False, False, {}
        proposed = dict(self.bits)
        self.bits = lower_to_budget(self.bits, self.units, self.cost, self.config, self.pinned)
        policy = QuantPolicy(dict(self.bits), self.config.method)
        accuracy = self.evaluate(policy)
        # accuracies in percent, as in the paper's tables and the released code: lambda = 0.1 assumes that scale,
        # and in fractions the rewards' differences fall below the critic's Adam step size
        reward = self.config.reward_lambda * 100.0 * (accuracy - self.original_acc)
        info = {"policy": policy.to_json(), "accuracy": accuracy, "cost": self.cost(self.bits),
                "proposed_cost": self.cost(proposed), "lowered": proposed != self.bits}
        return np.zeros(STATE, dtype=np.float32), reward, True, False, info


def pinned_layers(layers: list[str], config: HAQConfig) -> frozenset[str]:
    """The layers no decision or lowering moves off b_max: the first and the last in mode "mixed" with
    `keep_ends` (the image input and the logits are the most sensitive to rounding)."""
    if config.mode != "mixed" or not config.keep_ends or len(layers) < 2:
        return frozenset()
    return frozenset((layers[0], layers[-1]))


def lower_to_budget(bits: dict[str, LayerBits], units: list[Unit], cost: Cost, config: HAQConfig,
                    pinned: frozenset[str] = frozenset()) -> dict[str, LayerBits]:
    """HAQ's resource constraint: from the last unit backwards, take one bit off (activations before weights
    of the same layer, as the released code), re-price, and sweep again, until the policy fits; `pinned`
    layers are never lowered; in int8 mode each step turns one fp32 operator int8. Terminates: every step
    lowers something, and the lowest policy fits (checked when the environment is built)."""
    bits = dict(bits)
    # units go (w, a) per layer, so backwards the activation comes first
    order = [u for u in reversed(units) if u.layers[0] not in pinned]
    while cost(bits) > config.budget:
        changed = False
        for u in order:
            value = QuantizationEnv._get(bits[u.layers[0]], u.kind)
            floor = 8 if u.kind == "wa" else config.b_min
            if value <= floor:
                continue
            lowered = 8 if u.kind == "wa" else value - 1
            for n in u.layers:
                bits[n] = QuantizationEnv._set(bits[n], u.kind, lowered)
            changed = True
            if cost(bits) <= config.budget:
                return bits
        if not changed:
            raise TightfitError(f"the policy cannot be lowered to the budget {config.budget:.4g}")
    return bits


def raise_within_budget(bits: dict[str, LayerBits], units: list[Unit], cost: Cost, config: HAQConfig,
                        pinned: frozenset[str] = frozenset()) -> dict[str, LayerBits]:
    """The mirror of `lower_to_budget`: add one bit to the unit whose raise costs least (free raises first;
    ties go to the earlier unit), re-price, and repeat while the policy still fits; never lowers anything.
    Weight and activation units only: an int8 operator's other choice, fp32, is not a one-bit step."""
    bits = dict(bits)
    order = [u for u in units if u.kind in ("w", "a") and u.layers[0] not in pinned]
    while True:
        best: tuple[float, dict[str, LayerBits]] | None = None
        for u in order:
            value = QuantizationEnv._get(bits[u.layers[0]], u.kind)
            if value >= config.b_max:
                continue
            trial = dict(bits)
            for n in u.layers:
                trial[n] = QuantizationEnv._set(trial[n], u.kind, value + 1)
            c = cost(trial)
            if c <= config.budget and (best is None or c < best[0]):
                best = (c, trial)
        if best is None:
            return bits
        bits = best[1]


@dataclass
class HAQResult:
    best: dict  # the chosen episode's info: policy, accuracy, cost, reward, episode (and rescored, if rescored)
    history: list[dict]  # per episode: reward, accuracy, cost, lowered, policy
    rescored: list[dict] = field(default_factory=list)  # the top policies' episode, reward and rescored accuracy


def search(units: list[Unit], config: HAQConfig, cost: Cost, evaluate: Evaluate, original_acc: float,
           checkpoint: Path | None = None, progress: bool = True,
           log: Callable[[str], None] | None = None, rescore: Evaluate | None = None) -> HAQResult:
    """`config.episodes` episodes of DDPG on the quantization environment; resumable from `checkpoint`. With
    `config.rescore_top` and `rescore`, the best of the top policies by `rescore` is returned."""
    env = QuantizationEnv(units, config, cost, evaluate, original_acc)
    agent = DDPGAgent(STATE, 1, replace(config.ddpg, seed=config.seed, buffer_size=100 * len(units)))
    best, history = checkpointed_search(
        env, agent, config.episodes, "HAQ", config.search_identity(),
        lambda r: {k: r.info[k] for k in ("accuracy", "cost", "lowered", "policy")},
        lambda r: f"accuracy {r.info['accuracy']:.4f}, cost {r.info['cost']:.4g} (budget {config.budget:.4g})",
        checkpoint, progress, log)

    def filled(h: dict) -> dict:
        if not config.fill_budget:
            return h
        bits = raise_within_budget(QuantPolicy.from_json(h["policy"]).bits, units, cost, config, env.pinned)
        return {**h, "policy": QuantPolicy(bits, config.method).to_json(), "cost": cost(bits),
                "searched_policy": h["policy"], "searched_cost": h["cost"]}

    if config.rescore_top == 0 or rescore is None:
        return HAQResult(filled(best), history)
    scored = []
    for h in map(filled, top_policies(history, config.rescore_top)):
        scored.append((h, rescore(QuantPolicy.from_json(h["policy"]))))
        if log:
            log(f"HAQ rescoring: episode {h['episode']} (reward {h['reward']:.4f}): {scored[-1][1]:.4f}")
    chosen, score = max(scored, key=lambda hs: hs[1])  # first of equals: the higher reward
    rescored = [{"episode": h["episode"], "reward": h["reward"], "rescored": s} for h, s in scored]
    return HAQResult({**chosen, "rescored": score}, history, rescored)


def top_policies(history: list[dict], k: int) -> list[dict]:
    """The k episodes of highest reward whose policies differ (the agent repeats itself once the noise decays)."""
    seen, top = set(), []
    for h in sorted(history, key=lambda h: -h["reward"]):
        key = repr(h["policy"])  # bits in layer order: equal policies print alike
        if key not in seen:
            seen.add(key)
            top.append(h)
        if len(top) == k:
            break
    return top
