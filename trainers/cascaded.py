"""Cascaded GAN unlearning (SPEC section 2) and the fine-tuning baseline.

Rounds alternate a discriminator stage, where forgotten images are labelled fake, and a generator
stage, where forgotten latents learn to produce nearby retained samples (substitution) while the
adversarial loss keeps samples realistic and an optional preservation loss keeps retained latents
where they were. The fine-tuning baseline is the same loop with only the plain GAN losses on the
retained data. Both work on copies: the models passed in are never modified.

Generator and discriminator run in eval mode throughout (BatchNorm as a fixed affine map): the
function that is optimised is exactly the one that samples and scores afterwards, and batches of
only forgotten images cannot skew normalisation statistics.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import torch
from torch.nn import functional as F

from gan_unlearn.data import ImageDataset
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.runtime import autocast, batched, check_precision, frozen, progress, resolve_device, to_memory_format
from metrics.forgetting import class_share, discriminator_scores

from .gan import make_optimizer
from .latents import SUBSTITUTIONS, LatentPool, class_forget_mask, invert, item_forget_latents, substitutes


@dataclass
class UnlearnConfig:
    """Parameters of one unlearning run; all of them are recorded in the output checkpoint. The defaults
    are the setting that measured best on MNIST (scripts/bench_gan_unlearning.py)."""

    max_rounds: int = 200
    min_rounds: int = 10
    d_warmup: int = 0
    d_steps: int = 1
    g_steps: int = 1
    batch_size: int = 64
    forget_batch: int = 32
    lr_d: float = 5e-4
    lr_g: float = 2e-3
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_u: float = 1.0
    fake_target: float = 0.0
    lambda_adv: float = 1.0
    lambda_adv_forget: float = 5.0
    lambda_sub: float = 30.0
    lambda_keep: float = 50.0
    keep_fresh: bool = True
    ema: float = 0.97
    substitution: str = "nearest-latent"
    distance: str = "l2"
    focus_fraction: float = 0.0
    pool_size: int = 4096
    class_threshold: float = 0.5
    item_neighbours: int = 4
    invert_steps: int = 0
    invert_lr: float = 0.05
    target_pool: int = 5000
    check_every: int = 10
    check_samples: int = 2000
    forget_target: float = 0.01
    max_drift: float = 0.15
    max_backoffs: int = 3
    held_out: int = 1000
    seed: int = 0
    precision: str = "bf16"
    channels_last: bool = True

    def validate(self) -> "UnlearnConfig":
        check_precision(self.precision)
        if self.substitution not in SUBSTITUTIONS:
            raise UserError(f"unknown substitution {self.substitution!r}; use one of {', '.join(SUBSTITUTIONS)}")
        if self.distance not in DISTANCES:
            raise UserError(f"unknown distance {self.distance!r}; use one of {', '.join(DISTANCES)}")
        for name in ("max_rounds", "batch_size", "forget_batch", "pool_size", "check_every", "check_samples"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1")
        if self.max_drift <= 0 or self.max_backoffs < 0:
            raise UserError("max-drift must be positive and max-backoffs at least 0")
        if not 0 <= self.fake_target < 1:
            raise UserError("fake-target must be in [0, 1)")
        return self


DISTANCES = {"l2": F.mse_loss, "l1": F.l1_loss}


@dataclass
class UnlearningResult:
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    summary: dict = field(default_factory=dict)


class PhaseTimer:
    """Wall time per phase; synchronises CUDA so that asynchronous kernels are charged to their phase."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, {}

    def __call__(self, phase: str):
        timer = self

        class _Phase:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                if timer.device.type == "cuda":
                    torch.cuda.synchronize(timer.device)
                timer.seconds[phase] = timer.seconds.get(phase, 0.0) + time.perf_counter() - self.t0

        return _Phase()

    def total(self) -> float:
        return sum(self.seconds.values())


