"""The search space: typed architectures and the plain networks they describe."""

from tightfit.space.arch import Arch, Block, MBConvChoice
from tightfit.space.plan import MBConvSpec, NetworkPlan, downsample_positions, make_divisible
from tightfit.space.space import SearchSpace

__all__ = ["Arch", "Block", "MBConvChoice", "MBConvSpec", "NetworkPlan", "SearchSpace",
           "downsample_positions", "make_divisible"]
