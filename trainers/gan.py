"""DCGAN training from scratch: the recipe that makes the original model and, on retained data only,
the retrained gold standard."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from gan_unlearn.checkpoint import dataset_record, model_entry, package_versions
from gan_unlearn.data import ImageDataset
from gan_unlearn.images import save_grid
from gan_unlearn.models import Discriminator, Generator
from gan_unlearn.runtime import autocast, check_precision, frozen, seed_everything, to_memory_format

from .loop import ResumableTrainer


@dataclass
class GANConfig:
    """The training recipe; stored in every GAN checkpoint so that ``retrain`` can repeat it."""

    epochs: int = 5
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    latent_dim: int = 100
    width: int = 64
    precision: str = "bf16"
    channels_last: bool = True
    seed: int = 0

    @classmethod
    def from_record(cls, record: dict, **overrides) -> "GANConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in record.items() if k in names}, **overrides})


def make_optimizer(params, lr: float, beta1: float, beta2: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel: the same update as the default for-loop Adam, one kernel per step
    instead of a dozen small ops per tensor (measured 6.6 -> 0.6 ms per DCGAN G+D step on 2 CPU cores)."""
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), fused=True)


def d_loss_real_fake(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Standard discriminator loss: real images labelled 1, generated images labelled 0."""
    real_logits, fake_logits = D(real).float(), D(fake).float()
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_loss_adversarial(D: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: make D call generated images real."""
    logits = D(fake).float()
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def gan_step(G, D, opt_g, opt_d, real, z, device, precision) -> dict:
    """One discriminator then one generator update on a batch; the same fake batch serves both."""
    with autocast(device, precision):
        fake = G(z)
        loss_d = d_loss_real_fake(D, real, fake.detach())
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    with frozen(D):  # the generator step needs gradients through D, not of D's weights
        with autocast(device, precision):
            loss_g = g_loss_adversarial(D, fake)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}


@torch.no_grad()
def recalibrate_discriminator(D: nn.Module, G: nn.Module, data: ImageDataset, device, seed: int = 0,
                              batches: int = 50, batch_size: int = 64) -> None:
    """Recompute D's BatchNorm running statistics over batches of half real, half generated images.

    D trains on all-real and all-fake batches, each normalised by its own statistics; the running
    averages of those two regimes make an eval-mode D that calls nearly everything real. Statistics of
    mixed batches give an eval-mode D whose per-image scores separate real from generated images, which
    is what membership attacks, the item stopping rule and unlearning need.
    """
    norms = [m for m in D.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    rng = torch.Generator().manual_seed(seed)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_d, was_g = D.training, G.training
    D.train(), G.eval()
    fmt = torch.channels_last if next(D.parameters()).is_contiguous(memory_format=torch.channels_last) else None
    try:
        for _ in range(batches):
            idx = torch.randint(len(data), (batch_size // 2,), generator=rng)
            fake = G(G.sample_latents(batch_size - len(idx), rng, device)).float()
            x = torch.cat([data.batch(idx, device), fake])
            D(x.contiguous(memory_format=fmt) if fmt else x)
    finally:
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        D.train(was_d), G.train(was_g)


class GANTrainer(ResumableTrainer):
    kind = "gan"

    def __init__(self, dataset: ImageDataset, config: GANConfig, device: torch.device, out, *,
                 checkpoint_every: int = 500, show_progress: bool = True, samples_path=None,
                 provenance: dict | None = None):
        super().__init__(num_items=len(dataset), batch_size=config.batch_size, epochs=config.epochs,
                         seed=config.seed, out=out, checkpoint_every=checkpoint_every, show_progress=show_progress)
        self.dataset, self.config, self.device = dataset, config, device
        check_precision(config.precision)
        self.samples_path = samples_path
        self.provenance = provenance or {}
        seed_everything(config.seed)
        c, h, _ = dataset.image_shape
        self.G = to_memory_format(Generator(h, c, config.latent_dim, config.width).to(device), config.channels_last)
        self.D = to_memory_format(Discriminator(h, c, config.width).to(device), config.channels_last)
        self.opt_g = make_optimizer(self.G.parameters(), config.lr, config.beta1, config.beta2)
        self.opt_d = make_optimizer(self.D.parameters(), config.lr, config.beta1, config.beta2)
        self.latent_rng = torch.Generator().manual_seed(config.seed + 1)

    def config_record(self) -> dict:
        return {**asdict(self.config), "dataset_hash": self.dataset.content_hash()[:16]}

    def train_step(self, indices: torch.Tensor) -> dict:
        real = to_memory_format(self.dataset.batch(indices, self.device), self.config.channels_last)
        z = self.G.sample_latents(len(indices), self.latent_rng, self.device)
        return gan_step(self.G, self.D, self.opt_g, self.opt_d, real, z, self.device, self.config.precision)

    def training_state(self) -> dict:
        return {"generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "latent_rng": self.latent_rng.get_state()}

    def load_training_state(self, state: dict) -> None:
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.latent_rng.set_state(state["latent_rng"])

    def end_of_epoch(self, epoch: int, means: dict) -> dict:
        if self.samples_path is not None:
            save_grid(self.G.generate_images(64, seed=self.config.seed), self.samples_path)
        return {"elapsed": round(self.elapsed, 2)}

    def final_checkpoint(self) -> dict:
        recalibrate_discriminator(self.D, self.G, self.dataset, self.device, seed=self.config.seed)
        steps = self.global_step
        return {
            "kind": "gan",
            "models": {"generator": model_entry(self.G), "discriminator": model_entry(self.D)},
            "dataset": dataset_record(self.dataset),
            "config": asdict(self.config),
            "seed": self.config.seed,
            "versions": package_versions(),
            "metrics": {"steps": steps, "images_per_second": round(steps * self.config.batch_size / max(self.elapsed, 1e-9), 1)},
            "history": self.epoch_log,
            "lineage": [{"event": "train-gan", **self.provenance,
                         "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}],
        }


def train_gan(dataset: ImageDataset, config: GANConfig, device, out, *, resume: bool = False,
              stop_after_steps: int | None = None, **kwargs) -> dict:
    """Train a DCGAN on ``dataset`` and write its checkpoint to ``out``; returns the checkpoint."""
    return GANTrainer(dataset, config, device, out, **kwargs).fit(resume=resume, stop_after_steps=stop_after_steps)
