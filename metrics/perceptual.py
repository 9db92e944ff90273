"""LPIPS perceptual distance through the lpips package, without network access.

lpips ships its calibrated linear layers but fetches the ImageNet backbone from torchvision's download
URLs. Here the backbone is built untrained and filled from an explicit file or the torch hub cache, and
torchvision's deprecation warnings from lpips's old API are kept from the user.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch.nn import functional as F

from gan_unlearn.errors import UserError

from .extractors import find_weights

BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth",
                  "squeeze": "squeezenet1_1-b8a52dc0.pth"}


class LPIPS:
    """Callable ``lpips(x, y)`` -> per-pair distances for images in [-1, 1] (grayscale is repeated to
    RGB, images smaller than 64 px are upsampled so that every backbone stage has pixels left)."""

    def __init__(self, net: str = "alex", backbone: str | os.PathLike | None = None, device="cpu"):
        if net not in BACKBONE_FILES:
            raise UserError(f"unknown LPIPS backbone {net!r}; use one of {', '.join(BACKBONE_FILES)}")
        path = find_weights(backbone, BACKBONE_FILES[net], f"LPIPS {net} backbone", "--lpips-backbone")
        import lpips

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" from lpips's old calls
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        try:
            tv_state = torch.load(path, map_location="cpu", weights_only=True)
            # lpips splits torchvision's `features` into slices that keep the original layer numbers
            mapped = {key: tv_state[f"features.{key.split('.', 1)[1]}"] for key in model.net.state_dict()}
            model.net.load_state_dict(mapped)
        except Exception as exc:
            raise UserError(f"{path} does not hold torchvision {net} weights for LPIPS: "
                            f"{str(exc).splitlines()[0][:200]}") from None
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.net = net

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        out = []
        for i in range(0, len(x), batch_size):
            a, b = (self._prepare(t[i:i + batch_size]) for t in (x, y))
            out.append(self.model(a, b).flatten().cpu())
        return torch.cat(out)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device).float()
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        if images.shape[-1] < 64:
            images = F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False)
        return images
