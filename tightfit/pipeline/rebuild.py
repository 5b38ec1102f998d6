"""Rebuild a network from its ModelSpec, channel pruning included (weights are loaded afterwards)."""

from __future__ import annotations

from torch import nn

from tightfit.methods.prune.groups import PrunableNetwork
from tightfit.methods.prune.surgery import prune_channels
from tightfit.models.registry import ModelSpec, build_model


def rebuild_model(spec: ModelSpec) -> nn.Module:
    """The network `spec` describes, with the pruned layer shapes when `spec.keep` is set."""
    model = build_model(spec)
    if spec.keep is None:
        return model
    return prune_channels(PrunableNetwork(model, (spec.in_channels, spec.resolution, spec.resolution)), spec.keep)
