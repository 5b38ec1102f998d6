"""Peak activation memory of one batch-1 inference forward, measured from the real allocations.

On a device, inference must hold the input, every intermediate that a later op still needs, and the
output at the same time; the weights sit alongside but are counted separately (`weight_bytes`). The
largest such set of live activations decides whether a model fits the device's RAM, so we measure it
by watching every op's outputs rather than estimating from layer shapes.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class _LiveStorageTracker(TorchDispatchMode):
    """Counts bytes of live, non-parameter storages produced by ops, and keeps the running max.

    Tracking is per storage (not per tensor) so views and in-place results are counted once, and a
    storage is subtracted only when its last view dies.
    """

    def __init__(self, ignore_ptrs: set[int]) -> None:
        super().__init__()
        self._ignore = ignore_ptrs
        self._sizes: dict[int, int] = {}
        self._finalizers: list[weakref.finalize] = []
        self.live = 0
        self.peak = 0

    def track(self, t: torch.Tensor) -> None:
        """Count `t`'s storage if it is new (or grew in place), and arrange to uncount it when freed."""
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        nbytes = storage.nbytes()
        if nbytes == 0 or ptr in self._ignore:
            return
        old = self._sizes.get(ptr)
        if old is None:
            self._finalizers.append(weakref.finalize(storage, self._free, ptr))
            old = 0
        # A resize_ keeps the storage (and ptr may even stay); account for the new size.
        if nbytes != old:
            self._sizes[ptr] = nbytes
            self.live += nbytes - old
            self.peak = max(self.peak, self.live)

    def _free(self, ptr: int) -> None:
        self.live -= self._sizes.pop(ptr, 0)

    def detach_all(self) -> None:
        """Drop pending finalizers so storages that outlive the measurement do not call back."""
        for fin in self._finalizers:
            fin.detach()
        self._finalizers.clear()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.track(leaf)
        return out


def example_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """A batch-1 random input on the model's device, at its floating dtype (fp32 if it has none)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.randn((1, *input_shape), device=device, dtype=dtype)


def peak_activation_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Peak bytes of live activations (input included, parameters and buffers excluded) in one forward.

    Args:
        model: the network; its train/eval mode is restored afterwards.
        input_shape: one sample's shape without the batch dimension, e.g. (3, 32, 32).
    """
    ignore = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    was_training = model.training
    model.eval()
    try:
        x = example_input(model, input_shape)
        tracker = _LiveStorageTracker(ignore)
        tracker.track(x)
        try:
            with torch.no_grad(), tracker:
                out = model(x)
            peak = tracker.peak
        finally:
            tracker.detach_all()
        del out, x
    finally:
        model.train(was_training)
    return int(peak)


def peak_step_bytes(step: Any, keep: list[torch.Tensor]) -> int:
    """Peak bytes of tensors a callable allocates and holds at once (activations saved for backward,
    gradients, temporaries): the memory a training step needs on top of the tensors in `keep`
    (parameters, optimizer state), which are not counted.

    Args:
        step: a function running, for example, forward, backward and an optimizer step.
        keep: tensors that exist before the step and are not its cost.
    """
    tracker = _LiveStorageTracker({t.untyped_storage().data_ptr() for t in keep})
    try:
        with tracker:
            step()
        return int(tracker.peak)
    finally:
        tracker.detach_all()
