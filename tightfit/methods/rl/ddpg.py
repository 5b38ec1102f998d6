"""DDPG (Lillicrap et al., ICLR 2016) as AMC (He et al., ECCV 2018) and HAQ (Wang et al., CVPR 2019) use it.

An episode walks the layers of a network; at layer t the agent sees the state s_t and picks one continuous
action a_t in [0, 1] (AMC: a preserve ratio, HAQ: a bit width, each environment maps [0, 1] to its range).
Only the last step is rewarded (accuracy / cost of the compressed network), so, as in AMC:
  * the episode is stored at its end, every transition with the final reward R minus a moving-average
    baseline b (variance reduction), and discount gamma = 1;
  * for `warmup_episodes` episodes the actions are uniform in [0, 1] and nothing is trained; afterwards
    a_t = mu(s_t) + truncated normal noise in [0, 1], with sigma decaying by `sigma_decay` per episode;
  * after the warm-up, every stored transition is followed by `updates_per_step` gradient updates
    (AMC's released code: one update per step, run when the episode is stored).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tightfit.errors import TightfitError

if TYPE_CHECKING:
    import gymnasium as gym

_TRIES = 100  # redraws of the out-of-bounds noise before clipping; with sigma <= 0.5 about 2 are needed


@dataclass(frozen=True)
class DDPGConfig:
    """Hyper-parameters; the defaults are AMC's released ones, except sigma_decay (HAQ's 0.99, AMC's is 0.95)
    and the per-episode baseline. `buffer_size` counts transitions (AMC: 100 episodes' worth)."""

    hidden: int = 300
    lr_actor: float = 1e-4
    lr_critic: float = 1e-3
    tau: float = 0.01
    gamma: float = 1.0
    batch_size: int = 64
    buffer_size: int = 2000
    warmup_episodes: int = 100
    sigma_init: float = 0.5
    sigma_decay: float = 0.99
    baseline_momentum: float = 0.95
    updates_per_step: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        sizes = (self.hidden, self.batch_size, self.buffer_size)
        if min(sizes) < 1 or min(self.warmup_episodes, self.updates_per_step) < 0:
            raise TightfitError("DDPG sizes must be positive, warm-up episodes and updates per step not negative")
        unit = (self.tau, self.sigma_decay)
        if min(unit) <= 0 or max(unit) > 1 or not 0 <= self.gamma <= 1 or not 0 <= self.baseline_momentum < 1:
            raise TightfitError("DDPG needs tau and sigma_decay in (0, 1], gamma in [0, 1], momentum in [0, 1)")
        if min(self.lr_actor, self.lr_critic, self.sigma_init) <= 0:
            raise TightfitError("DDPG learning rates and sigma_init must be positive")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> DDPGConfig:
        return cls(**obj)


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode of `run_search`: its reward, the action of every step, and `info` of the last step."""

    episode: int
    reward: float
    actions: list[list[float]]
    info: dict[str, Any]


class ReplayBuffer:
    """Fixed-capacity ring buffer of transitions (s, a, r, s', done), sampled uniformly."""

    def __init__(self, capacity: int, state_dim: int, action_dim: int) -> None:
        self.states = torch.zeros(capacity, state_dim)
        self.actions = torch.zeros(capacity, action_dim)
        self.rewards = torch.zeros(capacity)
        self.next_states = torch.zeros(capacity, state_dim)
        self.dones = torch.zeros(capacity)
        self.pos = 0  # where the next transition goes
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, s: np.ndarray, a: np.ndarray, r: float, s1: np.ndarray, done: bool) -> None:
        i = self.pos
        self.states[i], self.actions[i], self.next_states[i] = (torch.as_tensor(x) for x in (s, a, s1))
        self.rewards[i], self.dones[i] = r, float(done)
        self.pos = (i + 1) % len(self.rewards)
        self.size = min(self.size + 1, len(self.rewards))

    def sample(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """A minibatch of min(n, len) distinct transitions."""
        idx = torch.as_tensor(rng.choice(self.size, size=min(n, self.size), replace=False))
        return self.states[idx], self.actions[idx], self.rewards[idx], self.next_states[idx], self.dones[idx]

    def state_dict(self) -> dict:
        return {"states": self.states, "actions": self.actions, "rewards": self.rewards,
                "next_states": self.next_states, "dones": self.dones, "pos": self.pos, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        for name in ("states", "actions", "rewards", "next_states", "dones"):
            setattr(self, name, state[name].clone())
        self.pos, self.size = int(state["pos"]), int(state["size"])


def _mlp(sizes: Sequence[int], generator: torch.Generator) -> nn.Sequential:
    """Linear layers with ReLU between. Initialised from `generator` (not the global RNG) as in DDPG:
    hidden layers U(+-1/sqrt(fan_in)), the output layer U(+-3e-3) so that the first outputs are near zero."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.utils.skip_init(nn.Linear, n_in, n_out)
        bound = 3e-3 if i == len(sizes) - 2 else n_in**-0.5
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.uniform_(-bound, bound, generator=generator)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class Critic(nn.Module):
    """Q(s, a), with s and a concatenated at the input (as in AMC's released code)."""

    def __init__(self, state_dim: int, action_dim: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.net = _mlp([state_dim + action_dim, hidden, hidden, 1], generator)

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s, a], dim=-1)).squeeze(-1)


class DDPGAgent:
    """Actor mu(s) in [0, 1]^action_dim, critic Q(s, a), their target copies mu', Q', and the replay buffer."""

    def __init__(self, state_dim: int, action_dim: int = 1, config: DDPGConfig | None = None) -> None:
        self.config = config = config or DDPGConfig()
        self.state_dim, self.action_dim = state_dim, action_dim
        generator = torch.Generator().manual_seed(config.seed)
        self.actor = nn.Sequential(_mlp([state_dim, config.hidden, config.hidden, action_dim], generator),
                                   nn.Sigmoid())
        self.critic = Critic(state_dim, action_dim, config.hidden, generator)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        # fused: one kernel per step instead of a dozen small ops per tensor, which were about a third of an
        # update of these small networks; a search runs about 100 updates per episode
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=config.lr_actor, fused=True)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=config.lr_critic, fused=True)
        self.buffer = ReplayBuffer(config.buffer_size, state_dim, action_dim)
        self.rng = np.random.default_rng(config.seed)  # warm-up actions, exploration noise, minibatches
        self.baseline: float | None = None  # b, moving average of past episode rewards
        self.episodes = 0  # episodes observed so far

    def sigma(self, episode: int) -> float:
        """Exploration noise: sigma_init during the warm-up, then times sigma_decay per episode."""
        return self.config.sigma_init * self.config.sigma_decay ** max(0, episode - self.config.warmup_episodes)

    def act(self, state: np.ndarray, episode: int) -> np.ndarray:
        """The exploring action: uniform in [0, 1] during the warm-up, else a ~ TN(mu(s), sigma^2; 0, 1)."""
        if episode < self.config.warmup_episodes:
            return self.rng.uniform(0.0, 1.0, self.action_dim).astype(np.float32)
        mu, sigma = self.act_greedy(state).astype(np.float64), self.sigma(episode)
        # The normal truncated to [0, 1] by redrawing what falls outside (a bounded number of times).
        a = self.rng.normal(mu, sigma)
        for _ in range(_TRIES):
            out = (a < 0.0) | (a > 1.0)
            if not out.any():
                break
            a[out] = self.rng.normal(mu[out], sigma)
        return np.clip(a, 0.0, 1.0).astype(np.float32)

    def act_greedy(self, state: np.ndarray) -> np.ndarray:
        """mu(s), without noise."""
        with torch.no_grad():
            s = torch.as_tensor(np.asarray(state, dtype=np.float32)).reshape(1, self.state_dim)
            return self.actor(s)[0].numpy()

    def observe_episode(self, states: Sequence[np.ndarray], actions: Sequence[np.ndarray],
                        next_states: Sequence[np.ndarray], reward: float) -> float:
        """Stores a finished episode, every step with r = R - b, and (after the warm-up) trains on the buffer.

        Returns:
            The stored reward R - b, with b the moving average of the earlier episodes' R (the first episode
            starts b at its own R, so it stores 0).
        """
        if not len(states) == len(actions) == len(next_states) > 0:
            raise TightfitError("an episode needs as many states, actions and next states, at least one")
        b = reward if self.baseline is None else self.baseline
        r = float(reward - b)
        m = self.config.baseline_momentum
        self.baseline = m * b + (1 - m) * float(reward)
        last = len(states) - 1
        for t, (s, a, s1) in enumerate(zip(states, actions, next_states, strict=True)):
            self.buffer.add(*(np.asarray(x, dtype=np.float32).reshape(-1) for x in (s, a)), r,
                            np.asarray(s1, dtype=np.float32).reshape(-1), t == last)
        if self.episodes >= self.config.warmup_episodes:
            for _ in range(self.config.updates_per_step * len(states)):
                self.update()
        self.episodes += 1
        return r

    def update(self) -> tuple[float, float]:
        """One DDPG step on a minibatch; returns (critic loss, actor loss)."""
        cfg = self.config
        s, a, r, s1, done = self.buffer.sample(cfg.batch_size, self.rng)
        with torch.no_grad():  # y_i = r_i + gamma (1 - done_i) Q'(s_{i+1}, mu'(s_{i+1}))
            y = r + cfg.gamma * (1.0 - done) * self.critic_target(s1, self.actor_target(s1))
        critic_loss = F.mse_loss(self.critic(s, a), y)
        self.critic_optim.zero_grad()
        critic_loss.backward()
        self.critic_optim.step()
        self.critic.requires_grad_(False)  # the actor's step needs dQ/da, not the critic's weight gradients
        actor_loss = -self.critic(s, self.actor(s)).mean()  # ascend Q(s, mu(s))
        self.actor_optim.zero_grad()
        actor_loss.backward()
        self.critic.requires_grad_(True)
        self.actor_optim.step()
        with torch.no_grad():  # theta' <- tau theta + (1 - tau) theta'
            for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                for p, p_target in zip(net.parameters(), target.parameters(), strict=True):
                    p_target.lerp_(p, cfg.tau)
        return critic_loss.item(), actor_loss.item()

    def state_dict(self) -> dict:
        """Everything a resumed search needs; only tensors, numbers, strings, lists and dicts
        (loadable with `torch.load(..., weights_only=True)`)."""
        return {"config": self.config.to_json(), "state_dim": self.state_dim, "action_dim": self.action_dim,
                "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "actor_target": self.actor_target.state_dict(), "critic_target": self.critic_target.state_dict(),
                "actor_optim": self.actor_optim.state_dict(), "critic_optim": self.critic_optim.state_dict(),
                "buffer": self.buffer.state_dict(), "baseline": self.baseline, "episodes": self.episodes,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if (state["config"], state["state_dim"], state["action_dim"]) != (
                self.config.to_json(), self.state_dim, self.action_dim):
            raise TightfitError("the DDPG checkpoint was made with another configuration or state/action size; "
                                "build the agent with the checkpoint's, or start a new search")
        for name in ("actor", "critic", "actor_target", "critic_target", "actor_optim", "critic_optim", "buffer"):
            getattr(self, name).load_state_dict(state[name])
        self.baseline, self.episodes = state["baseline"], int(state["episodes"])
        self.rng.bit_generator.state = state["rng"]


def run_search(env: gym.Env, agent: DDPGAgent, episodes: int,
               on_episode: Callable[[EpisodeRecord, EpisodeRecord], None] | None = None) -> list[EpisodeRecord]:
    """Runs `episodes` more episodes of `agent` on a Gymnasium environment whose reward comes at the end.

    Episode k resets the environment with seed `config.seed + k`, so a resumed search sees the same episodes.
    `on_episode(record, best)` runs after each episode (progress, checkpoints), with the highest-reward episode
    of this call so far.

    Returns:
        One record per episode run, in order.
    """
    records: list[EpisodeRecord] = []
    best: EpisodeRecord | None = None
    for _ in range(episodes):
        episode = agent.episodes
        obs, info = env.reset(seed=agent.config.seed + episode)
        states, actions, next_states, total, done = [], [], [], 0.0, False
        while not done:
            s = np.asarray(obs, dtype=np.float32)
            a = agent.act(s, episode)
            obs, reward, terminated, truncated, info = env.step(a)
            states.append(s)
            actions.append(a)
            next_states.append(np.asarray(obs, dtype=np.float32))
            total += float(reward)  # AMC / HAQ: only the last step's reward is non-zero
            done = terminated or truncated
        agent.observe_episode(states, actions, next_states, total)
        record = EpisodeRecord(episode, total, [a.tolist() for a in actions], dict(info))
        records.append(record)
        if best is None or record.reward > best.reward:
            best = record
        if on_episode is not None:
            on_episode(record, best)
    return records
