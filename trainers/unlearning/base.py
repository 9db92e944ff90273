"""The loop every GAN unlearning method shares: rounds of a discriminator stage and a generator stage,
periodic checks of the forget metric, the drift guard, the EMA generator and timing by phase.

A method is a subclass that overrides hooks: ``prepare`` (what it needs before the rounds),
``discriminator_batch`` / ``discriminator_loss`` and ``generator_loss``. The base hooks are plain GAN
training on the retained data, which is exactly the fine-tuning baseline.

Generator and discriminator run in eval mode throughout (BatchNorm as a fixed affine map): the function
that is optimised is exactly the one that samples and scores afterwards, and batches of only forgotten
images cannot skew normalisation statistics. Methods work on copies: the models passed in never change.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import torch

from gan_unlearn.data import ImageDataset
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.heldout import held_out_split, split_record
from gan_unlearn.runtime import (autocast, batched, frozen, progress, resolve_device, resolve_precision,
                                 to_memory_format)
from gan_unlearn.streams import generator as stream
from metrics.forgetting import discriminator_logits, stream_predictions
from metrics.membership import auc, nearest_sample_distances

from ..gan import make_optimizer
from ..losses import bce
from .options import UnlearnConfig

CALIBRATION_IMAGES = 1000  # retained training images that place D's threshold (calibrate_d): 1/1000 of a share


@dataclass
class UnlearningResult:
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    summary: dict = field(default_factory=dict)


class PhaseTimer:
    """Wall time per phase; synchronises CUDA so that asynchronous kernels are charged to their phase."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, {}
        self.open: str | None = None  # the phase being timed now, if any (what a test checks work is charged to)

    def __call__(self, phase: str):
        timer = self

        class _Phase:
            def __enter__(self):
                self.t0, timer.open = time.perf_counter(), phase

            def __exit__(self, *exc):
                if timer.device.type == "cuda":
                    torch.cuda.synchronize(timer.device)
                timer.seconds[phase] = timer.seconds.get(phase, 0.0) + time.perf_counter() - self.t0
                timer.open = None

        return _Phase()

    def total(self) -> float:
        return sum(self.seconds.values())


@torch.no_grad()
def output_layer(model: torch.nn.Module, example: torch.Tensor, needed_by: str = "calibrate_d") -> torch.nn.Module:
    """The Conv2d or Linear layer whose output, only reshaped, is ``model``'s output (its logits), found by
    running ``example`` through it: the last such layer to run, not the last registered, and checked, so that
    a bias added there shifts every logit by exactly that much. A ``UserError`` when there is none (a final
    activation, or no bias), before any work is done."""
    ran = []  # the last layer to run and a copy of its output (a later in-place op must not change the copy)

    def record(module, inputs, output):
        ran[:] = [(module, output.detach().clone())]

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        out = model(example)
    finally:
        for h in hooks:
            h.remove()
    if ran and isinstance(out, torch.Tensor):
        layer, last = ran[0]
        if layer.bias is not None and last.numel() == out.numel() and torch.equal(last.reshape(out.shape), out):
            return layer
    raise UserError(f"{needed_by} needs a discriminator whose output is its last convolution's or linear layer's, "
                    f"with a bias; set {needed_by}=false")


def share_plateaued(readings: list[tuple[float, int]], checks: int, z: float) -> bool:
    """Whether the class share, read as ``(share, samples)`` at each check, has not fallen over the last ``checks``
    checks (``checks`` + 1 readings) by more than ``z`` binomial standard errors of the difference, counted as if
    the readings were independent: the generator has reached its floor. The checks read the same latents each
    time, so the difference is less noisy than that; the threshold is a practical one (on 2,000 samples a fall
    of one point from 4% counts as none). On MNIST a retrained GAN still shows 2.5% of its samples as the class
    to the oracle (its false positives), and the cascade reached that level by round 110-130 of 200, then
    spent the rest of its budget at it."""
    if checks <= 0 or len(readings) <= checks:
        return False
    (then, n0), (now, n1) = readings[-1 - checks], readings[-1]
    se = (then * (1 - then) / n0 + now * (1 - now) / n1) ** 0.5
    return then - now <= z * se


