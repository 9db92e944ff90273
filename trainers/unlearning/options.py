"""Parameters of one GAN unlearning run, grouped by the part of the method they steer. All of them are
recorded in the output checkpoint. The defaults are the setting that measured best (scripts/results,
made by scripts/bench_gan_unlearning.py); the learning rates depend on the request's kind (``RATES``).

Every parameter declares its valid range next to its default (``param(default, Range(...), help)``):
``UnlearnConfig.validate`` checks all of them there, and the command line's ``--set`` help lists them
from the same place, so documentation and check cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from gan_unlearn.errors import UserError
from gan_unlearn.runtime import PRECISIONS

from ..latents import SUBSTITUTIONS

DISTANCES = ("l2", "l1")
ITEM_D_TARGETS = ("fake", "held-out", "held-out-logits")
ITEM_RULES = ("mean", "auc")
PLATEAU_TESTS = ("independent", "paired")


@dataclass(frozen=True)
class Range:
    """Valid values of one parameter: an interval (finite numbers only; open or closed ends) or choices."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    optional: bool = False  # None is valid too: "auto", resolved where the run knows what it needs

    def __str__(self) -> str:
        return self._describe() + (" or auto" if self.optional else "")

    def _describe(self) -> str:
        if self.choices == (True, False):
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        lo, hi = _num(self.low), _num(self.high)
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {lo}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {hi}"
        return "any"

    def contains(self, value) -> bool:
        if value is None:
            return self.optional
        if self.choices:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _num(v) -> str:
    return "" if v is None else str(int(v)) if float(v).is_integer() else f"{v:g}"


COUNT, NON_NEGATIVE_COUNT = Range(1), Range(0)
POSITIVE, NON_NEGATIVE = Range(0, low_open=True), Range(0)
POSITIVE_OR_AUTO = Range(0, low_open=True, optional=True)

# (lr_g, lr_d) of each request kind where lr_g / lr_d are left at auto. Class requests: equal rates. On four
# class recipes (MNIST and the CIFAR-10 subset, 5 and 25 epochs; scripts/results) they gave a lower FID than
# the item rates in 7 of 8 readings (25-epoch MNIST on an H200: 1.21x/1.25x retrain's against 1.36x/1.48x;
# 25-epoch CIFAR-10: 1.54x/1.63x against 1.68x/1.73x) at the same forgetting within the seeds' spread: at
# lr_g 2e-3 a 25-epoch generator drifted past the guard within 10 rounds (0.21-0.27 on MNIST) and the steps
# back halved the rates for the rest of the run. Item requests keep the fast generator: at equal rates D's
# rule held before the generator moved (64 memorised MNIST items: NN AUC 0.586 against retrain's 0.511; the
# item rates 0.553).
RATES = {"class": (1e-3, 1e-3), "item": (2e-3, 5e-4)}
FRACTION, BETA = Range(0, 1), Range(0, 1, high_open=True)
BOOL = Range(choices=(True, False))


def param(default, valid: Range, help: str):
    """A dataclass field with its default, its valid range and its help text."""
    return field(default=default, metadata={"range": valid, "help": help})


@dataclass
class TrainingOptions:
    """The two stages' optimisation, shared by every method."""

    d_warmup: int = param(0, NON_NEGATIVE_COUNT, "discriminator steps before the first round")
    d_steps: int = param(1, COUNT, "discriminator steps per round")
    g_steps: int = param(1, COUNT, "generator steps per round")
    batch_size: int = param(64, COUNT, "images (latents) per step")
    lr_d: float | None = param(None, POSITIVE_OR_AUTO, "discriminator Adam learning rate (auto: 1e-3 for a "
                                                        "class request, 5e-4 for items)")
    lr_g: float | None = param(None, POSITIVE_OR_AUTO, "generator Adam learning rate (auto: 1e-3 for a class "
                                                        "request, 2e-3 for items)")
    beta1: float = param(0.5, BETA, "Adam beta1")
    beta2: float = param(0.999, BETA, "Adam beta2")
    lambda_adv: float = param(1.0, NON_NEGATIVE, "weight of the adversarial loss on fresh latents")
    ema: float = param(0.97, BETA, "decay of the generator's weight average (0: no average)")

    def rates(self, kind: str) -> tuple[float, float]:
        """``(lr_g, lr_d)`` for a ``kind`` request: each as given, or the kind's (``RATES``) where left at auto."""
        g, d = RATES[kind]
        return (g if self.lr_g is None else self.lr_g), (d if self.lr_d is None else self.lr_d)