class CascadedUnlearning:
    """Fake-label discriminator stage + substitution generator stage, in rounds, with a stopping rule."""

    name = "cascaded"
    uses_fake_label = True
    uses_substitution = True

    def __init__(self, generator, discriminator, request: ForgetRequest, train_set: ImageDataset,
                 config: UnlearnConfig | None = None, *, oracle=None, held_out: ImageDataset | None = None,
                 device="cpu", show_progress: bool = True):
        self.config = (config or UnlearnConfig()).validate()
        self.device = resolve_device(device)
        self.request, self.train_set, self.held_out_set = request, train_set, held_out
        self.forget_idx, self.retain_idx = request.split(train_set.labels, train_set.num_classes)
        if request.kind == "class" and oracle is None:
            raise UserError("class unlearning needs an oracle classifier (--oracle) to find the class's latents")
        if request.kind == "item" and held_out is None:
            raise UserError("item unlearning needs held-out real images (the test split) for its stopping rule")
        cl = self.config.channels_last
        self.G0 = to_memory_format(copy.deepcopy(generator).to(self.device).eval(), cl)  # frozen reference
        self.G = to_memory_format(copy.deepcopy(generator).to(self.device).eval(), cl)
        self.D = to_memory_format(copy.deepcopy(discriminator).to(self.device).eval(), cl)
        self.oracle = oracle.to(self.device).eval() if oracle is not None else None
        self.show_progress = show_progress
        self.rng = torch.Generator().manual_seed(self.config.seed)
        self.timer = PhaseTimer(self.device)

    # --- features and stopping -------------------------------------------------------------------------
    def feature_fn(self, images: torch.Tensor) -> torch.Tensor:
        """Feature space for nearest neighbours: the oracle's hidden layer, or pixels without an oracle."""
        return self.oracle.features(images) if self.oracle is not None else images.flatten(1)

    def forget_metric(self) -> dict:
        """The stopping rule's measurement on the current models."""
        c = self.config
        if self.request.kind == "class":
            share = class_share(self.output_generator, self.oracle, self.request.class_id, c.check_samples,
                                seed=c.seed + 17,
                                device=self.device, precision=c.precision)
            return {"class_share": share, "satisfied": share <= c.forget_target}
        forgotten = discriminator_scores(self.D, self.forget_images, self.device, c.precision).mean().item()
        held = discriminator_scores(self.D, self.held_out_images, self.device, c.precision).mean().item()
        return {"d_score_forgotten": forgotten, "d_score_held_out": held, "satisfied": forgotten <= held}

    @torch.no_grad()
    def preservation_drift(self, count: int = 256) -> float | None:
        """Mean absolute pixel change of the output generator on retained latents (images in [-1, 1]).
        Small while retained content is kept (about 0.05 to 0.1 on MNIST); a collapse (for example to
        blank images, which a too-large learning rate on a young GAN causes) gives 0.3 or more."""
        t = getattr(self, "targets", None)
        if t is None or len(t["z_keep"]) == 0:
            return None
        z, ref = t["z_keep"][:count].to(self.device), t["keep_images"][:count].to(self.device)
        with autocast(self.device, self.config.precision):
            out = self.output_generator(z).float()
        return (out - ref.float()).abs().mean().item()

    def _snapshot(self) -> dict:
        models = {"G": self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d}
        if getattr(self, "G_ema", None) is not None:
            models["G_ema"] = self.G_ema
        return {k: copy.deepcopy(m.state_dict()) for k, m in models.items()}

    def _back_off(self, snapshot: dict, backoffs: int) -> float:
        """Return to the last state that kept retained content and halve both learning rates again."""
        for k, state in snapshot.items():
            getattr(self, k).load_state_dict(state)
        scale = 0.5 ** backoffs
        for opt, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        return self.opt_g.param_groups[0]["lr"]

    # --- preparation ---------------------------------------------------------------------------------------
    def prepare(self) -> dict:
        """Forgotten latents, substitutes and preservation targets; returns counts for the summary."""
        c = self.config
        pool = LatentPool.draw(self.G0, c.pool_size, self.feature_fn, c.seed, self.device, c.precision)
        if self.request.kind == "class":
            forgotten, retained = class_forget_mask(pool, self.oracle, self.request.class_id, c.class_threshold)
            z_forget, forget_feats = pool.z[forgotten], pool.features[forgotten]
        else:
            item_feats = batched(self.feature_fn, self.forget_images, 1000, self.device, c.precision)
            idx, items, retained = item_forget_latents(pool, item_feats, c.item_neighbours)
            z_forget, forget_feats = pool.z[idx], pool.features[idx]
            if c.invert_steps > 0:
                z_forget = invert(self.G0, z_forget, self.forget_images[items], c.invert_steps, c.invert_lr,
                                  self.device)
                forget_feats = batched(lambda z: self.feature_fn(self.G0(z)), z_forget, 1000, self.device,
                                       c.precision)
        real, real_feats = None, None
        if c.substitution == "nearest-real":
            pick = self.retain_idx[torch.randperm(len(self.retain_idx), generator=self.rng)[:c.target_pool]]
            real = self.train_set.batch(pick)
            real_feats = batched(self.feature_fn, real, 1000, self.device, c.precision)
        self.substitute_for = lambda z, feats: substitutes(c.substitution, pool, retained, z, feats, real, real_feats)
        # a generator that never shows the class leaves nothing to substitute; the fake label still applies
        subs = self.substitute_for(z_forget, forget_feats) if len(z_forget) else None
        if c.focus_fraction > 0:
            self.focus_on_relevant_units(z_forget)
        keep = retained.nonzero().flatten()
        self.targets = dict(z_forget=z_forget, substitutes=subs, z_keep=pool.z[keep], keep_images=pool.images[keep])
        return {"pool_size": c.pool_size, "forgotten_latents": len(z_forget), "kept_latents": len(keep)}

    def focus_on_relevant_units(self, z_forget: torch.Tensor) -> None:
        """Restrict generator updates to the channels most relevant to the forgotten content: relevance of
        each hidden ConvTranspose layer's channels for the forgotten content's score (the oracle's logit of
        the class, or the negative feature distance to the forgotten items), over the forgotten latents."""
        from gan_unlearn.relevance import unit_relevance

        c = self.config
        layers = [m for m in self.G.modules() if isinstance(m, torch.nn.ConvTranspose2d)][:-1]
        if self.request.kind == "class":
            scorer = torch.nn.Sequential(self.G0, self.oracle)
            target = lambda out: out[:, self.request.class_id]  # noqa: E731
        else:
            centre = batched(self.feature_fn, self.forget_images, 1000, self.device).mean(0).to(self.device)
            scorer = torch.nn.Sequential(self.G0, _Features(self.feature_fn))
            target = lambda f: -(f - centre).norm(dim=1)  # noqa: E731
        g0_layers = [m for m in self.G0.modules() if isinstance(m, torch.nn.ConvTranspose2d)][:-1]
        self.focus = {}
        for layer, layer0 in zip(layers, g0_layers):
            rel = unit_relevance(scorer, layer0, z_forget.to(self.device), target, at="output")
            k = max(1, int(round(c.focus_fraction * len(rel))))
            mask = torch.zeros(len(rel), device=self.device)
            mask[rel.topk(k).indices] = 1.0
            self.focus[layer] = mask
            layer.weight.register_hook(lambda g, m=mask: g * m.view(1, -1, 1, 1))
        for module, mask in zip(_following_batchnorms(self.G, layers), self.focus.values()):
            module.weight.register_hook(lambda g, m=mask: g * m)
            module.bias.register_hook(lambda g, m=mask: g * m)

    # --- the two stages ------------------------------------------------------------------------------------
    def _pick(self, n: int, size: int) -> torch.Tensor:
        return torch.randint(n, (size,), generator=self.rng)

    def _images(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.train_set.batch(idx, self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def discriminator_loss(self, real, fake, forgotten):
        """Real retained images -> 1, generated -> 0, forgotten images -> fake (the fake-label criterion)."""
        loss = bce(self.D(real), 1.0) + bce(self.D(fake), 0.0)
        if self.uses_fake_label and self.config.lambda_u > 0:
            loss = loss + self.config.lambda_u * bce(self.D(forgotten), self.config.fake_target)
        return loss

    def discriminator_step(self) -> float:
        c = self.config
        real = self._images(self.retain_idx[self._pick(len(self.retain_idx), c.batch_size)])
        forgotten = self._images(self.forget_idx[self._pick(len(self.forget_idx), c.forget_batch)]) \
            if self.uses_fake_label else None
        z = self.G.sample_latents(c.batch_size, self.rng, self.device)
        with autocast(self.device, c.precision):
            with torch.no_grad():
                fake = self.G(z)
            loss = self.discriminator_loss(real, fake, forgotten)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.item()

    def generator_loss(self, z_fresh):
        """Adversarial loss on fresh latents + substitution (and the fake label) on forgotten latents +
        preservation of retained latents' original outputs."""
        c = self.config
        if not self.uses_substitution:  # plain adversarial step (the fine-tuning baseline)
            return c.lambda_adv * bce(self.D(self.G(z_fresh).float()), 1.0)
        t, dist = self.targets, DISTANCES[c.distance]
        use_sub = t["substitutes"] is not None and c.lambda_sub > 0
        keep_pool = c.lambda_keep > 0 and not c.keep_fresh and len(t["z_keep"]) > 0
        parts = [z_fresh]
        if use_sub:
            i_sub = self._pick(len(t["z_forget"]), c.batch_size)
            parts.append(t["z_forget"][i_sub].to(self.device))
        if keep_pool:
            i_keep = self._pick(len(t["z_keep"]), c.batch_size)
            parts.append(t["z_keep"][i_keep].to(self.device))
        chunks = list(self.G(torch.cat(parts)).float().split([len(p) for p in parts]))  # one pass (eval-mode BN)
        fresh = chunks.pop(0)
        loss = c.lambda_adv * bce(self.D(fresh), 1.0)
        if c.lambda_keep > 0 and c.keep_fresh:
            loss = loss + c.lambda_keep * self.fresh_preservation_loss(z_fresh, fresh, dist)
        if use_sub:
            out = chunks.pop(0)
            loss = loss + c.lambda_sub * dist(out, t["substitutes"][i_sub].to(self.device))
            if c.lambda_adv_forget > 0:  # forgotten latents must also pass the D that calls forgotten content fake
                loss = loss + c.lambda_adv_forget * bce(self.D(out), 1.0)
        if keep_pool:
            loss = loss + c.lambda_keep * dist(chunks.pop(0), t["keep_images"][i_keep].to(self.device))
        return loss

    def fresh_preservation_loss(self, z_fresh, out_fresh, dist):
        """Distance to the original generator's output on the fresh latents that show retained content
        (for a class request, those the oracle does not assign to the class)."""
        with torch.no_grad():
            reference = self.G0(z_fresh).float()
            keep = torch.ones(len(z_fresh), dtype=torch.bool, device=reference.device)
            if self.request.kind == "class":
                keep = self.oracle(reference).argmax(1) != self.request.class_id
        if not keep.any():
            return out_fresh.sum() * 0.0
        return dist(out_fresh[keep], reference[keep])

    def generator_step(self) -> float:
        c = self.config
        z = self.G.sample_latents(c.batch_size, self.rng, self.device)
        with frozen(self.D):  # gradients through D to the generator, none for D's weights
            with autocast(self.device, c.precision):
                loss = self.generator_loss(z)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        self.opt_g.step()
        return loss.item()

    @property
    def output_generator(self):
        """The generator that is measured and returned: the exponential moving average of the updated
        generator's weights when ``ema`` > 0 (it smooths the step-to-step noise of adversarial updates)."""
        return getattr(self, "G_ema", None) or self.G

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.config.ema <= 0:
            return
        ema, d = self.G_ema, self.config.ema
        for e, p in zip(ema.parameters(), self.G.parameters()):
            e.lerp_(p, 1 - d)

    # --- the cascade ---------------------------------------------------------------------------------------
    def run(self) -> UnlearningResult:
        c = self.config
        self.forget_images = self.train_set.batch(self.forget_idx)
        if self.request.kind == "item":
            pick = torch.randperm(len(self.held_out_set), generator=torch.Generator().manual_seed(c.seed))
            self.held_out_images = self.held_out_set.batch(pick[:c.held_out])
        before = self.forget_metric()  # measured outside the timed procedure: it is the report's baseline
        with self.timer("prepare"):
            counts = self.prepare() if self.uses_substitution else {}
            self.opt_d = make_optimizer(self.D.parameters(), c.lr_d, c.beta1, c.beta2)
            self.opt_g = make_optimizer(self.G.parameters(), c.lr_g, c.beta1, c.beta2)
            if c.ema > 0:
                self.G_ema = copy.deepcopy(self.G)
        with self.timer("discriminator"):
            for _ in range(c.d_warmup):  # lets D learn the fake label before G follows its gradient
                self.discriminator_step()
        history, reason, rounds, backoffs = [], "step budget", 0, 0
        snapshot = self._snapshot() if self.uses_substitution else None
        bar = progress(range(c.max_rounds), desc=f"unlearn ({self.name})", enabled=self.show_progress)
        for r in bar:
            with self.timer("discriminator"):
                loss_d = sum(self.discriminator_step() for _ in range(c.d_steps)) / max(c.d_steps, 1)
            with self.timer("generator"):
                loss_g = sum(self.generator_step() for _ in range(c.g_steps)) / max(c.g_steps, 1)
                self.update_ema()
            rounds = r + 1
            if rounds >= c.min_rounds and (rounds % c.check_every == 0 or rounds == c.max_rounds):
                with self.timer("checks"):
                    metric = self.forget_metric()
                    drift = self.preservation_drift()
                history.append({"round": rounds, "loss_d": round(loss_d, 4), "loss_g": round(loss_g, 4),
                                **{k: v for k, v in metric.items() if k != "satisfied"}})
                if drift is not None:
                    history[-1]["drift"] = round(drift, 4)
                bar.set_postfix({k: f"{v:.3f}" for k, v in history[-1].items() if k != "round"}, refresh=False)
                if drift is not None and drift > c.max_drift and backoffs < c.max_backoffs:
                    with self.timer("checks"):  # the guard: retained content is going, so step back
                        backoffs += 1
                        history[-1]["backoff_lr_g"] = self._back_off(snapshot, backoffs)
                    continue
                if snapshot is not None:
                    with self.timer("checks"):
                        snapshot = self._snapshot()
                if metric["satisfied"]:
                    reason = "forget metric reached"
                    break
        bar.close()
        after = self.forget_metric()
        summary = {
            "method": self.name, "request": self.request.describe(), "forget_set_size": len(self.forget_idx),
            "rounds": rounds, "backoffs": backoffs, "d_steps": c.d_warmup + rounds * c.d_steps, "g_steps": rounds * c.g_steps,
            "stopping_reason": reason, "seconds": round(self.timer.total(), 3),
            "seconds_by_phase": {k: round(v, 3) for k, v in self.timer.seconds.items()},
            "before": {k: v for k, v in before.items() if k != "satisfied"},
            "after": {k: v for k, v in after.items() if k != "satisfied"},
            "history": history, **counts, "config": asdict(c),
        }
        return UnlearningResult(self.output_generator.to(memory_format=torch.contiguous_format).cpu().eval(),
                                self.D.to(memory_format=torch.contiguous_format).cpu().eval(), summary)


class FineTune(CascadedUnlearning):
    """Baseline: continue plain GAN training on the retained data only (no fake label, no substitution)."""

    name = "finetune"
    uses_fake_label = False
    uses_substitution = False


class _Features(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _following_batchnorms(G, layers) -> list:
    """The BatchNorm right after each of ``layers`` in the generator's sequence."""
    mods = list(G.net)
    return [mods[mods.index(layer) + 1] for layer in layers]


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


UNLEARNING_METHODS = {cls.name: cls for cls in (CascadedUnlearning, FineTune)}


def unlearn(generator, discriminator, request: ForgetRequest, train_set: ImageDataset, *, method: str = "cascaded",
            config: UnlearnConfig | None = None, oracle=None, held_out: ImageDataset | None = None, device="cpu",
            show_progress: bool = False) -> UnlearningResult:
    """Remove ``request`` from a trained GAN; returns new models and a summary (inputs stay unchanged).

    ``train_set`` is the GAN's training set (forget indices point into it); ``oracle`` is required for
    class requests, ``held_out`` (real images never trained on) for item requests.
    """
    if method not in UNLEARNING_METHODS:
        raise UserError(f"unknown method {method!r}; use one of {', '.join(UNLEARNING_METHODS)}")
    return UNLEARNING_METHODS[method](generator, discriminator, request, train_set, config, oracle=oracle,
                                      held_out=held_out, device=device, show_progress=show_progress).run()