def class_plateaued(memberships: list[torch.Tensor], checks: int, z: float) -> bool:
    """Whether the class has stopped losing latents over the last ``checks`` checks, read latent by latent:
    every check classifies the same latents, so the change of the share is the latents that left the class
    minus those that entered it. Under no change each of the ``b + c`` latents that switched went either way
    with probability 1/2 (a sign test, McNemar's): a fall counts when ``b - c`` exceeds ``z`` standard errors,
    ``z * sqrt(b + c)``. The share read as two independent binomials (``share_plateaued``) needs 1.4 points
    at 5% on 2,000 latents; here a fall of 30 latents against 5 back (1.25 points) counts, and 40 that
    switched either way in equal numbers do not."""
    if checks <= 0 or len(memberships) <= checks:
        return False
    then, now = memberships[-1 - checks], memberships[-1]
    left, entered = int((then & ~now).sum()), int((~then & now).sum())
    return left - entered <= z * (left + entered) ** 0.5


class GANUnlearningMethod:
    """Plain GAN training on the retained data in rounds, with the shared stopping rule and guard."""

    name = "base"

    def __init__(self, generator, discriminator, request: ForgetRequest, train_set: ImageDataset,
                 config: UnlearnConfig | None = None, *, oracle=None, held_out: ImageDataset | None = None,
                 device="cpu", show_progress: bool = True):
        self.config = c = (config or UnlearnConfig()).validate()
        self.device = resolve_device(device)
        self.precision, self.precision_reason = resolve_precision(c.precision, self.device)
        self.request, self.train_set = request, train_set
        self.forget_idx, self.retain_idx = request.split(train_set.labels, train_set.num_classes)
        if request.kind == "class" and oracle is None:
            raise UserError("class unlearning needs an oracle classifier (--oracle) to find the class's latents")
        if request.kind == "item" and held_out is None:
            raise UserError("item unlearning needs held-out real images (the test split) for its stopping rule")
        cl = c.channels_last
        self.G0 = to_memory_format(copy.deepcopy(generator).to(self.device).eval(), cl)  # frozen reference
        self.G = to_memory_format(copy.deepcopy(generator).to(self.device).eval(), cl)
        self.D = to_memory_format(copy.deepcopy(discriminator).to(self.device).eval(), cl)
        self.G_ema = copy.deepcopy(self.G) if c.training.ema > 0 else None
        t = c.training
        self.lr_g, self.lr_d = t.rates(request.kind)  # auto rates are the request kind's
        self.opt_d = make_optimizer(self.D.parameters(), self.lr_d, t.beta1, t.beta2)
        self.opt_g = make_optimizer(self.G.parameters(), self.lr_g, t.beta1, t.beta2)
        self.oracle = oracle.to(self.device).eval() if oracle is not None else None
        self.show_progress = show_progress
        self.rng = stream(c.seed, "unlearn.steps")
        self.timer = PhaseTimer(self.device)
        self.forget_images = train_set.batch(self.forget_idx)
        self.held_out_images, self.match_images, self.held_out_record = None, None, None
        self.calibration_images, self.threshold_logit = None, None  # D's threshold reset (items, calibrate_d)
        self.d_output_layer: torch.nn.Module | None = None  # its bias carries the reset; a finish may train it alone
        if request.kind == "item":  # only the stopping part of the held-out split: reports use the other part
            split = held_out_split(len(held_out))
            check, match = self.held_out_parts(split["stop"])
            self.held_out_images = held_out.batch(check)
            if match is not None:
                self.match_images = self._as_input(held_out.batch(match))
            self.held_out_record = split_record(split)
            if c.stopping.calibrate_d:  # retained training images that set D's decision threshold (own stream)
                pick = torch.randperm(len(self.retain_idx), generator=stream(c.seed, "unlearn.d_calibration"))
                self.calibration_images = train_set.batch(self.retain_idx[pick[:CALIBRATION_IMAGES]])
        needed_by = self.output_layer_needed_by()
        if needed_by is not None:  # found (or refused) now, before any work
            self.d_output_layer = output_layer(self.D, self._as_input(self.held_out_images[:2]), needed_by)
        self.targets: dict | None = None  # what a method trains on (set by its ``prepare``)
        self.guard: dict | None = None  # retained latents and G0's images of them (set before ``prepare``)
        self.reference: dict | None = None  # the original models' stopping-rule readings

    # --- hooks ----------------------------------------------------------------------------------------------
    def output_layer_needed_by(self) -> str | None:
        """The option that needs D's output layer (``calibrate_d`` shifts its bias on item requests), or None."""
        return "calibrate_d" if self.request.kind == "item" and self.config.stopping.calibrate_d else None

    def start_readings(self, no_rounds: bool) -> None:
        """Work before D's first reading, once the gate has said whether rounds run (a method whose D cannot
        change before its finish may read D's fixed sets once, here)."""

    def prepare(self) -> dict:
        """Work before the rounds (timed as "prepare"); returns counts for the summary."""
        return {}

    def discriminator_batch(self) -> dict:
        """Real images for one discriminator step (drawn before its latents)."""
        t = self.config.training
        return {"real": self._images(self.retain_idx[self._pick(len(self.retain_idx), t.batch_size)])}

    def discriminator_loss(self, batch: dict, fake: torch.Tensor) -> torch.Tensor:
        """Real retained images -> 1, generated -> 0."""
        return bce(self.D(batch["real"]), 1.0) + bce(self.D(fake), 0.0)

    def generator_loss(self, z_fresh: torch.Tensor) -> torch.Tensor:
        """The adversarial loss on fresh latents."""
        return self.config.training.lambda_adv * bce(self.D(self.G(z_fresh).float()), 1.0)

    adversarial = True  # whether the generator stage still uses its adversarial losses (``adversarial_off_after``)

    def drop_adversarial(self) -> bool:
        """Go on without the adversarial losses (``adversarial_off_after``); returns whether the method can (plain
        fine-tuning is nothing but its adversarial loss, so it cannot)."""
        return False

    def finish(self) -> dict | None:
        """Work after the rounds, before the final reading (timed as "finish"); returns its account for the
        summary, or None when there is none."""
        return None

    def generator_gate(self) -> dict | None:
        """Whether the rounds run, read before them (``{"nn_auc", "rounds"}``), or None: every round runs. Only
        the cascade reads one (``item_generator_gate``); fine-tuning is the baseline that always trains."""
        return None

    def held_out_parts(self, stop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Indices of the stopping half's images that the item check reads, and of those a method trains on
        (None: none)."""
        return stop[:self.config.stopping.held_out], None

    # --- features, stopping and the guard -------------------------------------------------------------------
    def feature_fn(self, images: torch.Tensor) -> torch.Tensor:
        """Feature space for nearest neighbours: the oracle's hidden layer, or pixels without an oracle."""
        return self.oracle.features(images) if self.oracle is not None else images.flatten(1)

    def forget_metric(self, samples: int | None = None, generator: bool = True) -> dict:
        """The stopping rule's measurement on the current models (``samples`` generated images, by default
        ``check_samples``), with whether it is satisfied and, if not satisfiable, why the generator (or
        discriminator) counts as degenerate. ``generator=False`` (an item request only) reads D alone: where no
        round will run, the generator's readings are the original's and nothing compares against them."""
        c, stop = self.config, self.config.stopping
        out, degenerate = {}, []
        generator = generator or self.request.kind == "class"
        if self.oracle is not None and generator:
            preds = stream_predictions(self.output_generator, self.oracle, samples or stop.check_samples, seed=c.seed,
                                       device=self.device, precision=self.precision, stream="unlearn.check")
            hist = torch.bincount(preds, minlength=self.oracle.num_classes).double()
            shares = hist / hist.sum()
            if self.request.kind == "class":
                out["class_share"] = shares[self.request.class_id].item()
                out["in_class"] = (preds == self.request.class_id).cpu()  # the same latents at every check
            if self.reference is not None:
                lost = [k for k, (now, before) in enumerate(zip(shares.tolist(), self.reference["shares"]))
                        if not (self.request.kind == "class" and k == self.request.class_id)
                        and now < stop.min_class_keep * before]
                if lost:
                    degenerate.append(f"classes {lost} below {stop.min_class_keep:g}x their original share")
            out["shares"] = shares
        if self.request.kind == "item":
            out.update(self.d_reading())
            if out.get("d_degenerate"):
                degenerate.append(out.pop("d_degenerate"))
            reached = out["d_reached"]
            if stop.item_generator_rule and generator:
                out["nn_auc"] = self.generator_membership_auc(samples or stop.check_samples)
                reached = reached and out["nn_auc"] <= 0.5 + stop.auc_margin
        else:
            reached = out["class_share"] <= stop.forget_target
        out["degenerate"] = "; ".join(degenerate) or None
        out["satisfied"] = reached and not degenerate
        return out

    def d_reading(self) -> dict:
        """D's part of an item request's check: its scores of the items and of the check's held-out images (with
        the threshold shift, if calibrated), their AUC, its acceptance of the held-out images, whether its rule
        holds (``d_reached``) and, if it lost too much acceptance, why (``d_degenerate``)."""
        stop, out = self.config.stopping, {}
        shift = self.threshold_shift()
        forgotten, held = (torch.sigmoid(self.d_logits(x) + shift) for x in (self.forget_images, self.held_out_images))
        if self.calibration_images is not None:
            out["d_threshold_shift"] = round(shift, 4)
        out.update(d_score_forgotten=forgotten.mean().item(), d_score_held_out=held.mean().item(),
                   d_auc=auc(forgotten, held), d_real_accuracy=(held > 0.5).float().mean().item())
        if self.reference is not None and \
                out["d_real_accuracy"] < self.reference["d_real_accuracy"] - stop.max_real_accuracy_drop:
            out["d_degenerate"] = (f"D accepts {100 * out['d_real_accuracy']:.0f}% of held-out real images "
                                   f"(originally {100 * self.reference['d_real_accuracy']:.0f}%)")
        out["d_reached"] = self.d_rule_holds(out)
        return out

    def d_rule_holds(self, reading: dict) -> bool:
        """Whether a reading of D meets ``item_rule`` (a method may hold D to a rule of its own)."""
        stop = self.config.stopping
        if stop.item_rule == "auc":  # ranks: a few held-out outliers cannot lift the held-out mean past the items
            return reading["d_auc"] <= 0.5 + stop.auc_margin
        return reading["d_score_forgotten"] <= reading["d_score_held_out"]

    def d_logits(self, images: torch.Tensor) -> torch.Tensor:
        """D's logits of one of the fixed sets its readings use (the items, the check's held-out images, the
        calibration images); a method that trains D's output layer alone reads them there."""
        return discriminator_logits(self.D, images, self.device, self.precision)

    def _calibration_median(self) -> float:
        return self.d_logits(self.calibration_images).median().item()

    def set_threshold_reference(self) -> None:
        """The original D's median logit on the calibration images: where its scores of retained training
        images sit. A median, not the quantile at the original's threshold: a D that memorised its training
        set accepts every one of them, and the lowest logit of a thousand is no anchor."""
        if self.calibration_images is not None:
            self.threshold_logit = self._calibration_median()

    def threshold_shift(self) -> float:
        """What to add to D's logits so that its scores of retained training images sit where the original's
        did (their median): 0 for the original D, and exactly undone for any D whose logits only moved
        together. Any continued GAN training moves them (fine-tuning on retained data alone moved D's
        acceptance of held-out real images from 59% to 25% on a GAN trained 300 epochs on 1,024 MNIST
        images), which says nothing about what D learnt of the forgotten items; a shift keeps every rank."""
        if self.threshold_logit is None:
            return 0.0
        return self.threshold_logit - self._calibration_median()

    @torch.no_grad()
    def reset_threshold(self) -> float:
        """Add the threshold shift to D's output bias (its last layer's), so the D handed back reads as the
        checks read it; returns the shift."""
        shift = self.threshold_shift()
        self.d_output_layer.bias += shift
        return shift

    @torch.no_grad()
    def check_nn_samples(self, samples: int) -> torch.Tensor:
        """The output generator's images (float32, on the CPU) of the first ``samples`` latents of the checks'
        nearest-sample stream: the same latents at every check."""
        z = self.G0.sample_latents(samples, stream(self.config.seed, "unlearn.check.nn"))
        return batched(lambda v: self.output_generator(v).float(), z, 500, self.device, self.precision)

    @torch.no_grad()
    def generator_membership_auc(self, samples: int | torch.Tensor, pixels: bool = False) -> float:
        """Membership AUC of the output generator's nearest-sample distances: forgotten items against the check's
        held-out images, in the method's feature space (or in pixels), over ``samples`` images of its own latent
        stream (``check_nn_samples``; or over the images given). 1/2 when the generator comes as close to unseen
        images as to the items (retraining's level); the evaluation reads the same quantity on other latents,
        the other held-out half and the judge's features."""
        feature_fn = (lambda x: x.flatten(1)) if pixels else self.feature_fn
        images = self.check_nn_samples(samples) if isinstance(samples, int) else samples
        features = lambda x: batched(feature_fn, x, 1000, self.device, self.precision)  # noqa: E731
        generated = features(images)
        d_items = nearest_sample_distances(features(self.forget_images), generated)
        d_held = nearest_sample_distances(features(self.held_out_images), generated)
        return auc(-d_items, -d_held)

    def checked_metric(self) -> dict:
        """The reading at a check: with ``quick_check``, a small reading first, kept (marked ``quick``) when it
        shows no lost class and the class share lies more than three binomial standard errors above the target
        (an item request's rule compares D's scores on fixed images, so there only the share histogram and the
        generator rule's samples are smaller); otherwise the full reading. Checks were a third of the cascade's
        time on a 2-core CPU."""
        stop = self.config.stopping
        n = stop.quick_check
        if self.oracle is None or not 0 < n < stop.check_samples:
            return self.forget_metric()
        metric = self.forget_metric(n)
        if metric["degenerate"] is None and not metric["satisfied"]:
            if self.request.kind == "item":
                return {**metric, "quick": True}
            p = max(metric["class_share"], stop.forget_target)
            if metric["class_share"] - 3 * (p * (1 - p) / n) ** 0.5 > stop.forget_target:
                return {**metric, "quick": True}
        return self.forget_metric()

    def plateaued(self, readings: list[tuple]) -> bool:
        """``plateau_checks`` by ``plateau_test``, on the ``(share, samples, in_class)`` full readings since the
        last step back."""
        stop = self.config.stopping
        if stop.plateau_test == "paired":
            return class_plateaued([r[2] for r in readings], stop.plateau_checks, stop.plateau_z)
        return share_plateaued([r[:2] for r in readings], stop.plateau_checks, stop.plateau_z)

    @staticmethod
    def reported(metric: dict) -> dict:
        """A metric as the summary records it (no tensors, no verdict)."""
        return {k: v for k, v in metric.items() if k not in ("satisfied", "shares", "d_reached", "in_class")}

    @torch.no_grad()
    def prepare_guard(self, count: int = 256) -> None:
        """Retained latents (their own stream) and the original generator's images of them: the drift guard
        watches how far the output generator (and, with ``watch_trained``, the trained one) moves on them, for
        every method."""
        c = self.config
        z = self.G0.sample_latents(count, stream(c.seed, "unlearn.guard"))
        images = batched(self.G0, z, 256, self.device, self.precision)
        if self.request.kind == "class":
            keep = batched(self.oracle, images, 256, self.device, self.precision).argmax(1) != self.request.class_id
            z, images = z[keep], images[keep]
        spread = self.data_spread()
        self.guard = {"z": z, "images": images, "spread": spread, "limit": self.drift_limit(spread)}

    def data_spread(self, count: int = 2048) -> float | None:
        """Mean pixel distance between two different retained training images (``count`` random pairs, their
        own stream): the data's own scale, about 0.33 on MNIST and 0.57 on CIFAR-10. Real images, not the
        original generator's, so that a young generator that barely varies does not shrink the guard's limit.
        2,048 pairs put the estimate's standard error near 0.5%, well below the seeds' differences in drift."""
        n = len(self.retain_idx)
        if n < 2:
            return None
        g = stream(self.config.seed, "unlearn.guard.spread")
        first = torch.randint(n, (count,), generator=g)
        second = (first + torch.randint(1, n, (count,), generator=g)) % n  # never the same image twice
        a = self.train_set.batch(self.retain_idx[first]).float()
        b = self.train_set.batch(self.retain_idx[second]).float()
        return (a - b).abs().mean().item()

    def drift_limit(self, spread: float | None) -> float:
        """The drift above which the guard steps back: the larger of the absolute ``max_drift`` (0.15, set on
        MNIST) and ``relative_drift`` times the data's spread, so that one default serves MNIST (0.45 x 0.33,
        the same 0.15) and CIFAR-10 (0.45 x 0.57, about 0.26), where the cascade's drift settles near 0.18
        at any learning rate. Raising ``max_drift`` always loosens the guard; ``relative_drift`` 0 leaves it
        alone, as does a retained set too small to measure a spread."""
        g = self.config.guard
        return max(g.max_drift, g.relative_drift * (spread or 0.0))

    def health_problem(self, metric: dict, drift: float | None, trained_drift: float | None = None) -> str | None:
        """Why the current state must not be kept (degenerate, or the output generator or, when given, the
        generator being trained drifted past the guard's limit), or None."""
        if metric["degenerate"] is not None:
            return metric["degenerate"]
        limit = self.guard["limit"] if self.guard is not None else None
        for what, value in (("drift", drift), ("trained generator's drift", trained_drift)):
            if value is not None and limit is not None and value > limit:
                return f"{what} {value:.3f} above {limit:.3f}"
        return None

    @torch.no_grad()
    def preservation_drift(self, generator=None) -> float | None:
        """Mean absolute pixel change of ``generator`` (by default the output generator) on the guard's retained
        latents (images in [-1, 1]). Small while retained content is kept (about 0.05 to 0.1 on MNIST); a
        collapse (for example to blank images, which a too-large learning rate on a young GAN causes) gives 0.3
        or more."""
        if self.guard is None or len(self.guard["z"]) == 0:
            return None
        z, ref = self.guard["z"].to(self.device), self.guard["images"].to(self.device)
        with autocast(self.device, self.precision):
            out = (generator or self.output_generator)(z).float()
        return (out - ref.float()).abs().mean().item()

    def trained_drift(self) -> float | None:
        """The drift of the generator being trained, when the output is its average (``ema``) and the guard
        watches it (``watch_trained``). The average lags: on the memorising MNIST GAN the trained generator
        had drifted 0.32-0.35 within the first 10 rounds while its average read 0.10-0.12, and a snapshot of
        that state, kept as healthy, carried the broken generator into every later step back."""
        if self.G_ema is None or not self.config.guard.watch_trained:
            return None
        return self.preservation_drift(self.G)

    def _models(self) -> dict:
        models = {"G": self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d}
        if self.G_ema is not None:
            models["G_ema"] = self.G_ema
        return models

    def _snapshot(self, names: tuple | None = None) -> dict:
        """Copies of the models' and optimisers' states (only ``names``, e.g. ``("D", "opt_d")``, if given);
        ``_load`` restores exactly what a snapshot holds."""
        return {k: copy.deepcopy(m.state_dict()) for k, m in self._models().items() if names is None or k in names}

    def _load(self, snapshot: dict) -> None:
        models = self._models()
        for k, state in snapshot.items():
            models[k].load_state_dict(state)

    def _back_off(self, snapshot: dict, backoffs: int) -> float:
        """Return to the last state that kept retained content and halve both learning rates again."""
        self._load(snapshot)
        scale = 0.5 ** backoffs
        for opt, lr in ((self.opt_g, self.lr_g), (self.opt_d, self.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        return self.opt_g.param_groups[0]["lr"]

    # --- the two stages -------------------------------------------------------------------------------------
    def _pick(self, n: int, size: int) -> torch.Tensor:
        return torch.randint(n, (size,), generator=self.rng)

    def _images(self, idx: torch.Tensor) -> torch.Tensor:
        return self._as_input(self.train_set.batch(idx, self.device))

    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def discriminator_step(self, batch: dict | None = None, loss_fn=None, generator=None) -> torch.Tensor:
        """One D step: the rounds' batch, loss and trained generator unless given (a finish passes its own).
        Returns the loss as a detached tensor: reading it (``.item()``) waits for a GPU to finish, so the rounds
        read it only at a check."""
        c = self.config
        batch = self.discriminator_batch() if batch is None else batch
        z = self.G.sample_latents(c.training.batch_size, self.rng, self.device)
        with autocast(self.device, self.precision):
            with torch.no_grad():
                fake = (generator or self.G)(z)
            loss = (loss_fn or self.discriminator_loss)(batch, fake)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.detach()

    def generator_step(self) -> torch.Tensor:
        """One generator step; the loss as a detached tensor (see ``discriminator_step``)."""
        c = self.config
        z = self.G.sample_latents(c.training.batch_size, self.rng, self.device)
        with frozen(self.D):  # gradients through D to the generator, none for D's weights
            with autocast(self.device, self.precision):
                loss = self.generator_loss(z)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        self.opt_g.step()
        return loss.detach()

    @property
    def output_generator(self):
        """The generator that is measured and returned: the exponential moving average of the updated
        generator's weights when ``ema`` > 0 (it smooths the step-to-step noise of adversarial updates)."""
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.G_ema is None:
            return
        d = self.config.training.ema
        # one multi-tensor kernel for all weights, not one launch per weight (the same arithmetic as lerp_)
        torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1 - d)

    # --- the rounds -----------------------------------------------------------------------------------------
    def run(self) -> UnlearningResult:
        c, t, stop, guard = self.config, self.config.training, self.config.stopping, self.config.guard
        with self.timer("checks"):  # the readings the procedure compares against are part of its time
            gate = self.generator_gate()
            no_rounds = gate is not None and not gate["rounds"]
            self.start_readings(no_rounds)
            self.set_threshold_reference()
            before = self.forget_metric(generator=not no_rounds)
        self.reference = {"shares": before.get("shares", torch.empty(0)).tolist(),
                          "d_real_accuracy": before.get("d_real_accuracy")}
        counts = {}
        if not no_rounds:  # without rounds the generator handed back is the original: nothing to guard
            with self.timer("prepare"):
                self.prepare_guard()
                counts = self.prepare()
        snapshot, healthy_round, snapshot_paused = self._snapshot(), 0, False  # the original: healthy by definition
        warmup = 0 if no_rounds else t.d_warmup
        with self.timer("discriminator"):
            for _ in range(warmup):  # lets D learn the fake label before G follows its gradient
                self.discriminator_step()
        history, reason, rounds, backoffs, d_paused, d_steps = [], "step budget", 0, 0, False, warmup
        if no_rounds:
            reason = (f"no rounds: the original generator comes no closer to the items than to held-out images "
                      f"(nearest-sample AUC {gate['nn_auc']:.3f})")
        shares: list[tuple] = []  # class requests: (share, samples, in_class) at each full check since the last step back
        plateaued, losses = False, 0  # losses: step backs for lost classes
        bar = progress(range(0 if no_rounds else stop.max_rounds), desc=f"unlearn ({self.name})",
                       enabled=self.show_progress)
        for r in bar:
            with self.timer("discriminator"):
                steps = 0 if d_paused else t.d_steps
                loss_d = sum(self.discriminator_step() for _ in range(steps)) / steps if steps else None
                d_steps += steps
            with self.timer("generator"):
                loss_g = sum(self.generator_step() for _ in range(t.g_steps)) / max(t.g_steps, 1)
                self.update_ema()
            rounds = r + 1
            if rounds >= stop.min_rounds and (rounds % stop.check_every == 0 or rounds == stop.max_rounds):
                with self.timer("checks"):
                    metric = self.checked_metric()
                    drift, trained = self.preservation_drift(), self.trained_drift()
                history.append({"round": rounds, "loss_d": None if loss_d is None else round(loss_d.item(), 4),
                                "loss_g": round(loss_g.item(), 4),
                                **self.reported(metric)})
                if drift is not None:
                    history[-1]["drift"] = round(drift, 4)
                if trained is not None:
                    history[-1]["trained_drift"] = round(trained, 4)
                bar.set_postfix({k: f"{v:.3f}" for k, v in history[-1].items()
                                 if k != "round" and isinstance(v, float)}, refresh=False)
                unhealthy = self.health_problem(metric, drift, trained) is not None
                if unhealthy and backoffs < guard.max_backoffs:
                    with self.timer("checks"):  # the guard: retained content is going, so step back
                        backoffs += 1
                        history[-1]["backoff_lr_g"] = self._back_off(snapshot, backoffs)
                    d_paused = snapshot_paused  # the restored D: paused if it had met its rule when it was kept
                    if self.request.kind == "class" and metric["degenerate"] is not None:
                        losses += 1
                        if losses == guard.adversarial_off_after and self.drop_adversarial():
                            history[-1]["adversarial_off"] = True
                    d_paused = d_paused or not self.adversarial
                    shares.clear()  # a step back restores an earlier state: the fall is measured anew
                    continue
                if stop.item_generator_rule and metric.get("d_reached") and not d_paused:
                    d_paused = True  # D's rule holds: further D steps would push the items below held-out images
                    history[-1]["d_paused"] = True
                if not unhealthy:
                    with self.timer("checks"):
                        snapshot, healthy_round, snapshot_paused = self._snapshot(), rounds, d_paused
                if metric["satisfied"]:
                    reason = "forget metric reached"
                    break
                # full readings only: a quick one is kept only far above the target, and its wide error would
                # let a falling share pass for a plateau
                if self.request.kind == "class" and stop.plateau_checks > 0 and not metric.get("quick"):
                    shares.append((metric["class_share"], stop.check_samples, metric["in_class"]))
                    if self.plateaued(shares):
                        then = shares[-1 - stop.plateau_checks][0]
                        reason = (f"class share stopped falling: {100 * then:.2f}% {stop.plateau_checks} checks "
                                  f"before, {100 * metric['class_share']:.2f}% now")
                        plateaued = True
                        break
        bar.close()
        if no_rounds:  # the models are the original's: the reading before is theirs
            after = before
        else:
            with self.timer("checks"):  # it decides the step back below
                after = self.forget_metric()
        restored = None
        if history and "backoff_lr_g" in history[-1]:  # the last check stepped back: say so
            restored = {"round": healthy_round, "why": "the guard stepped back at the last check"}
        # what is returned is the output generator, so its drift alone decides; the trained generator's drift
        # only steers the steps back (with ``ema`` the two differ, and the average is what samples)
        problem = self.health_problem(after, self.preservation_drift())
        if problem is not None:
            restored = {"round": healthy_round, "why": problem}
            self._load(snapshot)  # hand back the last state that passed the guard, never a degenerate one
            after = self.forget_metric()
            reason += f"; degenerate at the end ({restored['why']}), returned the state of round {healthy_round}"
        with self.timer("finish"):  # on the state handed back, after any step back to a healthy one
            finished = self.finish()
        if finished is not None:  # the report's reading of what is handed back, outside the time (a run without
            # rounds always has a finish: the gate reads only where there is one)
            after = self.forget_metric()
        with self.timer("finish"):
            shift = self.reset_threshold() if self.threshold_logit is not None else None
        summary = {
            "method": self.name, "request": self.request.describe(), "forget_set_size": len(self.forget_idx),
            "rounds": rounds, "backoffs": backoffs, "d_steps": d_steps,
            "g_steps": rounds * t.g_steps, "stopping_reason": reason, "forgotten": bool(after["satisfied"]),
            "plateaued": plateaued, "finish": finished, "generator_gate": gate, "adversarial_off": not self.adversarial,
            "restored_healthy_state": restored, "seconds": round(self.timer.total(), 3),
            "seconds_by_phase": {k: round(v, 3) for k, v in self.timer.seconds.items()},
            "before": self.reported(before), "after": self.reported(after),
            "held_out_split": self.held_out_record, "history": history, **counts, "config": asdict(c),
            "drift_limit": self.guard and self.guard["limit"], "guard_spread": self.guard and self.guard["spread"],
            "d_threshold_shift": None if shift is None else round(shift, 4),
            "rates": {"lr_g": self.lr_g, "lr_d": self.lr_d},
            "runtime": {"precision": self.precision, "precision_reason": self.precision_reason},
        }
        return UnlearningResult(self.output_generator.to(memory_format=torch.contiguous_format).cpu().eval(),
                                self.D.to(memory_format=torch.contiguous_format).cpu().eval(), summary)
