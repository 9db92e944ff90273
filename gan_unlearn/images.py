"""Sample grids as PNG: torchvision's ``make_grid``/``save_image``, written atomically."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .checkpoint import atomic_write


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Tile images in [-1, 1] (N, C, H, W) into one PNG with white padding (square by default)."""
    from torchvision.utils import save_image

    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(images)))))
    pixels = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    atomic_write(path, lambda f: save_image(pixels, f, format="png", nrow=nrow, padding=2, pad_value=1.0))
    return Path(path)
