"""SPD-GAN (Zuo et al., arXiv 2401.04385): a GAN that generates "slightly perturbed distribution" samples of
the unlearning data, on which the forgetting rate FR = (acc_before - acc_after) / acc_before and the memory
retention rate (acc_after / acc_before on perturbed retained data) are read.

Here the generator is conditional on an image: x' = clamp(x + eps * tanh(net(x, z)), -1, 1). It is trained
with this project's DCGAN discriminator and losses (``trainers.gan``): the discriminator tells real training
images from perturbed ones, so perturbed images stay on the data distribution; a hinge term pushes each
perturbation's RMS up to ``target_rms`` so that the samples are not copies of their sources.

How "slightly" is controlled and checked (``SPDBand``):
- by construction, no pixel moves by more than ``eps`` (images in [-1, 1]);
- a sample is kept only if (1) its RMS pixel distance to its source is at least ``min_rms`` (it is a new
  sample), (2) its distance to its source in a judge classifier's feature space is at most ``feature_ratio``
  times the median nearest-neighbour distance between real images of that class (it is closer to its
  source than real images of the class typically are to each other), and (3) the judge, a classifier the
  unlearning methods never saw, still gives it its source's label.
The acceptance rate is reported: a generator whose samples mostly fall outside the band is a failed one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from gan_unlearn.data import ImageDataset, to_float, to_uint8
from gan_unlearn.errors import UserError
from gan_unlearn.models import Discriminator
from gan_unlearn.runtime import frozen

from .gan import d_loss_real_fake, g_loss_adversarial, make_optimizer


@dataclass
class SPDConfig:
    eps: float = 0.3  # max per-pixel change, images in [-1, 1]
    target_rms: float = 0.08  # the hinge pushes each perturbation's RMS up to this
    steps: int = 200
    batch_size: int = 64
    lr: float = 2e-4
    width: int = 32
    noise_dim: int = 8
    magnitude_weight: float = 10.0
    seed: int = 0


@dataclass
class SPDBand:
    eps: float = 0.3
    min_rms: float = 0.04
    feature_ratio: float = 0.5


class PerturbationGenerator(nn.Module):
    """(x, z) -> x + eps * tanh(net(x, z)) clamped to [-1, 1]: every pixel within eps of the source."""

    def __init__(self, channels: int = 1, width: int = 32, noise_dim: int = 8, eps: float = 0.3):
        super().__init__()
        if not 0 < eps <= 2:
            raise UserError(f"the perturbation bound eps must be in (0, 2], not {eps}")
        self.channels, self.width, self.noise_dim, self.eps = channels, width, noise_dim, eps
        self.net = nn.Sequential(nn.Conv2d(channels + noise_dim, width, 3, 1, 1), nn.ReLU(),
                                 nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(),
                                 nn.Conv2d(width, channels, 3, 1, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        zmap = z[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return (x + self.eps * torch.tanh(self.net(torch.cat([x, zmap], 1)))).clamp(-1, 1)


def train_spd_gan(dataset: ImageDataset, config: SPDConfig = SPDConfig(), device="cpu") -> PerturbationGenerator:
    """Train the perturbation generator on ``dataset`` (all its classes: it perturbs forgotten and retained
    data alike) against a DCGAN discriminator; returns the generator in eval mode."""
    if len(dataset) < 2:
        raise UserError("SPD-GAN needs at least two training images")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    c, h, _ = dataset.image_shape
    G = PerturbationGenerator(c, config.width, config.noise_dim, config.eps).to(device)
    D = Discriminator(h, c, config.width).to(device)
    opt_g = make_optimizer(G.parameters(), config.lr, 0.5, 0.999)
    opt_d = make_optimizer(D.parameters(), config.lr, 0.5, 0.999)
    for _ in range(config.steps):
        real = dataset.batch(torch.randint(len(dataset), (config.batch_size,), generator=gen), device)
        src = dataset.batch(torch.randint(len(dataset), (config.batch_size,), generator=gen), device)
        z = torch.randn(config.batch_size, config.noise_dim, generator=gen).to(device)
        fake = G(src, z)
        loss_d = d_loss_real_fake(D, real, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with frozen(D):
            rms = (fake - src).pow(2).flatten(1).mean(1).sqrt()
            loss_g = g_loss_adversarial(D, fake) + config.magnitude_weight * F.relu(config.target_rms - rms).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        opt_g.step()
    G.config = asdict(config)
    return G.eval()


@torch.no_grad()
def median_nn_distance(features: torch.Tensor) -> float:
    """Median over points of the distance to their nearest other point."""
    if len(features) < 2:
        raise UserError("the feature band needs at least two real images of the class")
    d = torch.cdist(features.double(), features.double())
    d.fill_diagonal_(float("inf"))
    return d.min(1).values.median().item()


@torch.no_grad()
def band_checks(sources_uint8: torch.Tensor, samples_uint8: torch.Tensor, labels: torch.Tensor, judge,
                band: SPDBand, feature_scale: float, device="cpu") -> dict[str, torch.Tensor]:
    """Per sample: max pixel change, RMS change, judge-feature distance / feature_scale, judge agreement."""
    x, xp = to_float(sources_uint8), to_float(samples_uint8)
    diff = (xp - x).flatten(1)
    judge.eval()
    fx, fxp = judge.features(x.to(device)).cpu(), judge.features(xp.to(device)).cpu()
    pred = judge(xp.to(device)).argmax(1).cpu()
    return {"max_abs": diff.abs().max(1).values, "rms": diff.pow(2).mean(1).sqrt(),
            "feature_ratio": (fxp - fx).norm(dim=1) / feature_scale, "judge_agrees": pred == labels}


@torch.no_grad()
def spd_samples(G: PerturbationGenerator, data: ImageDataset, judge, band: SPDBand = SPDBand(), seed: int = 0,
                device="cpu", batch_size: int = 500) -> tuple[ImageDataset, dict]:
    """Perturb every image of ``data`` once (seeded z), keep those inside the band; returns the kept samples
    (uint8, the sources' labels) and a record of the band and the acceptance rate. The feature scale is the
    median nearest-neighbour distance among ``data``'s images of each class in the judge's feature space."""
    if band.eps < G.eps:
        raise UserError(f"the band's eps {band.eps} is below the generator's bound {G.eps}")
    if len(data) == 0:
        raise UserError("no images to perturb")
    g = torch.Generator().manual_seed(seed)
    G.eval()
    z_all = torch.randn(len(data), G.noise_dim, generator=g)  # all at once: the batch size cannot change z
    out = []
    for i in range(0, len(data), batch_size):
        x = data.batch(torch.arange(i, min(i + batch_size, len(data))), device)
        out.append(to_uint8(G(x, z_all[i:i + batch_size].to(device))))
    samples = torch.cat(out)
    judge.eval()
    keep = torch.zeros(len(data), dtype=torch.bool)
    passed = {k: torch.zeros(len(data), dtype=torch.bool) for k in ("pixel", "min_rms", "feature", "judge")}
    scales = {}
    for c in data.labels.unique().tolist():
        idx = (data.labels == c).nonzero().flatten()
        feats = torch.cat([judge.features(data.batch(idx[j:j + batch_size], device)).cpu()
                           for j in range(0, len(idx), batch_size)])
        scales[c] = median_nn_distance(feats)
        chk = band_checks(data.images[idx], samples[idx], data.labels[idx], judge, band, scales[c], device)
        passed["pixel"][idx] = chk["max_abs"] <= band.eps + 1e-6
        passed["min_rms"][idx] = chk["rms"] >= band.min_rms
        passed["feature"][idx] = chk["feature_ratio"] <= band.feature_ratio
        passed["judge"][idx] = chk["judge_agrees"]
    keep = passed["pixel"] & passed["min_rms"] & passed["feature"] & passed["judge"]
    kept = ImageDataset(data.name, f"{data.split}-spd", samples[keep], data.labels[keep], data.num_classes)
    record = {"band": asdict(band), "accepted": int(keep.sum()), "candidates": len(data),
              "acceptance_rate": keep.double().mean().item(), "feature_scale": scales,
              "pass_rates": {k: v.double().mean().item() for k, v in passed.items()},
              "source_index": keep.nonzero().flatten()}
    return kept, record
