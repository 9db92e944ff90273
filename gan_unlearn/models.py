"""Networks: DCGAN generator and discriminator for 28x28 and 32x32 images, and a small CNN classifier.

Every network is described by a plain ``spec`` dict (``{"arch": name, **kwargs}``) so that a
checkpoint can rebuild it without pickled code; ``build_model(spec)`` is the single way back.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .data import MAX_CLASSES, to_float
from .errors import UserError
from .runtime import autocast, eval_mode, resolve_channels_last


def dcgan_init(module: nn.Module) -> None:
    """Standard DCGAN initialisation (Radford et al.): N(0, 0.02) convolutions, N(1, 0.02) BatchNorm."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class LatentProjection(nn.ConvTranspose2d):
    """The generator's first layer: a transposed convolution of a 1x1 latent "image" with padding 0.

    On a 1x1 input it is exactly a matrix product (weight viewed as in x out*k*k); CPU deconvolution
    kernels run it about 3x slower than the matmul, so forward takes that route. Same parameters, same
    state dict keys and module hooks as ``nn.ConvTranspose2d``; other inputs use the convolution.
    """

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if x.shape[-2:] != (1, 1) or output_size is not None or self.padding != (0, 0) or self.groups != 1:
            return super().forward(x, output_size)
        kh, kw = self.kernel_size
        out = F.linear(x.flatten(1), self.weight.flatten(1).t()).view(x.shape[0], self.out_channels, kh, kw)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class Generator(nn.Module):
    """DCGAN generator: latent vector -> image in [-1, 1]."""

    arch = "dcgan-generator"

    def __init__(self, image_size: int = 28, channels: int = 1, latent_dim: int = 100, width: int = 64):
        super().__init__()
        if image_size not in (28, 32):
            raise UserError(f"DCGAN supports 28x28 and 32x32 images, not {image_size}x{image_size}")
        self.image_size, self.channels, self.latent_dim, self.width = image_size, channels, latent_dim, width
        w = width
        if image_size == 28:  # 1 -> 7 -> 14 -> 28
            layers = [LatentProjection(latent_dim, 4 * w, 7, 1, 0, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
                      nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
                      nn.ConvTranspose2d(2 * w, channels, 4, 2, 1), nn.Tanh()]
        else:  # 1 -> 4 -> 8 -> 16 -> 32
            layers = [LatentProjection(latent_dim, 4 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
                      nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
                      nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                      nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def spec(self) -> dict:
        return {"arch": self.arch, "image_size": self.image_size, "channels": self.channels,
                "latent_dim": self.latent_dim, "width": self.width}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> torch.Tensor:
        """Standard normal latents; drawn on CPU from ``generator`` so a seed means the same z on any device."""
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def generate_images(self, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
        """``n`` images in [-1, 1] from seeded latents, in eval mode, on the model's device."""
        device = next(self.parameters()).device
        z = self.sample_latents(n, torch.Generator().manual_seed(seed))  # all at once: batch size cannot change z
        with eval_mode(self):
            out = [self(z[i:i + batch_size].to(device)).float() for i in range(0, n, batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.channels, self.image_size, self.image_size)


class Discriminator(nn.Module):
    """DCGAN discriminator: image -> one real/fake logit (use with ``BCEWithLogits``)."""

    arch = "dcgan-discriminator"

    def __init__(self, image_size: int = 28, channels: int = 1, width: int = 64):
        super().__init__()
        if image_size not in (28, 32):
            raise UserError(f"DCGAN supports 28x28 and 32x32 images, not {image_size}x{image_size}")
        self.image_size, self.channels, self.width = image_size, channels, width
        w = width
        if image_size == 28:  # 28 -> 14 -> 7 -> 1
            layers = [nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2),
                      nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
                      nn.Conv2d(2 * w, 1, 7, 1, 0)]
        else:  # 32 -> 16 -> 8 -> 4 -> 1
            layers = [nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2),
                      nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
                      nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
                      nn.Conv2d(4 * w, 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def spec(self) -> dict:
        return {"arch": self.arch, "image_size": self.image_size, "channels": self.channels, "width": self.width}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class Classifier(nn.Module):
    """Small CNN: conv blocks, a hidden linear layer (the feature layer), and the class logits.

    ``features(x)`` returns the hidden layer's activations: the oracle's FID feature space and the
    units that path perturbation ranks. ``head`` is the last linear layer.
    """

    arch = "cnn-classifier"

    def __init__(self, image_size: int = 28, channels: int = 1, num_classes: int = 10, hidden: int = 512,
                 widths: tuple[int, ...] | list[int] | None = None, dropout: float = 0.25):
        super().__init__()
        if widths is None:
            widths = (32, 64) if image_size <= 28 else (32, 64, 128)
        self.image_size, self.channels, self.num_classes = image_size, channels, num_classes
        self.hidden, self.widths, self.dropout = hidden, tuple(widths), dropout
        blocks, c, s = [], channels, image_size
        for w in self.widths:
            blocks += [nn.Conv2d(c, w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2)]
            c, s = w, s // 2
        self.conv = nn.Sequential(*blocks)
        self.fc = nn.Linear(c * s * s, hidden)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def spec(self) -> dict:
        return {"arch": self.arch, "image_size": self.image_size, "channels": self.channels,
                "num_classes": self.num_classes, "hidden": self.hidden, "widths": list(self.widths),
                "dropout": self.dropout}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


MODEL_TYPES = {cls.arch: cls for cls in (Generator, Discriminator, Classifier)}

# What a spec may hold: name -> (types, low, high). Bounds lie far above any real setting of these small
# networks and low enough that a malformed or hostile spec cannot ask for gigabytes before its weights are
# checked (width 10^6 would be a 78 GB generator).
_SHAPE = {"image_size": ((int,), 8, 512), "channels": ((int,), 1, 4)}
SPEC_BOUNDS = {
    Generator.arch: {**_SHAPE, "latent_dim": ((int,), 1, 4096), "width": ((int,), 1, 1024)},
    Discriminator.arch: {**_SHAPE, "width": ((int,), 1, 1024)},
    Classifier.arch: {**_SHAPE, "num_classes": ((int,), 1, MAX_CLASSES), "hidden": ((int,), 1, 65536),
                      "widths": ((list, tuple), 1, 4096), "dropout": ((int, float), 0, 0.999)},
}


def check_spec(spec) -> None:
    """Refuse a spec with unknown keys, wrong types or values out of bounds, before anything is built."""
    if not isinstance(spec, dict):
        raise UserError(f"a model spec must be a dict, not {type(spec).__name__}")
    arch = spec.get("arch")
    if arch not in MODEL_TYPES:
        raise UserError(f"unknown architecture {arch!r}; known: {', '.join(sorted(MODEL_TYPES))}")
    bounds = SPEC_BOUNDS[arch]
    for key, value in spec.items():
        if key == "arch":
            continue
        if key not in bounds:
            raise UserError(f"architecture {arch!r} has no parameter {key!r}")
        types, low, high = bounds[key]
        values = value if key == "widths" and isinstance(value, (list, tuple)) else [value]
        if key == "widths" and not 1 <= len(values) <= 6:
            raise UserError(f"{arch} spec: widths must list 1 to 6 channel counts, got {len(values)}")
        item_types = (int,) if key == "widths" else types
        if not isinstance(value, types) or any(isinstance(v, bool) or not isinstance(v, item_types)
                                               or not low <= v <= high for v in values):
            raise UserError(f"{arch} spec: {key} must be in {low}..{high}, got {str(value)[:60]}")
    if arch == Classifier.arch and "widths" in spec and spec.get("image_size", 28) >> len(spec["widths"]) < 1:
        raise UserError(f"{arch} spec: {len(spec['widths'])} pooling stages do not fit {spec.get('image_size', 28)}-pixel images")


def build_model(spec: dict) -> nn.Module:
    """Rebuild a network from its ``spec()``; an unknown architecture or a spec out of bounds is a ``UserError``."""
    check_spec(spec)
    kwargs = dict(spec)
    arch = kwargs.pop("arch", None)
    try:
        return MODEL_TYPES[arch](**kwargs)
    except TypeError as exc:
        raise UserError(f"architecture {arch!r} cannot be built from {spec}: {exc}") from None


@torch.no_grad()
def predict(model: nn.Module, images_uint8: torch.Tensor, device, batch_size: int = 1000,
            precision: str = "fp32") -> torch.Tensor:
    """Class logits (float32, on the CPU) of a classifier for uint8 images, in eval mode: what training
    reports, metrics and unlearning methods all read a classifier by.

    Where the runtime's rule picks channels_last (CPUs), a channels_last copy of the model runs: the
    classifier's max-pooling and convolutions took half the time in NHWC on a 2-core AVX512 Xeon (0.89 vs
    1.76 s for 5,000 MNIST images; logits equal to 4e-6, the same argmax). The model passed in keeps its layout
    (the copy carries its hooks: a hook that records into its module sees the copy, not the model)."""
    device = torch.device(device)
    # only for the project's CNN, whose forward is layout-agnostic (flatten); a model that calls .view() after a
    # convolution fails on channels_last tensors
    channels_last = resolve_channels_last("auto", device, precision)[0] and isinstance(model, Classifier)
    run = copy.deepcopy(model).to(memory_format=torch.channels_last) if channels_last else model
    out = []
    with eval_mode(run):
        for i in range(0, len(images_uint8), batch_size):
            x = to_float(images_uint8[i:i + batch_size].to(device))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                out.append(run(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0, model.num_classes)
