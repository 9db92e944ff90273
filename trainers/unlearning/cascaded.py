"""Cascaded unlearning (SPEC section 2): the discriminator stage labels forgotten images fake, the generator
stage sends forgotten latents to nearby retained samples (substitution) while the adversarial loss keeps
samples realistic and a preservation loss keeps retained latents where they were."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from gan_unlearn.errors import UserError
from gan_unlearn.relevance import unit_relevance
from gan_unlearn.runtime import batched
from gan_unlearn.streams import generator as stream

from ..latents import (ForgetRegion, LatentPool, class_forget_mask, class_threshold_for, invert,
                       item_forget_latents, substitutes)
from ..losses import bce, rank_matched_bce, rank_matched_logits
from .base import GANUnlearningMethod
from .output_layer import OutputLayerInputs

D_STATE = ("D", "opt_d")  # what the finish trains, and so what it keeps and restores
FINISH_HEAD_POOL = 512  # held-out images to match, retained images and samples per set of item_d_finish_head

DISTANCE_FUNCTIONS = {"l2": F.mse_loss, "l1": F.l1_loss}
MATCHED_D_LOSSES = {"held-out": rank_matched_bce, "held-out-logits": rank_matched_logits}  # by item_d_target


class CascadedUnlearning(GANUnlearningMethod):
    """Fake label for forgotten images + substitution of forgotten latents (the method)."""

    name = "cascaded"
    region: ForgetRegion | None = None  # set by ``prepare`` with ``fresh`` substitution
    finished = False  # set once D's finish has run: its rule is D's from then on (``d_rule_holds``)
    head: OutputLayerInputs | None = None  # during a finish with ``item_d_finish_head``: the sets and pools read once
    gate_samples: torch.Tensor | None = None  # the gate's images of the original generator, when no rounds follow
    samples_from: str | None = None  # whose images the output-layer finish called fake: the gate's or its own

    @property
    def finishes_on_output_layer(self) -> bool:
        """Whether this run has a finish of D (an item request, ``item_d_finish`` > 0) that starts on D's output
        layer alone (``item_d_finish_head``)."""
        k = self.config.cascade
        return self.request.kind == "item" and k.item_d_finish > 0 and k.item_d_finish_head

    def start_readings(self, no_rounds: bool) -> None:
        """Without rounds, D is the original until its finish: where the finish trains the output layer alone,
        the layer's inputs read now serve every reading of the run (the threshold's reference, the reading before,
        the finish's), instead of the whole D reading the same sets again for each."""
        if no_rounds and self.finishes_on_output_layer:
            self.read_output_layer_inputs()

    def output_layer_needed_by(self) -> str | None:
        """``calibrate_d``'s bias, or ``item_d_finish_head``, which trains D's output layer alone."""
        return super().output_layer_needed_by() or ("item_d_finish_head" if self.finishes_on_output_layer else None)

    def prepare(self) -> dict:
        """Forgotten latents, substitutes and preservation targets; returns counts for the summary."""
        c, s = self.config, self.config.substitution
        pool_size = self.pool_size()
        pool = LatentPool.draw(self.G0, pool_size, self.feature_fn, c.seed, self.device, self.precision)
        if self.request.kind == "class":
            threshold = class_threshold_for(pool, self.oracle, self.request.class_id, s.class_threshold,
                                            s.class_fallback)
            forgotten, retained = class_forget_mask(pool, self.oracle, self.request.class_id, threshold)
            z_forget, forget_feats = pool.z[forgotten], pool.features[forgotten]
        else:
            item_feats = batched(self.feature_fn, self.forget_images, 1000, self.device, self.precision)
            idx, items, retained = item_forget_latents(pool, item_feats, s.item_neighbours)
            z_forget, forget_feats = pool.z[idx], pool.features[idx]
            if s.invert_steps > 0:
                z_forget = invert(self.G0, z_forget, self.forget_images[items], s.invert_steps, s.invert_lr,
                                  self.device)
                forget_feats = batched(lambda z: self.feature_fn(self.G0(z)), z_forget, 1000, self.device,
                                       self.precision)
        real, real_feats = None, None
        if s.kind == "nearest-real":
            pick = self.retain_idx[torch.randperm(len(self.retain_idx), generator=self.rng)[:s.target_pool]]
            real = self.train_set.batch(pick)
            real_feats = batched(self.feature_fn, real, 1000, self.device, self.precision)
        # a generator that never shows the class leaves nothing to substitute; the fake label still applies
        subs = substitutes(s.kind, pool, retained, z_forget, forget_feats, real, real_feats) if len(z_forget) else None
        if s.fresh and s.kind != "none":
            self.region = ForgetRegion.for_class(pool, retained, self.oracle, self.request.class_id, threshold) \
                if self.request.kind == "class" else ForgetRegion.for_items(pool, retained, item_feats, s.item_neighbours)
            self.region.real_images, self.region.real_features = real, real_feats
        if c.cascade.focus_fraction > 0:
            self.focus_on_relevant_units(z_forget)
        keep = retained.nonzero().flatten()
        self.targets = dict(z_forget=z_forget, substitutes=subs, z_keep=pool.z[keep], keep_images=pool.images[keep])
        counts = {"pool_size": pool_size, "forgotten_latents": len(z_forget), "kept_latents": len(keep)}
        if self.request.kind == "class":
            counts["class_threshold_used"] = threshold
        return counts

    def pool_size(self) -> int:
        """Latents drawn: ``pool_size``, and for items at least four times the forgotten latents
        (``item_neighbours`` per item), so that forgotten latents stay a quarter of the pool at most and every
        one keeps retained neighbours to be substituted with. 4,096 latents serve up to 256 items at 4
        neighbours; 1,024 items would otherwise claim the whole pool."""
        s = self.config.substitution
        if self.request.kind != "item":
            return s.pool_size
        return max(s.pool_size, 4 * s.item_neighbours * len(self.forget_idx))

    def focus_on_relevant_units(self, z_forget: torch.Tensor) -> None:
        """Restrict generator updates to the channels most relevant to the forgotten content: relevance of
        each hidden ConvTranspose layer's channels for the forgotten content's score (the oracle's logit of
        the class, or the negative feature distance to the forgotten items), over the forgotten latents."""
        layers = [m for m in self.G.modules() if isinstance(m, torch.nn.ConvTranspose2d)][:-1]
        if self.request.kind == "class":
            scorer = torch.nn.Sequential(self.G0, self.oracle)
            target = lambda out: out[:, self.request.class_id]  # noqa: E731
        else:
            centre = batched(self.feature_fn, self.forget_images, 1000, self.device).mean(0).to(self.device)
            scorer = torch.nn.Sequential(self.G0, _Features(self.feature_fn))
            target = lambda f: -(f - centre).norm(dim=1)  # noqa: E731
        g0_layers = [m for m in self.G0.modules() if isinstance(m, torch.nn.ConvTranspose2d)][:-1]
        masks = []
        for layer, layer0 in zip(layers, g0_layers):
            rel = unit_relevance(scorer, layer0, z_forget.to(self.device), target, at="output")
            k = max(1, int(round(self.config.cascade.focus_fraction * len(rel))))
            mask = torch.zeros(len(rel), device=self.device)
            mask[rel.topk(k).indices] = 1.0
            masks.append(mask)
            layer.weight.register_hook(lambda g, m=mask: g * m.view(1, -1, 1, 1))
        for module, mask in zip(_following_batchnorms(self.G, layers), masks):
            module.weight.register_hook(lambda g, m=mask: g * m)
            module.bias.register_hook(lambda g, m=mask: g * m)

    def held_out_parts(self, stop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """With a held-out ``item_d_target`` (or ``item_d_finish``), D's targets come from the
        stopping half's images beyond the check's, so the check never reads an image D was matched to. The check
        keeps ``held_out`` images, half the stopping half at most: 1,000 of MNIST's 5,000, 254 of the CIFAR-10
        subset's 508 (without a matched target or finish it would read all 508)."""
        k = self.config.cascade
        if k.item_d_target not in MATCHED_D_LOSSES and k.item_d_finish <= 0:
            return super().held_out_parts(stop)
        if len(stop) < 2:
            raise UserError(f"D's item target or finish needs at least 2 held-out images in the stopping half, "
                            f"one to check and one to match (there are {len(stop)}); give more test images or set "
                            f"item_d_finish=0")
        n = min(self.config.stopping.held_out, len(stop) // 2)
        return stop[:n], stop[n:]

    def generator_gate(self) -> dict | None:
        """``item_generator_gate``: the original generator's nearest-sample membership AUC in pixels (over
        ``item_gate_samples`` samples), and whether the rounds run (it is above 1/2 + ``auc_margin``); None when
        not asked. A generator that comes no closer to the items than to unseen images has nothing to forget, and
        the rounds would only move it. Pixels, not the oracle's features: an oracle trained on the items places
        them apart from unseen images by itself (the tiny test GAN, one epoch on 512 images, read 0.61 in its
        oracle's features)."""
        stop = self.config.stopping
        if self.request.kind != "item" or not stop.item_generator_gate or self.config.cascade.item_d_finish <= 0:
            return None  # without D's finish a skipped run would hand back the original unchanged
        self.gate_samples = None
        images = self.check_nn_samples(stop.item_gate_samples)
        nn_auc = self.generator_membership_auc(images, pixels=True)
        rounds = nn_auc > 0.5 + stop.auc_margin
        if not rounds:  # the generator handed back is the one that made them: the finish's samples to call fake
            self.gate_samples = images
        return {"nn_auc": round(nn_auc, 4), "rounds": rounds}

    def discriminator_batch(self) -> dict:
        batch = super().discriminator_batch()
        k = self.config.cascade
        batch["forgotten"] = self._images(self.forget_idx[self._pick(len(self.forget_idx), k.forget_batch)])
        if k.item_d_target in MATCHED_D_LOSSES and self.match_images is not None:
            pick = self._pick(len(self.match_images), k.forget_batch)
            batch["match"] = self.match_images[pick]
        return batch

    def discriminator_loss(self, batch: dict, fake: torch.Tensor) -> torch.Tensor:
        """Real retained images -> 1, generated -> 0, forgotten images -> fake (the fake-label criterion), or
        for items with a held-out ``item_d_target``, forgotten items -> the scores of held-out real images."""
        loss = super().discriminator_loss(batch, fake)
        k = self.config.cascade
        if k.lambda_u > 0 and "match" in batch:
            with torch.no_grad():
                reference = self.D(batch["match"])
            matched = MATCHED_D_LOSSES[k.item_d_target]
            loss = loss + k.lambda_u * matched(self.D(batch["forgotten"]), reference)
        elif k.lambda_u > 0:
            loss = loss + k.lambda_u * bce(self.D(batch["forgotten"]), k.fake_target)
        return loss

    def drop_adversarial(self) -> bool:
        self.adversarial = False
        return True

    def finish_rule(self, reading: dict) -> bool:
        """D's finish ends where its membership AUC is within ``auc_margin`` of 1/2, either way."""
        return abs(reading["d_auc"] - 0.5) <= self.config.stopping.auc_margin

    def d_rule_holds(self, reading: dict) -> bool:
        """Once D's finish has run, its rule (so the run's ``forgotten`` agrees with the finish's ``reached``);
        before, ``item_rule``'s."""
        return self.finish_rule(reading) if self.finished else super().d_rule_holds(reading)

    def finish(self) -> dict | None:
        """``item_d_finish``: discriminator-only steps after the rounds, the items matched to held-out images'
        logits, until D's membership AUC is within ``auc_margin`` of 1/2 (either way: items ranked below unseen
        images are told apart too) with its acceptance of held-out real images within ``max_real_accuracy_drop``
        of the original's (either way), or the steps are spent. The rounds' fake label lowers a memorising D's
        scores of the items without changing their rank among unseen images, and a D trained on the logit target
        throughout lets the generator stop where it was; here the generator moves under the rounds' D and the D
        handed back then forgets the items.

        The AUC decides whatever ``item_rule`` the rounds stopped on (on 64 memorised MNIST items the mean rule
        held after the rounds with the AUC at 0.73). D is read after every ``item_d_finish_every`` steps (and after
        the last), its learning rate ``finish_lr_scale`` times the rounds'. Its acceptance may leave the limits on
        the way: on 64 memorised CIFAR-10 items the first step took it from 0-1% to 13-28%, and the rule then held
        within the limits after 20 to 30 steps (the whole D; ``item_d_finish_head``, the default, trains its output
        layer alone). If the steps are spent first, D goes back to the step within the limits whose AUC was nearest
        1/2 (the state before the finish if none was within them).
        On the output layer alone (``item_d_finish_head``) the finish may fall short: where the trunk's features do
        not set the items apart from retained training images, no output layer does (on 1,024 memorised MNIST
        items its 300 steps never came back within the acceptance limits). If ``item_d_finish_head_steps`` do not
        reach the rule, the whole D starts over from the state before the finish, with the steps left (started
        from the output layer's best step there, it reached the rule with D's acceptance 10.7 points below the
        original's on the reporting half, against 6 points for the whole D alone).
        The account: steps taken, the step handed back (``kept``), whether the AUC rule holds there within the
        limits (``reached``) and, when the last step was given up, why (``limited``); on the output layer also the
        pools' sizes, whose samples it called fake (``samples_from``: the gate's or its own) and the whole D's
        steps after it (``whole_d_steps``). From then on D's readings hold it to the finish's rule, so the run's
        ``forgotten`` agrees with ``reached`` whatever ``item_rule`` the rounds used."""
        k = self.config.cascade
        if self.request.kind != "item" or k.item_d_finish <= 0:
            return None
        if not self.finishes_on_output_layer:
            account = self.finish_part(k.item_d_finish, k.finish_lr_scale_for(False))
        else:
            if self.head is None:  # after rounds; without them it was read before any reading
                self.read_output_layer_inputs()
            start = self._snapshot(D_STATE)  # where the whole D starts over if the output layer falls short
            account = self.finish_part(min(k.item_d_finish_head_steps, k.item_d_finish), k.finish_lr_scale_for(True),
                                       start)
            account.update(pools={name: len(x) for name, x in self.head.pools.items()},
                           samples_from=self.samples_from, whole_d_steps=0)
            self.head = None  # read the whole D again
            if not account["reached"] and account["steps"] < k.item_d_finish:  # the whole D starts over
                self._load(start)
                rest = self.finish_part(k.item_d_finish - account["steps"], k.finish_lr_scale_for(False), start)
                account.update(steps=account["steps"] + rest["steps"], kept=account["steps"] + rest["kept"],
                               reached=rest["reached"], limited=rest["limited"], whole_d_steps=rest["steps"])
        self.finished = True  # D's readings hold it to the finish's rule from now on
        return account

    def finish_part(self, budget: int, lr_scale: float, start: dict | None = None) -> dict:
        """Up to ``budget`` finish steps at ``lr_scale`` times D's rate (restored afterwards), on the output layer
        while its inputs are read (``head``), else on the whole D; D is left at the step handed back. ``start``:
        a snapshot of D's current state the caller already holds (else one is taken)."""
        k = self.config.cascade
        distance, reached = lambda r: abs(r["d_auc"] - 0.5), self.finish_rule  # noqa: E731
        within = lambda r: self.acceptance_problem(r) is None  # noqa: E731
        reading = self.d_reading()
        kept = (0, reading, start or self._snapshot(D_STATE))  # handed back if the steps run out: (step, reading, D)
        steps, rates = 0, [group["lr"] for group in self.opt_d.param_groups]
        for group in self.opt_d.param_groups:
            group["lr"] *= lr_scale
        while not (reached(reading) and within(reading)) and steps < budget:
            n = min(k.item_d_finish_every, budget - steps)
            for _ in range(n):
                self.finish_step()
            steps, reading = steps + n, self.d_reading()
            if within(reading) and (not within(kept[1]) or distance(reading) <= distance(kept[1])):
                kept = (steps, reading, self._snapshot(D_STATE))
        limited = None
        if kept[0] != steps:
            limited = self.acceptance_problem(reading) or \
                f"membership AUC {reading['d_auc']:.3f}, farther from 1/2 than step {kept[0]}'s {kept[1]['d_auc']:.3f}"
            self._load(kept[2])
        for group, lr in zip(self.opt_d.param_groups, rates):  # a kept state's optimiser may carry the finish's
            group["lr"] = lr
        return {"steps": steps, "kept": kept[0], "reached": bool(reached(kept[1]) and within(kept[1])),
                "limited": limited}

    def acceptance_problem(self, reading: dict) -> str | None:
        """Why D's acceptance of held-out real images is outside the limits (a drop, ``d_reading``'s
        ``d_degenerate``, or a gain, ``acceptance_gain``), or None."""
        return reading.get("d_degenerate") or self.acceptance_gain(reading)

    def acceptance_gain(self, reading: dict) -> str | None:
        """Why D now accepts too many held-out real images (more than the original's share plus
        ``max_real_accuracy_drop``), or None: a D that scores unseen images as members is no more retrain's
        than one that rejects them."""
        if self.reference is None or self.reference.get("d_real_accuracy") is None:
            return None
        allowed = self.reference["d_real_accuracy"] + self.config.stopping.max_real_accuracy_drop
        if reading["d_real_accuracy"] > allowed:
            return (f"D would accept {100 * reading['d_real_accuracy']:.0f}% of held-out real images (originally "
                    f"{100 * self.reference['d_real_accuracy']:.0f}%)")
        return None

    def read_output_layer_inputs(self) -> None:
        """``item_d_finish_head``: what D's output layer receives for the readings' sets and for the finish
        loss's parts (the items; held-out images to match, retained images and the output generator's samples,
        ``FINISH_HEAD_POOL`` of each from the finish's own stream; the samples are the gate's where it ran no
        rounds, the original generator's images it has already made), read once."""
        c = self.config
        assert self.d_output_layer is not None, "found when the method is built (output_layer_needed_by)"
        self.head = OutputLayerInputs(self.D, self.d_output_layer, self.device, self.precision)
        g = stream(c.seed, "unlearn.finish.head")
        pick = lambda n: torch.randperm(n, generator=g)[:FINISH_HEAD_POOL]  # noqa: E731
        z = self.G0.sample_latents(FINISH_HEAD_POOL, g)  # drawn either way, so the picks below are the same
        if self.gate_samples is not None and len(self.gate_samples) >= FINISH_HEAD_POOL:
            samples, self.samples_from = self.gate_samples[:FINISH_HEAD_POOL], "gate"
        else:
            samples, self.samples_from = batched(self.output_generator, z, 500, self.device, self.precision), "finish"
        self.gate_samples = None  # read once; the finish's steps may not come back to them
        for images in (self.held_out_images, self.calibration_images):
            if images is not None:
                self.head.read(images)
        self.head.pools = {"forgotten": self.head.read(self.forget_images),
                           "match": self.head.read(self.match_images[pick(len(self.match_images))]),
                           "real": self.head.read(self.train_set.batch(self.retain_idx[pick(len(self.retain_idx))])),
                           "fake": self.head.read(samples)}

    def d_logits(self, images: torch.Tensor) -> torch.Tensor:
        """During a finish on D's output layer, the readings' sets are read there (a set it did not read is a
        bug: the whole D would read it, slowly, and unlike the others)."""
        if self.head is None:
            return super().d_logits(images)
        logits = self.head.logits_of(images)
        if logits is None:
            raise RuntimeError("a finish on D's output layer was asked for a set it did not read")
        return logits

    def head_finish_step(self) -> None:
        """One step of D's output layer alone, with the finish's loss on the pools' stored inputs."""
        k, t, pools = self.config.cascade, self.config.training, self.head.pools
        logits = lambda part, n: self.head.logits(pools[part][self._pick(len(pools[part]), n)])  # noqa: E731
        with torch.no_grad():
            reference = logits("match", k.forget_batch)
        loss = self.finish_objective(logits("real", t.batch_size), logits("fake", t.batch_size),
                                     logits("forgotten", k.forget_batch), reference)
        self.opt_d.zero_grad(set_to_none=True)  # only the output layer gets a gradient, so only it moves
        loss.backward()
        self.opt_d.step()

    def finish_step(self) -> None:
        """One D step of the finish, on the output generator's samples (what is handed back)."""
        if self.head is not None:
            return self.head_finish_step()
        k = self.config.cascade
        batch = self.discriminator_batch()
        if "match" not in batch:
            batch["match"] = self.match_images[self._pick(len(self.match_images), k.forget_batch)]
        self.discriminator_step(batch, self.finish_loss, self.output_generator)

    def finish_loss(self, batch: dict, fake: torch.Tensor) -> torch.Tensor:
        """The finish's objective on the whole D's logits of a batch."""
        with torch.no_grad():
            reference = self.D(batch["match"])
        return self.finish_objective(self.D(batch["real"]), self.D(fake), self.D(batch["forgotten"]), reference)

    def finish_objective(self, real: torch.Tensor, fake: torch.Tensor, forgotten: torch.Tensor,
                         reference: torch.Tensor) -> torch.Tensor:
        """D's finish, on logits (the whole D's or its output layer's): retained real images -> 1, generated -> 0,
        the items -> the match images' logits ``reference``, rank by rank (weight ``lambda_u``), whatever target
        the rounds used."""
        matched = rank_matched_logits(forgotten, reference)
        return bce(real, 1.0) + bce(fake, 0.0) + self.config.cascade.lambda_u * matched

    def generator_loss(self, z_fresh: torch.Tensor) -> torch.Tensor:
        """Adversarial loss on fresh latents + substitution (and the fake label) on forgotten latents +
        preservation of retained latents' original outputs."""
        k, t = self.config.cascade, self.targets
        dist = DISTANCE_FUNCTIONS[k.distance]
        use_sub = t["substitutes"] is not None and k.lambda_sub > 0
        keep_pool = k.lambda_keep > 0 and not k.keep_fresh and len(t["z_keep"]) > 0
        batch_size = self.config.training.batch_size
        parts = [z_fresh]
        if use_sub:
            i_sub = self._pick(len(t["z_forget"]), batch_size)
            parts.append(t["z_forget"][i_sub].to(self.device))
        if keep_pool:
            i_keep = self._pick(len(t["z_keep"]), batch_size)
            parts.append(t["z_keep"][i_keep].to(self.device))
        chunks = list(self.G(torch.cat(parts)).float().split([len(p) for p in parts]))  # one pass (eval-mode BN)
        fresh = chunks.pop(0)
        lambda_adv = self.config.training.lambda_adv if self.adversarial else 0.0
        loss = lambda_adv * bce(self.D(fresh), 1.0) if lambda_adv > 0 else fresh.sum() * 0.0
        if (k.keep_fresh and k.lambda_keep > 0) or self.region is not None:
            loss = loss + self.fresh_targets_loss(z_fresh, fresh, dist)
        if use_sub:
            out = chunks.pop(0)
            loss = loss + k.lambda_sub * dist(out, t["substitutes"][i_sub].to(self.device))
            if k.lambda_adv_forget > 0 and self.adversarial:  # they must also pass the D that calls them fake
                loss = loss + k.lambda_adv_forget * bce(self.D(out), 1.0)
        if keep_pool:
            loss = loss + k.lambda_keep * dist(chunks.pop(0), t["keep_images"][i_keep].to(self.device))
        return loss

    def fresh_targets_loss(self, z_fresh, out_fresh, dist):
        """On fresh latents: preservation of the original generator's output where it shows retained content
        (for a class request, where the oracle does not assign it to the class), and, with ``fresh``
        substitution, the substitute's image where the original's output falls in the forgotten region."""
        k = self.config.cascade
        with torch.no_grad():
            reference = self.G0(z_fresh).float()
            keep = torch.ones(len(z_fresh), dtype=torch.bool, device=reference.device)
            features = self.feature_fn(reference) if self.request.kind == "class" or self.region is not None else None
            if self.request.kind == "class":
                keep = self.oracle.head(features).argmax(1) != self.request.class_id
            forgotten = self.region.contains(features) if self.region is not None else None
            if forgotten is not None:
                keep &= ~forgotten
        loss = out_fresh.sum() * 0.0
        if k.keep_fresh and k.lambda_keep > 0 and keep.any():
            loss = loss + k.lambda_keep * dist(out_fresh[keep], reference[keep])
        if forgotten is not None and forgotten.any():
            target = self.region.substitutes(z_fresh[forgotten], features[forgotten]).to(out_fresh.device)
            loss = loss + k.lambda_sub * dist(out_fresh[forgotten], target.float())
        return loss


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
