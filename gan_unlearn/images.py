"""Image grids written as PNG, atomically."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write
from .data import to_uint8


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile images in [-1, 1] (N, C, H, W) into one uint8 HWC array with white padding."""
    n, c, h, w = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    pixels = to_uint8(images).numpy()
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = pixels[i].transpose(1, 2, 0)
    return grid


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    from PIL import Image

    grid = make_grid(images, nrow)
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    atomic_write(path, lambda f: image.save(f, format="PNG"))
    return Path(path)
