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


@torch.no_grad()
def head_probabilities(head: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Class probabilities from the oracle's hidden features (only its head runs), on the features' device."""
    return F.softmax(head(features.to(head.weight.device)).float(), dim=1).to(features.device)


def shows_class(probs: torch.Tensor, class_id: int, threshold: float) -> torch.Tensor:
    """Mask of the images (given by the oracle's class probabilities) that show class ``class_id``: the oracle's
    probability of it above ``threshold``, or with ``threshold`` 0 the oracle's predicted class, the criterion
    the forget rate counts."""
    if threshold <= 0:
        return probs.argmax(1) == class_id
    return probs[:, class_id] > threshold


def class_threshold_for(pool: LatentPool, oracle, class_id: int, threshold: float, fallback: float) -> float:
    """The threshold a class request uses: ``threshold``, unless it keeps fewer than ``fallback`` of the pool
    latents the oracle predicts as the class, then 0 (the predicted class), provided those are at most half the
    pool (else too few retained latents are left to substitute with). An unsure oracle is the reason: a 5-epoch
    CIFAR-10 GAN's samples rarely give its oracle 0.5 for any class (1 of 4,096 pool latents passed where it
    predicted the class for 4%), so substitution had nothing to do; on MNIST 0.5 keeps 92% of them, and the
    predicted class alone measured worse there (one seed's own check read its share stalled at 8%)."""
    if threshold <= 0 or fallback <= 0:
        return threshold
    probs = head_probabilities(oracle.head, pool.features).cpu()
    predicted = shows_class(probs, class_id, 0.0)
    n_predicted = int(predicted.sum())
    if 2 * n_predicted > len(probs):
        return threshold
    kept = int((shows_class(probs, class_id, threshold) & predicted).sum())
    return 0.0 if kept < fallback * n_predicted else threshold


def class_forget_mask(pool: LatentPool, oracle, class_id: int, threshold: float) -> tuple:
    """(forgotten, retained) masks: the image shows class ``class_id`` (``shows_class``), or the oracle predicts
    another class (and it is not forgotten). The pool's features are the oracle's hidden layer, so only its
    head runs."""
    probs = head_probabilities(oracle.head, pool.features).cpu()
    forgotten = shows_class(probs, class_id, threshold)
    retained = (probs.argmax(1) != class_id) & ~forgotten  # disjoint also for thresholds below 1/2
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


@dataclass
class ForgetRegion:
    """Where in latent space the original generator shows forgotten content, for any latent, and what a latent
    there should produce instead: the rule that picked the pool's forgotten latents, applied to the original
    generator's image of a new latent, so that substitution is not limited to the pool's latents (the pool
only finds the region; the region is then known everywhere).

    ``class``: the image shows the class (``shows_class``, as ``class_forget_mask``). ``item``: a
    feature distance to some forgotten item no larger than that item's ``neighbours``-th nearest pool sample's
    (the pool's forgotten latents are exactly those within these radii). A latent inside maps to the substitute
    ``substitutes`` gives, as the pool's forgotten latents do.
    """

    pool: LatentPool
    retained: torch.Tensor  # pool mask: latents that may serve as substitutes
    class_head: torch.nn.Module | None = None  # features -> logits (class requests)
    class_id: int | None = None
    threshold: float = 0.5
    item_features: torch.Tensor | None = None  # item requests
    item_radii: torch.Tensor | None = None
    real_images: torch.Tensor | None = None  # nearest-real substitution: retained real images and their features
    real_features: torch.Tensor | None = None

    @classmethod
    def for_class(cls, pool: LatentPool, retained: torch.Tensor, oracle, class_id: int, threshold: float):
        return cls(pool, retained, class_head=oracle.head, class_id=class_id, threshold=threshold)

    @classmethod
    def for_items(cls, pool: LatentPool, retained: torch.Tensor, item_features: torch.Tensor, neighbours: int):
        dist = torch.cdist(item_features.flatten(1).float(), pool.features.flatten(1).float())
        radii = dist.topk(neighbours, dim=1, largest=False).values[:, -1]
        return cls(pool, retained, item_features=item_features.flatten(1).float(), item_radii=radii)

    @torch.no_grad()
    def contains(self, features: torch.Tensor) -> torch.Tensor:
        """Mask of the images (given by their features) that show forgotten content."""
        if self.class_head is not None:
            return shows_class(head_probabilities(self.class_head, features), self.class_id, self.threshold)
        dist = torch.cdist(features.flatten(1).float(), self.item_features.to(features.device))
        return (dist <= self.item_radii.to(features.device)).any(dim=1)

    def substitutes(self, z: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The substitute of each latent ``z`` whose original image has ``features``: the original generator's
        image at the nearest retained pool latent, or with ``real_images`` the nearest of those in features."""
        kind = "nearest-real" if self.real_images is not None else "nearest-latent"
        return substitutes(kind, self.pool, self.retained, z.cpu(), features.cpu(), self.real_images,
                           self.real_features)


def nearest_retained_images(pool: LatentPool, retained: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The pool image of the retained pool latent nearest to each of ``z`` (option B's substitute)."""
    candidates = retained.nonzero().flatten()
    if len(candidates) == 0:
        raise UserError("no retained latents in the pool to substitute with; raise --pool-size")
    return pool.images[candidates[nearest_neighbours(z.cpu(), pool.z[candidates])[:, 0]]]


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
        return nearest_retained_images(pool, retained, z_forget)
    raise UserError(f"unknown substitution {method!r}; use one of {', '.join(SUBSTITUTIONS)}")

