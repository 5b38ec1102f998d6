"""Deterministic, seeded, class-stratified splits."""

from __future__ import annotations

import torch

from tightfit.data.tensors import TensorSet


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (keep, held_out): `fraction` of every class held out, chosen by a seeded permutation."""
    gen = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for cls in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_held = int(round(len(idx) * fraction))
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return torch.cat(keep).sort().values, torch.cat(held).sort().values


def split_validation(train: TensorSet, fraction: float = 0.1, seed: int = 0) -> tuple[TensorSet, TensorSet]:
    """Carve a validation set out of the training set; searches optimise on it, never on the test set."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    keep, held = stratified_split(train.y, fraction, seed)
    return train.subset(keep), train.subset(held)
