"""The DDPG agent shared by AMC (channel pruning, He et al. ECCV 2018) and HAQ (mixed-precision
quantization, Wang et al. CVPR 2019)."""

from tightfit.methods.rl.ddpg import DDPGAgent, DDPGConfig, EpisodeRecord, ReplayBuffer, run_search

__all__ = ["DDPGAgent", "DDPGConfig", "EpisodeRecord", "ReplayBuffer", "run_search"]
