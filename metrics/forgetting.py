"""Forget metrics that unlearning stops on and reports: how generated samples fall into classes (a
forgotten class's share of them is the forget rate), and the discriminator's scores on forgotten versus
held-out images."""

from __future__ import annotations

import torch

from gan_unlearn import streams
from gan_unlearn.runtime import batched, eval_mode


@torch.no_grad()
def class_histogram(generator, oracle, num_samples: int = 10000, seed: int = 0, device="cpu",
                    precision: str = "fp32", batch_size: int = 1000, stream: str = "evaluate.latents") -> torch.Tensor:
    """How many of ``num_samples`` generated images (latents of ``stream``) the oracle assigns to each class."""
    preds = stream_predictions(generator, oracle, num_samples, seed, device, precision, batch_size, stream)
    return torch.bincount(preds, minlength=oracle.num_classes)


@torch.no_grad()
def stream_predictions(generator, oracle, num_samples: int, seed: int = 0, device="cpu", precision: str = "fp32",
                       batch_size: int = 1000, stream: str = "evaluate.latents") -> torch.Tensor:
    """The oracle's class for each of ``num_samples`` generated images, latents of ``stream`` in order: the same
    latents for the same seed and stream, so two readings can be compared latent by latent."""
    z = generator.sample_latents(num_samples, streams.generator(seed, stream))
    return predicted_classes(generator, oracle, z, device, precision, batch_size)


@torch.no_grad()
def predicted_classes(generator, reader, z: torch.Tensor, device="cpu", precision: str = "fp32",
                      batch_size: int = 1000) -> torch.Tensor:
    """The class ``reader`` assigns to the generator's image of each latent (both in eval mode)."""
    with eval_mode(generator, reader):
        return batched(lambda v: reader(generator(v)), z, batch_size, device, precision).argmax(1)


@torch.no_grad()
def discriminator_scores(discriminator, images: torch.Tensor, device="cpu", precision: str = "fp32",
                         batch_size: int = 1000) -> torch.Tensor:
    """D's probability of "real" for each image in [-1, 1] (eval mode, so scores do not depend on batching)."""
    return torch.sigmoid(discriminator_logits(discriminator, images, device, precision, batch_size))


@torch.no_grad()
def discriminator_logits(discriminator, images: torch.Tensor, device="cpu", precision: str = "fp32",
                         batch_size: int = 1000) -> torch.Tensor:
    """D's real/fake logit for each image (eval mode), in fp32: what a shift of D's decision threshold adds to."""
    with eval_mode(discriminator):
        return batched(lambda x: discriminator(x).float(), images, batch_size, device, precision)


# Latents no unlearning method samples (its pool and steps draw from the prior, whose norm sits at about
# sqrt(latent_dim)), placed where the original generator shows the forgotten class.
BEYOND_POOL = {
    "interpolated": "midpoints of two latents the original shows as the class (norm about 0.7x the prior's)",
    "scaled": "latents the original shows as the class, scaled 1.5x (norm 1.5x the prior's)",
}


@torch.no_grad()
def beyond_pool_probes(original, labeller, class_id: int, candidates: int = 10000, seed: int = 0, device="cpu",
                       scale: float = 1.5, batch_size: int = 1000) -> dict[str, torch.Tensor]:
    """Probe latents for forgetting beyond the pool's region: ``candidates`` latents of the ``evaluate.beyond``
    stream, those the original generator's image of is labelled ``class_id`` by ``labeller``, then their
    pairwise midpoints and their 1.5x scalings. An unlearned generator that only rewired the pool's
    neighbourhood shows the class again there."""
    z = original.sample_latents(candidates, streams.generator(seed, "evaluate.beyond"))
    zc = z[predicted_classes(original, labeller, z, device, batch_size=batch_size) == class_id]
    half = len(zc) // 2
    return {"interpolated": 0.5 * (zc[:half] + zc[half:2 * half]), "scaled": scale * zc}


@torch.no_grad()
def class_share(generator, reader, z: torch.Tensor, class_id: int, device="cpu", batch_size: int = 1000) -> float | None:
    """Share of the generator's images of ``z`` that ``reader`` labels ``class_id`` (None for no latents)."""
    if len(z) == 0:
        return None
    return (predicted_classes(generator, reader, z, device, batch_size=batch_size) == class_id).double().mean().item()
