"""GAN unlearning: one small class per method over a shared loop (``base``), and the registry that the
command line and the benchmarks read. A new method is one class registered in ``METHODS`` below."""

from __future__ import annotations

from gan_unlearn.data import ImageDataset
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest

from .base import GANUnlearningMethod, UnlearningResult
from .cascaded import CascadedUnlearning
from .finetune import FineTune
from .options import GROUPS, UnlearnConfig

METHODS: dict[str, type[GANUnlearningMethod]] = {cls.name: cls for cls in (CascadedUnlearning, FineTune)}

__all__ = ["METHODS", "GROUPS", "UnlearnConfig", "UnlearningResult", "GANUnlearningMethod", "CascadedUnlearning",
           "FineTune", "unlearn"]


def unlearn(generator, discriminator, request: ForgetRequest, train_set: ImageDataset, *, method: str = "cascaded",
            config: UnlearnConfig | None = None, oracle=None, held_out: ImageDataset | None = None, device="cpu",
            show_progress: bool = False) -> UnlearningResult:
    """Remove ``request`` from a trained GAN; returns new models and a summary (inputs stay unchanged).

    ``train_set`` is the GAN's training set (forget indices point into it); ``oracle`` is required for
    class requests, ``held_out`` (real images never trained on) for item requests.
    """
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    return METHODS[method](generator, discriminator, request, train_set, config, oracle=oracle, held_out=held_out,
                           device=device, show_progress=show_progress).run()