@dataclass
class CascadeOptions:
    """The fake label (discriminator stage) and the substitution and preservation losses (generator stage)."""

    forget_batch: int = param(32, COUNT, "forgotten images or latents per step")
    lambda_u: float = param(1.0, NON_NEGATIVE, "weight of D's loss on forgotten images (fake label or matched "
                                                "targets)")
    fake_target: float = param(0.0, BETA, "the label D is taught for forgotten images (not with a "
                                          "held-out item_d_target)")
    item_d_target: str = param("fake", Range(choices=ITEM_D_TARGETS),
                               "item requests: D learns forgotten items as fake (the fake label), or to score them "
                               "as it scores held-out real images, rank by rank: BCE against their probabilities "
                               "(held-out) or Huber distance to their logits, which keeps pulling where D scores "
                               "all unseen images near 0 (held-out-logits)")
    item_d_finish: int = param(300, NON_NEGATIVE_COUNT,
                               "item requests: after the rounds, up to this many discriminator-only steps in "
                               "which the items are matched to held-out images' logits (the held-out-logits "
                               "target) until D's membership AUC is within auc_margin of 1/2 with its held-out "
                               "acceptance within max_real_accuracy_drop of the original's either way, D read "
                               "every item_d_finish_every steps (steps spent: the step within the limits nearest "
                               "1/2); the generator left as the rounds left it (0: none; its steps are counted "
                               "in the summary's finish, not in d_steps). The rounds alone left a memorising D's "
                               "membership AUC at 0.61-0.98 (3-seed means, memorised MNIST and CIFAR-10 items); "
                               "no step where both already hold. Needs 2 or more images in the held-out stopping "
                               "half")
    item_d_finish_every: int = param(1, COUNT, "finish steps between readings of D (a reading of the items, the "
                                               "check's held-out and the calibration images cost about 2/3 of a "
                                               "step on 64 memorised CIFAR-10 items, 2 CPU cores; read less "
                                               "often, the finish overshot into more steps and took longer)")
    item_d_finish_lr: float | None = param(None, POSITIVE_OR_AUTO,
                                           "D's learning rate in the finish, as a multiple of its rate in the "
                                           "rounds, back to that rate afterwards (auto: 16 with "
                                           "item_d_finish_head, 1 for the whole D: on 64 memorised CIFAR-10 items "
                                           "the whole D at 2x or 4x never came back within the acceptance limits, "
                                           "and its output layer alone took 161-182 steps at 1x, 11-14 at 16x)")
    item_d_finish_head: bool = param(True, BOOL,
                                     "D's finish trains D's output layer alone, on what that layer receives for "
                                     "fixed sets read once with the rest of D frozen (the items, 512 held-out "
                                     "images to match, 512 retained images, 512 samples of the output generator, "
                                     "and the readings' sets): a step or a reading is one small layer. On 64 "
                                     "memorised CIFAR-10 items a gated run took 0.70 s against 1.67 s with the "
                                     "whole D, D 0.031 from chance against 0.027 (retrain 0.059)")
    item_d_finish_head_steps: int = param(50, COUNT,
                                          "item_d_finish_head: the output layer's steps before the whole D starts "
                                          "over from the state before the finish, with the rest of item_d_finish "
                                          "(where the output layer alone has not reached the rule within the "
                                          "limits). At 16x it reached in 2-14 steps on 64 memorised MNIST and "
                                          "CIFAR-10 items, and never in 300 on 1,024 memorised MNIST items, where "
                                          "the whole D reached in 22-24")
    lambda_adv_forget: float = param(5.0, NON_NEGATIVE, "adversarial weight on forgotten latents")
    lambda_sub: float = param(30.0, NON_NEGATIVE, "weight of the substitution loss")
    lambda_keep: float = param(50.0, NON_NEGATIVE, "weight of the preservation loss on retained latents")
    keep_fresh: bool = param(True, BOOL, "preservation on fresh latents each step (else the fixed pool)")
    distance: str = param("l2", Range(choices=DISTANCES), "image distance of substitution and preservation")
    focus_fraction: float = param(0.0, FRACTION, "share of generator channels updated, most relevant first "
                                                 "(0: all)")

    def finish_lr_scale_for(self, output_layer: bool) -> float:
        """``item_d_finish_lr`` as given, or auto's: 16 for the output layer alone, 1 for the whole D (also where
        it takes over from an output layer that fell short: at 2x and 4x the whole D never came back within the
        limits on 64 CIFAR-10 items)."""
        if self.item_d_finish_lr is not None:
            return self.item_d_finish_lr
        return 16.0 if output_layer else 1.0

    @property
    def finish_lr_scale(self) -> float:
        """The finish's first rate: ``finish_lr_scale_for`` the layers ``item_d_finish_head`` trains."""
        return self.finish_lr_scale_for(self.item_d_finish_head)


