"""Step 2: AMC, automated channel pruning of any CNN with a DDPG agent (and fine-grained sparsity)."""

from tightfit.methods.prune.amc import AMCConfig, AMCResult, PruningEnv, accuracy_of, search
from tightfit.methods.prune.groups import PrunableNetwork, keep_channels
from tightfit.methods.prune.surgery import prune_channels, reconstruct

__all__ = ["AMCConfig", "AMCResult", "PrunableNetwork", "PruningEnv", "accuracy_of", "keep_channels",
           "prune_channels", "reconstruct", "search"]
