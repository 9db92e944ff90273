"""The fine-tuning baseline: the base loop's plain GAN training on the retained data, nothing more."""

from __future__ import annotations

from .base import GANUnlearningMethod


class FineTune(GANUnlearningMethod):
    """Plain GAN training on the retained data only: no fake label, no substitution (baseline)."""

    name = "finetune"