@dataclass
class SubstitutionOptions:
    """Which latents count as forgotten, and which retained sample each should produce instead."""

    kind: str = param("nearest-latent", Range(choices=tuple(SUBSTITUTIONS)), "substitute for forgotten latents")
    pool_size: int = param(4096, COUNT, "latents drawn to find the forgotten ones (items: at least 4 x "
                                        "item_neighbours per item, so they stay a quarter of the pool at most)")
    class_threshold: float = param(0.5, FRACTION, "oracle probability above which a latent shows the class (0: the "
                                                  "oracle's predicted class, as the forget rate counts)")
    class_fallback: float = param(0.5, FRACTION, "where class_threshold keeps fewer than this share of the latents "
                                                 "the oracle predicts as the class (an unsure oracle), the "
                                                 "predicted class, if it is at most half the pool (0: never)")
    item_neighbours: int = param(4, COUNT, "pool latents per forgotten item (nearest in feature space)")
    invert_steps: int = param(0, NON_NEGATIVE_COUNT, "steps of latent inversion of forgotten items (0: none)")
    invert_lr: float = param(0.05, POSITIVE, "learning rate of latent inversion")
    target_pool: int = param(5000, COUNT, "retained real images searched by nearest-real")
    fresh: bool = param(False, BOOL, "also substitute fresh latents whose original image falls in the forgotten "
                                     "region (else only the pool's forgotten latents)")


