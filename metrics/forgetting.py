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
    z = generator.sample_latents(num_samples, streams.generator(seed, stream))
    with eval_mode(generator, oracle):
        preds = batched(lambda v: oracle(generator(v)), z, batch_size, device, precision).argmax(1)
    return torch.bincount(preds, minlength=oracle.num_classes)


@torch.no_grad()
def discriminator_scores(discriminator, images: torch.Tensor, device="cpu", precision: str = "fp32",
                         batch_size: int = 1000) -> torch.Tensor:
    """D's probability of "real" for each image in [-1, 1] (eval mode, so scores do not depend on batching)."""
    with eval_mode(discriminator):
        return batched(lambda x: torch.sigmoid(discriminator(x).float()), images, batch_size, device, precision)
