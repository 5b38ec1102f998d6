"""The episode loop AMC and HAQ share: DDPG on an environment, the best episode kept, resumable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym

from tightfit.errors import TightfitError
from tightfit.methods.rl.ddpg import DDPGAgent, EpisodeRecord, run_search
from tightfit.train.checkpoint import load_checkpoint, save_checkpoint


def checkpointed_search(env: gym.Env, agent: DDPGAgent, episodes: int, name: str, config_json: dict,
                        summarize: Callable[[EpisodeRecord], dict], describe: Callable[[EpisodeRecord], str],
                        checkpoint: Path | None, progress: bool,
                        log: Callable[[str], None] | None) -> tuple[dict, list[dict]]:
    """Runs until `episodes` episodes are done (resuming from `checkpoint`, which must hold the same
    `config_json`); returns the best episode's info (with reward and episode) and one summary per episode."""
    from tqdm import tqdm

    history: list[dict] = []
    best: dict | None = None
    state = load_checkpoint(checkpoint) if checkpoint else None
    if state is not None:
        if state["config"] != config_json:
            raise TightfitError(f"{name} checkpoint {checkpoint} was written with other settings; rerun with the "
                                "same options or delete it to start over")
        agent.load_state_dict(state["agent"])
        history, best = state["history"], state["best"]
        if agent.episodes > episodes:
            raise TightfitError(f"{name} checkpoint {checkpoint} already holds {agent.episodes} episodes, more than "
                                f"the {episodes} asked; ask for at least {agent.episodes} or delete it")
    bar = tqdm(total=episodes, initial=agent.episodes, desc=f"{name} episodes", unit="ep",
               disable=None if progress else True)

    def on_episode(record: EpisodeRecord, _: EpisodeRecord) -> None:
        nonlocal best
        history.append({"episode": record.episode + 1, "reward": record.reward, **summarize(record)})
        if best is None or record.reward > best["reward"]:
            best = {**record.info, "reward": record.reward, "episode": record.episode + 1}
            if log:
                log(f"{name} episode {record.episode + 1}: reward {record.reward:.4f}, {describe(record)}")
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"config": config_json, "agent": agent.state_dict(), "history": history,
                                         "best": best})
        bar.update(1)

    run_search(env, agent, episodes - agent.episodes, on_episode)
    bar.close()
    assert best is not None, "at least one episode ran"
    return best, history