@dataclass
class StoppingOptions:
    """When the cascade stops: the forget metric reached by a generator that is not degenerate (every other
    class keeps at least ``min_class_keep`` of its original share of samples; for items, D still accepts
    held-out real images, losing at most ``max_real_accuracy_drop`` of its accuracy on them), or the round
    budget spent."""

    max_rounds: int = param(200, COUNT, "round budget")
    min_rounds: int = param(10, NON_NEGATIVE_COUNT, "rounds before the first check")
    check_every: int = param(10, COUNT, "rounds between checks")
    check_samples: int = param(2000, COUNT, "samples per check of a class request (and of the item generator rule)")
    quick_check: int = param(0, NON_NEGATIVE_COUNT, "samples of a first reading at each check; the full one "
                                                    "follows only if the target may be reached or a class may "
                                                    "be lost (0: always the full reading)")
    forget_target: float = param(0.01, FRACTION, "a class request stops at this share of the class or less")
    plateau_checks: int = param(4, NON_NEGATIVE_COUNT,
                                "a class request also stops once its share (full readings, since the last step "
                                "back) has not fallen significantly over this many checks, at the earliest after "
                                "this many + 1 readings (round 50 by default): the generator has reached its floor "
                                "(the oracle's false positives, 2.5% of a retrained MNIST GAN's samples, above the "
                                "1% target) (0: only the target or the budget stops it)")
    plateau_z: float = param(2.0, NON_NEGATIVE, "what counts as a significant fall for plateau_checks: more than "
                                                "this many standard errors of the difference (see plateau_test)")
    plateau_test: str = param("independent", Range(choices=PLATEAU_TESTS),
                              "how plateau_checks tells a fall from noise: the two readings' shares as independent "
                              "binomials (independent), or latent by latent, since every check reads the same "
                              "latents: the latents that left the class against those that entered it, a sign "
                              "test (paired: more than plateau_z standard errors of their difference counts as a "
                              "fall)")
    held_out: int = param(1000, COUNT, "held-out test images of an item request's check")
    item_rule: str = param("mean", Range(choices=ITEM_RULES),
                           "item requests stop when D's mean score on the items is at most its mean on held-out "
                           "images (mean), or its membership AUC is at most 1/2 + auc_margin (auc)")
    auc_margin: float = param(0.05, Range(0, 0.5), "the auc item rule's allowance above 1/2, the generator gate's "
                                                  "and item_generator_rule's too; D's finish ends within it of 1/2 "
                                                  "either way")
    item_generator_rule: bool = param(False, BOOL,
                                      "item requests: also require the generator's samples to come no closer to the "
                                      "items than to held-out images (nearest-sample AUC in the oracle's features, "
                                      "pixels without an oracle, at most 1/2 + auc_margin); D's stage pauses once "
                                      "D's own rule holds")
    item_generator_gate: bool = param(True, BOOL,
                                      "item requests: before the rounds, read the original generator's "
                                      "nearest-sample membership AUC in pixels (items against the check's held-out "
                                      "images); at most 1/2 + auc_margin, the generator comes no closer to the "
                                      "items than to unseen images, so no rounds run and only D's finish acts. On "
                                      "64 memorised CIFAR-10 items (NN AUC 0.51) the rounds raised FID to 1.24x "
                                      "retrain's and the gate kept the original's in 0.8 s; on 64 memorised MNIST "
                                      "items (0.61) it let the rounds run. Only with item_d_finish > 0: without "
                                      "the finish a skipped run would change nothing")
    item_gate_samples: int = param(1000, COUNT, "samples of the generator gate's reading. The draw of latents "
                                                "moves it more than the count: over 6 streams on 6 memorised "
                                                "originals (scripts/bench_gate_samples.py) its sd was 0.003-0.014 "
                                                "at 500 to 4,000 samples; 1,000 read 0.003-0.009 below 2,000's "
                                                "mean on memorised MNIST (toward no rounds) at half the time "
                                                "(0.15 s against 0.31 s on 64 memorised CIFAR-10 items, 2 CPU "
                                                "cores)")
    min_class_keep: float = param(0.5, FRACTION, "share of its original sample share every other class must keep")
    max_real_accuracy_drop: float = param(0.1, FRACTION, "largest drop of D's accuracy on held-out real images")
    calibrate_d: bool = param(True, BOOL,
                              "item requests: read D's accuracy on held-out real images, and hand D back, with its "
                              "logits shifted (output bias) so that their median on a fixed sample of retained "
                              "training images is the original D's; ranks, and every AUC, stay as they are. "
                              "Continued GAN training moves all of D's logits together, which read raw looks "
                              "like D rejecting unseen images")


@dataclass
class GuardOptions:
    """The drift guard: step back, with halved learning rates, when retained content starts to go."""

    max_drift: float = param(0.15, POSITIVE, "mean pixel change on retained latents that triggers a step back, "
                                             "at least (the limit is the larger of this and the relative one)")
    relative_drift: float = param(0.45, NON_NEGATIVE, "the step-back limit as a share of the mean pixel distance "
                                                      "between two retained training images, so that it follows the "
                                                      "data's own scale (0: max_drift alone)")
    max_backoffs: int = param(3, NON_NEGATIVE_COUNT, "steps back at most")
    adversarial_off_after: int = param(0, NON_NEGATIVE_COUNT,
                                       "class requests: after this many step backs for lost classes, the cascade's "
                                       "generator stage goes on without its adversarial losses (substitution and "
                                       "preservation only) and D's stage stops: the first step back halves the "
                                       "rates; a class lost again at half the rate is lost to the adversarial pull "
                                       "of a D taught that the class is fake (0: never; above max_backoffs it "
                                       "cannot fire)")
    watch_trained: bool = param(True, BOOL, "with ema, also step back when the generator being trained drifts past "
                                            "the limit, not only its average (which follows it a few dozen steps "
                                            "later)")


