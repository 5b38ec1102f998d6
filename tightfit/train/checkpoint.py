"""Per-epoch training checkpoints, written atomically and loaded with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tightfit.errors import TightfitError
from tightfit.fileio import atomic_path


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none; a corrupt file is an error, not silently restarted."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a damaged zip/pickle
        raise TightfitError(f"checkpoint {path} is unreadable ({type(err).__name__}); delete it to restart "
                            "training from scratch") from None
