"""Model weights as safetensors: a plain, pickle-free file that loads only into the same architecture."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from tightfit.errors import TightfitError
from tightfit.fileio import atomic_path


def _standalone_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict with every tensor on the CPU, contiguous, and owning its own storage.

    safetensors refuses tensors that share memory (tied weights, views of one buffer), so any tensor
    whose storage is shared or bigger than itself gets its own copy; loading then fills each key.
    """
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in model.state_dict().items():
        t = value.detach().to("cpu").contiguous()
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if (ptr in seen and t.numel() > 0) or storage.nbytes() != t.numel() * t.element_size():
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Write `model.state_dict()` to a safetensors file at `path`, atomically."""
    path = Path(path)
    tensors = _standalone_tensors(model)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    return path


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a safetensors file written by `save_weights` into `model` (strict: keys and shapes must match).

    Returns:
        The same `model`, for chaining.
    """
    path = Path(path)
    if not path.is_file():
        raise TightfitError(f"weights file {path} does not exist; check the path or save the weights first.")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise TightfitError(
            f"{path} is not a readable safetensors file ({e}); it may be truncated or corrupt, save it again."
        ) from e
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise TightfitError(
            f"weights in {path} do not fit this model: {e}. Was it saved from the same architecture?"
        ) from e
    return model
