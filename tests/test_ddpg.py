"""The DDPG agent shared by AMC and HAQ: it learns a toy problem with a known optimum, explores as published,
subtracts the moving-average baseline, and resumes and reseeds exactly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from tightfit.errors import TightfitError
from tightfit.methods.rl import DDPGAgent, DDPGConfig, EpisodeRecord, run_search

TARGETS = (0.2, 0.8, 0.5, 0.3)  # c_t, the optimal action of each step


class TargetsEnv(gym.Env):
    """T = 4 steps; the state is the normalised step index t / (T - 1); the only reward, at the end, is
    -sum_t (a_t - c_t)^2, so the optimum is a_t = c_t with reward 0 (like AMC / HAQ: one reward per episode)."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.t, self.error = 0, 0.0

    def _obs(self) -> np.ndarray:
        return np.array([min(self.t, len(TARGETS) - 1) / (len(TARGETS) - 1)], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.error = 0, 0.0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self.action_space.contains(np.asarray(action, dtype=np.float32))
        self.error += (float(action[0]) - TARGETS[self.t]) ** 2
        self.t += 1
        done = self.t == len(TARGETS)
        return self._obs(), -self.error if done else 0.0, done, False, {"error": self.error}


def states() -> list[np.ndarray]:
    return [np.array([t / (len(TARGETS) - 1)], dtype=np.float32) for t in range(len(TARGETS))]


SMALL = DDPGConfig(hidden=32, batch_size=16, buffer_size=64, warmup_episodes=3, seed=3)


def test_learns_the_known_optimum() -> None:
    # Tuned for the test: AMC's replay size of 100 episodes (100 * T transitions, where the default holds 500
    # of these short episodes), a 50-episode warm-up and two updates per step, so that 350 episodes suffice.
    config = DDPGConfig(buffer_size=100 * len(TARGETS), warmup_episodes=50, updates_per_step=2, seed=0)
    agent = DDPGAgent(state_dim=1, action_dim=1, config=config)
    records = run_search(TargetsEnv(), agent, episodes=350)
    greedy = np.array([agent.act_greedy(s)[0] for s in states()])
    np.testing.assert_allclose(greedy, TARGETS, atol=0.1)
    warmup = np.mean([r.reward for r in records[:50]])  # uniform actions: E[-sum (a - c)^2] is about -0.5
    last = np.mean([r.reward for r in records[-20:]])
    assert warmup < -0.3 and last > -0.05


def test_run_search_records_every_episode_and_the_best() -> None:
    agent, seen = DDPGAgent(1, config=SMALL), []
    records = run_search(TargetsEnv(), agent, 5, on_episode=lambda record, best: seen.append((record, best)))
    assert [r.episode for r in records] == list(range(5)) and agent.episodes == 5
    for record, best in seen:
        assert isinstance(record, EpisodeRecord) and len(record.actions) == len(TARGETS)
        errors = [(a[0] - c) ** 2 for a, c in zip(record.actions, TARGETS, strict=True)]
        assert record.reward == pytest.approx(-sum(errors))
        assert record.info["error"] == pytest.approx(-record.reward)  # the last step's info
        assert best.reward == max(r.reward for r, _ in seen[: record.episode + 1])


def test_warmup_actions_are_uniform() -> None:
    agent = DDPGAgent(1, config=DDPGConfig(warmup_episodes=5))
    actions = np.array([agent.act(states()[i % 4], episode=i % 5)[0] for i in range(4000)])
    assert actions.min() >= 0.0 and actions.max() <= 1.0
    counts, _ = np.histogram(actions, bins=10, range=(0.0, 1.0))
    assert np.all(np.abs(counts / len(actions) - 0.1) < 0.03)  # 6 standard deviations
    assert agent.sigma(0) == agent.sigma(4) == agent.sigma(5) == 0.5


def test_exploration_after_warmup_is_bounded_and_decays() -> None:
    config = DDPGConfig(warmup_episodes=5, sigma_decay=0.9)
    agent = DDPGAgent(1, config=config)
    for episode in range(5, 40):
        assert agent.sigma(episode + 1) == pytest.approx(agent.sigma(episode) * 0.9)
        actions = np.array([agent.act(s, episode) for s in states() for _ in range(50)])
        assert actions.min() >= 0.0 and actions.max() <= 1.0
    # With a small sigma the noise stays around mu(s).
    late = 5 + 60  # sigma = 0.5 * 0.9^60, about 1e-3
    for s in states():
        draws = np.array([agent.act(s, late)[0] for _ in range(100)])
        assert np.abs(draws - agent.act_greedy(s)[0]).max() < 0.02


def test_stored_reward_subtracts_the_moving_average_baseline() -> None:
    agent = DDPGAgent(1, config=DDPGConfig(warmup_episodes=100, baseline_momentum=0.95))
    rewards, baseline = [1.0, 3.0, -2.0, 0.5], None
    for k, reward in enumerate(rewards):
        stored = agent.observe_episode(states()[:2], [np.array([0.5])] * 2, states()[1:3], reward)
        expected = 0.0 if baseline is None else reward - baseline  # the first episode starts b at its R
        baseline = reward if baseline is None else 0.95 * baseline + 0.05 * reward
        assert stored == pytest.approx(expected)
        buffered = agent.buffer.rewards[2 * k : 2 * k + 2]
        torch.testing.assert_close(buffered, torch.full((2,), expected))  # both steps get the final reward
        torch.testing.assert_close(agent.buffer.dones[2 * k : 2 * k + 2], torch.tensor([0.0, 1.0]))
    assert agent.baseline == pytest.approx(baseline)


def test_resume_from_state_dict_continues_identically(tmp_path) -> None:
    original = DDPGAgent(1, config=SMALL)
    run_search(TargetsEnv(), original, 6)  # past the warm-up, so networks, optimisers and buffer all moved
    torch.save(original.state_dict(), tmp_path / "agent.pt")
    resumed = DDPGAgent(1, config=SMALL)
    resumed.load_state_dict(torch.load(tmp_path / "agent.pt", weights_only=True))
    after = [run_search(TargetsEnv(), agent, 5) for agent in (original, resumed)]
    assert [r.actions for r in after[0]] == [r.actions for r in after[1]]
    assert [r.episode for r in after[1]] == list(range(6, 11))
    for a, b in zip(original.critic_target.parameters(), resumed.critic_target.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_load_rejects_another_configuration() -> None:
    state = DDPGAgent(1, config=SMALL).state_dict()
    with pytest.raises(TightfitError):
        DDPGAgent(1, config=DDPGConfig(hidden=32, seed=4)).load_state_dict(state)


def test_same_seed_same_actions() -> None:
    runs = [run_search(TargetsEnv(), DDPGAgent(1, config=DDPGConfig(**{**SMALL.to_json(), "seed": seed})), 6)
            for seed in (3, 3, 4)]
    actions = [[r.actions for r in run] for run in runs]
    assert actions[0] == actions[1] and actions[0] != actions[2]


def test_config_json_round_trip_and_validation() -> None:
    assert DDPGConfig.from_json(SMALL.to_json()) == SMALL
    with pytest.raises(TightfitError):
        DDPGConfig(tau=0.0)