GROUPS = {"training": TrainingOptions, "cascade": CascadeOptions, "substitution": SubstitutionOptions,
          "stopping": StoppingOptions, "guard": GuardOptions}


@dataclass
class UnlearnConfig:
    training: TrainingOptions = field(default_factory=TrainingOptions)
    cascade: CascadeOptions = field(default_factory=CascadeOptions)
    substitution: SubstitutionOptions = field(default_factory=SubstitutionOptions)
    stopping: StoppingOptions = field(default_factory=StoppingOptions)
    guard: GuardOptions = field(default_factory=GuardOptions)
    seed: int = param(0, Range(0, 2**32 - 1), "seed of latents and data order")
    precision: str = param("auto", Range(choices=tuple(PRECISIONS)),
                           "bf16 where the hardware runs it natively, fp32 otherwise (auto), or as given")
    channels_last: bool = param(True, BOOL, "channels_last memory layout")

    @classmethod
    def parameters(cls) -> dict:
        """Every settable parameter: ``{name: (group or None, type name, default)}``, under its own name and
        under ``group.name``."""
        out = {}
        for group, options in GROUPS.items():
            for f in fields(options):
                out[f.name] = out[f"{group}.{f.name}"] = (group, _type_name(f.type), f.default)
        for f in fields(cls):
            if f.name not in GROUPS:
                out[f.name] = (None, _type_name(f.type), f.default)
        return out

    @classmethod
    def ranges(cls) -> dict:
        """``{name: (Range, help)}`` of every parameter under its own name."""
        out = {}
        for owner in (*GROUPS.values(), cls):
            for f in fields(owner):
                if "range" in f.metadata:
                    out[f.name] = (f.metadata["range"], f.metadata["help"])
        return out

    @classmethod
    def from_values(cls, values: dict) -> "UnlearnConfig":
        """A config from ``{name or group.name: value}``; unknown names are a ``UserError``."""
        params = cls.parameters()
        groups = {g: {} for g in GROUPS}
        top = {}
        for key, value in values.items():
            if key not in params:
                raise UserError(f"unknown unlearning parameter {key!r}")
            group, name = params[key][0], key.rsplit(".", 1)[-1]
            if name in (groups[group] if group else top):
                raise UserError(f"unlearning parameter {name!r} is given twice")
            (groups[group] if group else top)[name] = value
        return cls(**{g: GROUPS[g](**v) for g, v in groups.items()}, **top)

    @classmethod
    def of(cls, **values) -> "UnlearnConfig":
        """``UnlearnConfig.of(lr_g=1e-3, max_rounds=50)``: parameters by name, whatever their group."""
        return cls.from_values(values)

    def flat(self) -> dict:
        """Every parameter under its own name (names are unique across groups)."""
        d = asdict(self)
        return {**{k: v for g in GROUPS for k, v in d.pop(g).items()}, **d}

    def validate(self) -> "UnlearnConfig":
        """Every parameter against the range declared next to it; the first one out of range is a ``UserError``."""
        ranges, types = self.ranges(), {k: v[1] for k, v in self.parameters().items()}
        for name, value in self.flat().items():
            valid, _ = ranges[name]
            wrong_type = types[name] == "int" and (isinstance(value, bool) or not isinstance(value, int))
            if wrong_type or not valid.contains(value):
                finite = "a finite number " if isinstance(value, float) and not math.isfinite(value) else ""
                kind = "an integer " if wrong_type else finite
                raise UserError(f"{name.replace('_', '-')} must be {kind}{valid}, got {value!r}")
        return self


def _type_name(t) -> str:
    """The parser's name of a field's type: ``float | None`` (a number or auto) is ``float-or-auto``."""
    name = t if isinstance(t, str) else t.__name__
    return f"{name[:-len(' | None')]}-or-auto" if name.endswith(" | None") else name
