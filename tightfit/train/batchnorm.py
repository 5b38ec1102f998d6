"""BatchNorm recalibration: sub-networks of a supernet need statistics of their own before evaluation."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_batches: int) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them as exact averages over batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    was_training = model.training
    model.train()
    device = next(model.parameters()).device
    for i, (x, _) in enumerate(batches):
        if i >= num_batches:
            break
        model(x.to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)
