"""How and what to cut: channels really removed (tensors shrink), chosen by L1 norm, optionally re-fitted.

`prune_channels` keeps, in every group, the channels whose weights have the largest L1 norm (summed over
the group's layers, Torch-Pruning's group magnitude), and removes the others from every coupled layer.
`reconstruct` is He et al.'s (ICCV 2017) second step, which AMC's search used: each conv that lost input
channels is re-fitted by least squares to reproduce the original network's output of that layer on
sampled feature maps, layer after layer.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from weakref import WeakKeyDictionary

import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

from tightfit.methods.prune.groups import PrunableNetwork, build_graph

_SCORES: WeakKeyDictionary = WeakKeyDictionary()  # PrunableNetwork -> its channels' L1 importance, once


def channel_scores(net: PrunableNetwork) -> list[torch.Tensor]:
    """Per group, every channel's importance in the unpruned network: the L1 norm of its weights summed over
    the group's layers (Torch-Pruning's group magnitude). Computed once per network."""
    if net not in _SCORES:
        graph = build_graph(net.model, net.input_shape)
        modules = dict(net.model.named_modules())
        importance = tp.importance.GroupMagnitudeImportance(p=1, group_reduction="sum", normalizer=None,
                                                             target_types=[nn.Conv2d, nn.Linear])
        _SCORES[net] = [importance(graph.get_pruning_group(modules[g.root], _out_fn(modules[g.root]),
                                                           list(range(g.channels)))).detach()
                        for g in net.groups]
    return _SCORES[net]


def kept_channels(net: PrunableNetwork, keep: Sequence[int]) -> list[list[int]]:
    """Per group, the indices (in the unpruned network) of the keep[g] channels with the largest L1 norm."""
    return [sorted(s.argsort(descending=True)[:k].tolist()) for s, k in zip(channel_scores(net), keep, strict=True)]


def prune_channels(net: PrunableNetwork, keep: Sequence[int]) -> nn.Module:
    """A pruned deep copy of `net.model` in which group g keeps keep[g] channels (largest L1 first)."""
    model = copy.deepcopy(net.model).eval()
    graph = build_graph(model, net.input_shape)
    modules = dict(model.named_modules())
    for group, kept in zip(net.groups, kept_channels(net, keep), strict=True):
        drop = sorted(set(range(group.channels)) - set(kept))
        if drop:
            root = modules[group.root]
            graph.get_pruning_group(root, _out_fn(root), drop).prune(record_history=False)
    return model


def _out_fn(module: nn.Module):  # noqa: ANN202
    return tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels


@torch.no_grad()
def reconstruct(pruned: nn.Module, net: PrunableNetwork, keep: Sequence[int], batches: Iterable[torch.Tensor],
                samples_per_image: int = 10, seed: int = 0) -> nn.Module:
    """Least-squares re-fit, in execution order, of every (non-grouped) conv whose input lost channels.

    For such a layer, X are its input patches in the pruned network and Y the same layer's output (its
    kept channels) in the original network, at `samples_per_image` random positions per image;
    W = argmin ||X W^T - Y||, with a tiny ridge term (`_ridge_fit`).
    """
    images = torch.cat(list(batches))
    gen = torch.Generator().manual_seed(seed)
    targets = _outputs_of(net.model, images)
    kept = kept_channels(net, keep)
    out_group = {layer.op.name: layer.out_group for layer in net.layers}
    original = dict(net.model.named_modules())
    for name, conv in pruned.named_modules():
        orig = original.get(name)
        if not (isinstance(conv, nn.Conv2d) and isinstance(orig, nn.Conv2d) and conv.groups == 1
                and conv.in_channels < orig.in_channels):
            continue
        x = _inputs_of(pruned, conv, images)  # (N, C', H, W), after upstream layers were re-fitted
        patches = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # (N, C'k^2, L)
        y = targets[name].flatten(2)  # (N, O, L)
        if out_group.get(name) is not None:
            y = y[:, kept[out_group[name]]]  # the output channels that survived
        if conv.bias is not None:
            y = y - conv.bias.view(1, -1, 1)
        pick = torch.randint(0, patches.shape[-1], (len(images), samples_per_image), generator=gen)
        rows = torch.arange(len(images))[:, None]
        a = patches.permute(0, 2, 1)[rows, pick].reshape(-1, patches.shape[1])  # (N*s, C'k^2)
        b = y.permute(0, 2, 1)[rows, pick].reshape(-1, y.shape[1])  # (N*s, O)
        conv.weight.copy_(_ridge_fit(a.double(), b.double()).reshape_as(conv.weight).to(conv.weight.dtype))
    return pruned


def _ridge_fit(a: torch.Tensor, b: torch.Tensor, relative: float = 1e-3) -> torch.Tensor:
    """W (O, C'k^2) minimising ||a W^T - b||^2 + delta ||W||^2, delta a tiny share of a's mean squared column
    norm. ReLU leaves many patch columns dead, so a is often rank-deficient (rank 9 of 72 in a random plain-20):
    plain least squares then turns rounding noise into weights of size 1 and more, which varied from run to run
    (once far enough to fit worse than no re-fit at all); the ridge term sends those directions to zero."""
    gram = a.T @ a
    delta = relative * float(gram.diagonal().mean()) + 1e-12
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    return torch.linalg.solve(gram + delta * eye, a.T @ b).T


def _outputs_of(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    outs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _a, y, n=n: outs.__setitem__(n, y.detach()))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        model.eval()(images)
    finally:
        for h in hooks:
            h.remove()
    return outs


def _inputs_of(model: nn.Module, layer: nn.Module, images: torch.Tensor) -> torch.Tensor:
    box: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, args, _y: box.append(args[0].detach()))
    try:
        model.eval()(images)
    finally:
        hook.remove()
    return box[0]
