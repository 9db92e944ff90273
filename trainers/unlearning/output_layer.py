"""D's output layer over inputs read once: for a discriminator-only stage that trains that layer alone, every
step and every reading is one small layer instead of the whole network (``item_d_finish_head``)."""

from __future__ import annotations

import torch

from gan_unlearn.runtime import autocast, batched, eval_mode


class OutputLayerInputs:
    """What D's output layer receives for fixed image sets, read once with the rest of D in eval mode (BatchNorm
    as the fixed map the readings use). While the layers below it do not change, ``logits`` of a stored set is
    D's logits of its images, up to the precision the inputs were read in."""

    def __init__(self, discriminator: torch.nn.Module, layer: torch.nn.Module, device, precision: str):
        self.D, self.layer, self.device, self.precision = discriminator, layer, device, precision
        self.sets: list[tuple[torch.Tensor, torch.Tensor]] = []  # (images, the layer's inputs for them)
        self.pools: dict[str, torch.Tensor] = {}  # named inputs a training loss draws from (set by its user)

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> torch.Tensor:
        """The output layer's inputs for ``images`` (float32, on the device), kept for ``logits_of(images)``."""
        def inputs_of(x):
            seen = []
            hook = self.layer.register_forward_hook(lambda module, args, out: seen.append(args[0]))
            try:
                self.D(x)
            finally:
                hook.remove()
            return seen[-1]
        with eval_mode(self.D):
            features = batched(inputs_of, images, 500, self.device, self.precision).to(self.device)
        self.sets.append((images, features))
        return features

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The output layer's logits (float32, one per row), with gradients for the layer's parameters."""
        return self.layer(features).float().flatten()

    @torch.no_grad()
    def logits_of(self, images: torch.Tensor) -> torch.Tensor | None:
        """The logits of a set given to ``read`` (the same tensor), on the CPU, in the precision the whole D's
        readings use (so a finish's readings and the run's later ones agree); None for any other."""
        for stored, features in self.sets:
            if stored is images:
                with autocast(self.device, self.precision):
                    return self.logits(features).cpu()
        return None
