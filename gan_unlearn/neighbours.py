"""Nearest neighbours in Euclidean distance, chunked so that large query sets fit in memory: used to find
forgotten latents, substitutes, and the nearest generated sample of an image (memorisation)."""

from __future__ import annotations

import torch

from .errors import UserError


def nearest_neighbours(queries: torch.Tensor, keys: torch.Tensor, k: int = 1, chunk: int = 2048) -> torch.Tensor:
    """Indices (len(queries), k) of the k nearest keys of each query in Euclidean distance."""
    if len(keys) < k:
        raise UserError(f"need at least {k} candidates for nearest neighbours, have {len(keys)}")
    q, kk = queries.flatten(1).float(), keys.flatten(1).float()
    out = [torch.cdist(q[i:i + chunk], kk).topk(k, dim=1, largest=False).indices for i in range(0, len(q), chunk)]
    return torch.cat(out) if out else torch.empty(0, k, dtype=torch.long)
