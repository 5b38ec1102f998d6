"""Step 1: ProxylessNAS, architecture search directly on the target task and hardware."""

from tightfit.methods.search.costs import SpaceCosts, space_costs
from tightfit.methods.search.proxyless import ProxylessSearch, SearchConfig, SearchResult
from tightfit.methods.search.supernet import MixedOp, Supernet

__all__ = ["MixedOp", "ProxylessSearch", "SearchConfig", "SearchResult", "SpaceCosts", "Supernet", "space_costs"]
