"""The binary cross-entropy GAN losses that GAN training and GAN unlearning share."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """BCE with logits against a constant target (1 real, 0 fake, or a soft label), computed in fp32."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def rank_matched_bce(logits: torch.Tensor, reference_logits: torch.Tensor) -> torch.Tensor:
    """BCE of each logit, in rank order, against the probability at the same quantile of ``reference_logits``
    (detached). Minimal when the two batches' scores share one distribution, so it teaches D to score
    forgotten images like held-out ones (membership AUC 1/2) rather than below them, as a fake label does."""
    logits = logits.float().flatten().sort().values  # equal sizes: exactly rank i against rank i
    target = torch.sigmoid(_reference_quantiles(reference_logits, len(logits)))
    return F.binary_cross_entropy_with_logits(logits, target)


def rank_matched_logits(logits: torch.Tensor, reference_logits: torch.Tensor) -> torch.Tensor:
    """Huber distance (beta 1) of each logit, in rank order, to the logit at the same quantile of
    ``reference_logits`` (detached). Same optimum as ``rank_matched_bce``, but its gradient does not vanish
    where both batches score near 0 or 1: a D that memorised its training set scores unseen real images near
    0, and there the BCE version's pull, the difference of two tiny probabilities, all but stops while the
    ranks still differ. The gradient per logit is bounded by 1/n, as BCE's is."""
    logits = logits.float().flatten().sort().values
    return F.smooth_l1_loss(logits, _reference_quantiles(reference_logits, len(logits)), beta=1.0)


def _reference_quantiles(reference_logits: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` evenly spaced quantiles of ``reference_logits`` (detached); one logit: the median."""
    q = torch.linspace(0, 1, n, device=reference_logits.device) if n > 1 else \
        torch.full((1,), 0.5, device=reference_logits.device)
    return torch.quantile(reference_logits.detach().float().flatten(), q)


def d_loss_real_fake(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Standard discriminator loss: real images labelled 1, generated images labelled 0."""
    return bce(D(real), 1.0) + bce(D(fake), 0.0)


def g_loss_adversarial(D: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: make D call generated images real."""
    return bce(D(fake), 1.0)
