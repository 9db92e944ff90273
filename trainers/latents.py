"""Forgotten latents and their substitutes: where in latent space the original generator shows forgotten
content, and which nearby retained sample each such latent should produce instead."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from gan_unlearn import streams
from gan_unlearn.errors import UserError
from gan_unlearn.neighbours import nearest_neighbours
from gan_unlearn.runtime import batched, frozen

SUBSTITUTIONS = {
    "nearest-latent": "option B: the original generator's image at the nearest retained latent",
    "nearest-real": "option A: the nearest retained real image in feature space",
    "none": "no substitution (fake label and preservation only)",
}


@dataclass
class LatentPool:
    """Latents drawn from the prior, the original generator's images of them, and their features."""

    z: torch.Tensor
    images: torch.Tensor
    features: torch.Tensor

    @classmethod
    def draw(cls, G0, size: int, feature_fn, seed: int, device, precision: str = "fp32",
             batch_size: int = 256) -> "LatentPool":
        z = G0.sample_latents(size, streams.generator(seed, "unlearn.pool"))
        images = batched(G0, z, batch_size, device, precision)
        return cls(z, images, batched(feature_fn, images, batch_size, device, precision))


def class_forget_mask(pool: LatentPool, oracle, class_id: int, threshold: float) -> tuple:
    """(forgotten, retained) masks: the oracle sees class ``class_id`` with probability above ``threshold``,
    or predicts another class. The pool's features are the oracle's hidden layer, so only its head runs."""
    with torch.no_grad():
        probs = F.softmax(oracle.head(pool.features.to(oracle.head.weight.device)).float().cpu(), dim=1)
    forgotten = probs[:, class_id] > threshold
    retained = probs.argmax(1) != class_id
    return forgotten, retained


def item_forget_latents(pool: LatentPool, forget_features: torch.Tensor, neighbours: int) -> tuple:
    """For each forgotten item, its ``neighbours`` nearest pool samples in feature space.

    Returns (pool indices, item index of each) with one row per (item, neighbour) pair, and the
    retained mask: pool samples near no forgotten item.
    """
    idx = nearest_neighbours(forget_features, pool.features, neighbours)
    items = torch.arange(len(forget_features)).repeat_interleave(neighbours)
    retained = torch.ones(len(pool.z), dtype=torch.bool)
    retained[idx.flatten()] = False
    return idx.flatten(), items, retained


def invert(G0, z: torch.Tensor, targets: torch.Tensor, steps: int, lr: float, device) -> torch.Tensor:
    """Refine latents by minimising ||G0(z) - target||^2 over z (generator frozen, in eval mode)."""
    if steps <= 0:
        return z
    z = z.clone().to(device).requires_grad_(True)
    targets = targets.to(device)
    opt = torch.optim.Adam([z], lr=lr)
    with frozen(G0):
        for _ in range(steps):
            loss = F.mse_loss(G0(z), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return z.detach().cpu()


def substitutes(method: str, pool: LatentPool, retained: torch.Tensor, z_forget: torch.Tensor,
                forget_features: torch.Tensor, real_images: torch.Tensor | None,
                real_features: torch.Tensor | None) -> torch.Tensor | None:
    """Substitute target image for each forgotten latent.

    ``nearest-real`` (option A): the retained real image nearest to G0(z_f) in feature space.
    ``nearest-latent`` (option B): G0(z_r) for the retained pool latent nearest to z_f in latent space.
    """
    if method == "none":
        return None
    if method == "nearest-real":
        if real_images is None or real_features is None:
            raise UserError("nearest-real substitution needs retained real images")
        return real_images[nearest_neighbours(forget_features, real_features)[:, 0]]
    if method == "nearest-latent":
        candidates = retained.nonzero().flatten()
        if len(candidates) == 0:
            raise UserError("no retained latents in the pool to substitute with; raise --pool-size")
        return pool.images[candidates[nearest_neighbours(z_forget, pool.z[candidates])[:, 0]]]
    raise UserError(f"unknown substitution {method!r}; use one of {', '.join(SUBSTITUTIONS)}")

