"""Parameters of one GAN unlearning run, grouped by the part of the method they steer. All of them are
recorded in the output checkpoint. The defaults are the setting that measured best on MNIST
(scripts/bench_gan_unlearning.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from gan_unlearn.errors import UserError
from gan_unlearn.runtime import check_precision

from ..latents import SUBSTITUTIONS

DISTANCES = ("l2", "l1")


@dataclass
class TrainingOptions:
    """The two stages' optimisation, shared by every method."""

    d_warmup: int = 0
    d_steps: int = 1
    g_steps: int = 1
    batch_size: int = 64
    lr_d: float = 5e-4
    lr_g: float = 2e-3
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_adv: float = 1.0
    ema: float = 0.97


@dataclass
class CascadeOptions:
    """The fake label (discriminator stage) and the substitution and preservation losses (generator stage)."""

    forget_batch: int = 32
    lambda_u: float = 1.0
    fake_target: float = 0.0
    lambda_adv_forget: float = 5.0
    lambda_sub: float = 30.0
    lambda_keep: float = 50.0
    keep_fresh: bool = True
    distance: str = "l2"
    focus_fraction: float = 0.0


@dataclass
class SubstitutionOptions:
    """Which latents count as forgotten, and which retained sample each should produce instead."""

    kind: str = "nearest-latent"
    pool_size: int = 4096
    class_threshold: float = 0.5
    item_neighbours: int = 4
    invert_steps: int = 0
    invert_lr: float = 0.05
    target_pool: int = 5000


@dataclass
class StoppingOptions:
    """When the cascade stops: the forget metric reached, or the round budget spent."""

    max_rounds: int = 200
    min_rounds: int = 10
    check_every: int = 10
    check_samples: int = 2000
    forget_target: float = 0.01
    held_out: int = 1000


@dataclass
class GuardOptions:
    """The drift guard: step back, with halved learning rates, when retained content starts to go."""

    max_drift: float = 0.15
    max_backoffs: int = 3


GROUPS = {"training": TrainingOptions, "cascade": CascadeOptions, "substitution": SubstitutionOptions,
          "stopping": StoppingOptions, "guard": GuardOptions}


@dataclass
class UnlearnConfig:
    training: TrainingOptions = field(default_factory=TrainingOptions)
    cascade: CascadeOptions = field(default_factory=CascadeOptions)
    substitution: SubstitutionOptions = field(default_factory=SubstitutionOptions)
    stopping: StoppingOptions = field(default_factory=StoppingOptions)
    guard: GuardOptions = field(default_factory=GuardOptions)
    seed: int = 0
    precision: str = "bf16"
    channels_last: bool = True

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
    def from_values(cls, values: dict) -> "UnlearnConfig":
        """A config from ``{name or group.name: value}``; unknown names are a ``UserError``."""
        params = cls.parameters()
        groups = {g: {} for g in GROUPS}
        top = {}
        for key, value in values.items():
            if key not in params:
                raise UserError(f"unknown unlearning parameter {key!r}")
            group, name = params[key][0], key.rsplit(".", 1)[-1]
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
        check_precision(self.precision)
        if self.substitution.kind not in SUBSTITUTIONS:
            raise UserError(f"unknown substitution {self.substitution.kind!r}; use one of {', '.join(SUBSTITUTIONS)}")
        if self.cascade.distance not in DISTANCES:
            raise UserError(f"unknown distance {self.cascade.distance!r}; use one of {', '.join(DISTANCES)}")
        flat = self.flat()
        for name in ("max_rounds", "batch_size", "forget_batch", "pool_size", "check_every", "check_samples"):
            if flat[name] < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1")
        if self.guard.max_drift <= 0 or self.guard.max_backoffs < 0:
            raise UserError("max-drift must be positive and max-backoffs at least 0")
        if not 0 <= self.cascade.fake_target < 1:
            raise UserError("fake-target must be in [0, 1)")
        return self


def _type_name(t) -> str:
    return t if isinstance(t, str) else t.__name__
