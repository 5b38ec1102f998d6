"""Derive the plain network: argmax(alpha) per mixed op, with `zero` removing the block.

ProxylessNAS takes the argmax; the latency term only encourages the target. tightfit adds one step when
the argmax's predicted cost is over the target T: switch, one position at a time, to the cheaper candidate
that gives up the least log-probability per unit of cost saved, until the prediction meets T. The run
record says whether the plain argmax already met it.
"""

from __future__ import annotations

import math

from tightfit.methods.search.costs import SpaceCosts
from tightfit.methods.search.supernet import Supernet
from tightfit.space.arch import Arch


def constrained_argmax(net: Supernet, costs: SpaceCosts, target: float | None) -> Arch:
    """argmax per mixed op, then the least probable-loss switches until the predicted cost <= `target`."""
    logp = [[math.log(max(p, 1e-12)) for p in probs] for probs in net.probs()]
    chosen = [max(range(len(lp)), key=lp.__getitem__) for lp in logp]
    while target is not None and costs.of_indices(chosen) > target:
        best, best_rate = None, math.inf
        for pos, (lp, prices) in enumerate(zip(logp, costs.per_position, strict=True)):
            now = chosen[pos]
            for j, price in enumerate(prices):
                saved = prices[now] - price
                if saved > 0:
                    rate = (lp[now] - lp[j]) / saved
                    if rate < best_rate:
                        best, best_rate = (pos, j), rate
        if best is None:  # nothing cheaper is left anywhere: the smallest network of the space
            break
        chosen[best[0]] = best[1]
    return net.arch_of(chosen)
