"""Resizing of uint8 image batches."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def resize_uint8(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 (N, C, H, W) to resolution x resolution; None keeps the size."""
    if resolution is None or (x.shape[-2] == resolution and x.shape[-1] == resolution):
        return x
    out = F.interpolate(x.float(), size=(resolution, resolution), mode="bilinear", antialias=True,
                        align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)
