"""Straight-through fine-tuning of a quantized network, and HAQ's reward built on it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import update_bn

from tightfit.methods.quantize.inference import inference_copy
from tightfit.methods.quantize.policy import Calibration, QuantLayer, QuantPolicy, quantize_model


def finetune(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], steps: int, lr: float,
             momentum: float = 0.9, weight_decay: float = 4e-5) -> nn.Module:
    """`steps` SGD steps on the quantized network (rounding's gradient taken as 1, the straight-through
    estimator; k-means layers train their centroids). Batch norm trains as usual."""
    if steps <= 0:
        return model.eval()
    opt = torch.optim.SGD(_param_groups(model, lr, weight_decay), lr=lr, momentum=momentum)
    model.train()
    it = _cycle(batches)
    for _ in range(steps):
        x, y = next(it)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def _param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """A k-means centroid's gradient is the sum over its weights (Deep Compression), thousands of them, so at
    the weights' learning rate one step throws it far off; each layer's centroids step at lr divided by its
    mean cluster size (their mean weight gradient), without weight decay."""
    centroid_groups, taken = [], set()
    for m in model.modules():
        if isinstance(m, QuantLayer) and m.centroids is not None and m.centroids.requires_grad:
            per_cluster = m.labels.numel() / m.centroids.numel()
            centroid_groups.append({"params": [m.centroids], "lr": lr / per_cluster, "weight_decay": 0.0})
            taken.add(id(m.centroids))
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    return [{"params": rest, "weight_decay": weight_decay}, *centroid_groups]


def _cycle(batches: Iterable) -> Iterator:
    while True:
        empty = True
        for b in batches:
            empty = False
            yield b
        if empty:
            raise ValueError("fine-tuning needs at least one training batch")


def recalibrate_batch_norm(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                           count: int) -> nn.Module:
    """Batch-norm statistics re-estimated (a plain average, PyTorch's `update_bn`) on `count` training batches
    of the quantized network: the part of a short fine-tune that recovers most accuracy (rounding shifts every
    layer's output statistics), at the cost of a few forward passes."""
    if count > 0:
        update_bn(itertools.islice(_cycle(batches), count), model)
    return model.eval()


def quantized_accuracy(model: nn.Module, calibration: Calibration, train: Iterable, steps: int, lr: float,
                       accuracy: Callable[[nn.Module], float], bn_batches: int = 0) -> Callable[[QuantPolicy], float]:
    """policy -> accuracy of `model` quantized by it, after `bn_batches` batches of batch-norm re-estimation
    and `steps` steps of fine-tuning (HAQ's acc_quant), scored on its inference copy (weights quantized once,
    batch norm folded in; bench/haq_reward_speed.py: 1.15-1.18x faster with linear weights, 1.8x k-means).
    Every call starts again from `model`'s weights and the same batches, so equal policies score equally."""

    def evaluate(policy: QuantPolicy) -> float:
        torch.manual_seed(0)
        quantized = recalibrate_batch_norm(quantize_model(model, policy, calibration), train, bn_batches)
        return accuracy(inference_copy(finetune(quantized, train, steps, lr)))

    return evaluate
