"""The ``gan-unlearn`` command line: thin click commands over the Python API and the workflows beside it.

Every command checks its inputs and its output path before doing any work, turns a ``UserError``
into a one-line message with exit status 1, and writes results atomically.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import click

from gan_unlearn.errors import UserError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def user_errors(func):
    """Turn a ``UserError`` into click's one-line ``Error: ...`` and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    return wrapper


class FiniteFloatRange(click.FloatRange):
    """click's ``FloatRange`` that also refuses NaN and infinities (which compare as inside any range); its
    range shows in the option's help."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


POSITIVE = FiniteFloatRange(min=0, min_open=True)
SEED = click.IntRange(min=0, max=2**32 - 1)


def input_files(*paths) -> list[Path]:
    """The files a command reads (None and non-files, like an inline index list, left out)."""
    return [Path(p) for p in paths if p is not None and Path(p).is_file()]


def dataset_inputs(name: str | None, data_root) -> list[Path]:
    from gan_unlearn.data import dataset_files

    return dataset_files(name, data_root) if name else []


def checkpoint_dataset(path) -> str | None:
    """The dataset name a checkpoint records (None if it cannot be read: the command's own loading then
    gives the error)."""
    from gan_unlearn.checkpoint import load_checkpoint

    try:
        return load_checkpoint(path, allow_nonfinite=True)["dataset"]["name"]
    except (UserError, KeyError, TypeError):
        return None


def data_options(func):
    func = click.option("--download", is_flag=True,
                        help="If the data are missing under --data-root, download them into the cache folder "
                             "(needs internet; the data root itself is never written).")(func)
    func = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="GAN_UNLEARN_DATA",
                        default="data", show_default=True, show_envvar=True,
                        help="Folder that holds the datasets (torchvision layout, or npz files).")(func)
    return func


def dataset_option(func):
    return click.option("--dataset", required=True, metavar="NAME",
                        help="mnist, cifar10, or npz:PATH (uint8 images x_train/y_train, x_test/y_test; PATH "
                             "relative to the working directory or to --data-root).")(func)


def device_options(func):
    func = click.option("--quiet", is_flag=True, help="No progress bars.")(func)
    func = click.option("--device", default="auto", show_default=True,
                        help="cpu, cuda, cuda:N, or auto (CUDA when available).")(func)
    return func


def run_options(func):
    func = device_options(func)
    return click.option("--seed", type=SEED, default=0, show_default=True,
                        help="Seed for weights, data order and latents.")(func)


def limit_option(func):
    return click.option("--limit", type=click.IntRange(min=1), default=None,
                        help="Use only the first N training images (quick runs).")(func)


def load_training_data(dataset: str, data_root, download: bool, limit: int | None = None, split: str = "train"):
    from gan_unlearn.data import load_dataset

    return load_dataset(f"{dataset}[:{limit}]" if limit else dataset, split, data_root, download)


# --- registries: every choice on the command line and its help text come from these ---------------------
def _gan_methods():
    from trainers.unlearning import METHODS

    return METHODS


def _substitutions():
    from trainers.latents import SUBSTITUTIONS

    return SUBSTITUTIONS


def _unlearn_defaults():
    from trainers.unlearning import UnlearnConfig

    return {k: v[2] for k, v in UnlearnConfig.parameters().items()}


def _precisions():
    from gan_unlearn.runtime import PRECISIONS

    return list(PRECISIONS)


def _choices_help(registry: dict) -> str:
    """``name: description`` for each entry of a registry (classes give their docstring's first line)."""
    def text(v):
        if isinstance(v, str):
            return v
        return re.split(r"(?<=\.)\s", " ".join((v.__doc__ or "").split()))[0].rstrip(".")

    return "; ".join(f"{name}: {text(v)}" for name, v in registry.items())


def _relevance_rules():
    from gan_unlearn.relevance import RULES

    return RULES


def _extractors():
    from metrics.extractors import EXTRACTORS

    return EXTRACTORS


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="gan-unlearn")
def main():
    """Machine unlearning for GANs and classifiers.

    Train a DCGAN and an oracle classifier, remove single training images or a whole class from the
    GAN (cascaded unlearning) or from a classifier, and measure the result against retraining.
    """


def precision_option(func):
    from gan_unlearn.runtime import PRECISIONS

    return click.option("--precision", type=click.Choice(list(PRECISIONS)), default="auto", show_default=True,
                        help=_choices_help(PRECISIONS) + ". The choice and its reason are printed and recorded in "
                             "the checkpoint.")(func)


def _single_process() -> None:
    """Unlearning and evaluation run in one process: under torchrun every rank would write the same files."""
    from gan_unlearn.distributed import launched_by_torchrun

    if launched_by_torchrun():
        raise UserError("this command runs in one process; start it without torchrun (train-gan, "
                        "train-classifier and retrain run under torchrun)")


def say(message: str) -> None:
    """Print on the main process only: under torchrun every rank runs the command."""
    from gan_unlearn.distributed import is_main_process

    if message and is_main_process():
        click.echo(message)


def _runtime_line(ckpt: dict) -> str:
    r = ckpt.get("runtime") or {}
    if "precision_reason" not in r:
        return ""
    return f"precision {r.get('precision')}: {r['precision_reason']}"


@main.command("train-gan", context_settings=CONTEXT)
@dataset_option
@data_options
@limit_option
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--lr", type=POSITIVE, default=2e-4, show_default=True, help="Adam learning rate for G and D.")
@click.option("--width", type=click.IntRange(4, 1024), default=64, show_default=True,
              help="Base channel count of G and D (DCGAN's ngf/ndf).")
@click.option("--latent-dim", type=click.IntRange(1, 4096), default=100, show_default=True)
@precision_option
@click.option("--channels-last", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="channels_last memory layout; auto: on for CPUs (measured faster there), off on CUDA.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=500, show_default=True,
              help="Write a resume file every N steps (0: only at epoch ends).")
@click.option("--resume", is_flag=True, help="Continue from OUT.resume if an earlier run was interrupted.")
@run_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint to write; a sample grid goes beside it as OUT_samples.png.")
@user_errors
def train_gan_cmd(dataset, data_root, download, limit, epochs, batch_size, lr, width, latent_dim, precision,
                  channels_last, checkpoint_every, resume, device, seed, quiet, out):
    """Train a DCGAN from scratch (Adam, betas 0.5/0.999) and write its checkpoint and a sample grid."""
    from trainers.gan import GANConfig, train_gan
    from trainers.loop import resume_path

    from gan_unlearn.checkpoint import check_outputs
    from gan_unlearn.runtime import resolve_device

    samples = out.with_name(out.stem + "_samples.png")
    check_outputs([out, samples, resume_path(out)], inputs=dataset_inputs(dataset, data_root))
    dev = resolve_device(device)
    data = load_training_data(dataset, data_root, download, limit)
    config = GANConfig(epochs=epochs, batch_size=batch_size, lr=lr, latent_dim=latent_dim, width=width,
                       precision=precision, channels_last={"auto": "auto", "on": True, "off": False}[channels_last],
                       seed=seed)
    with _removed_on_failure(samples):
        ckpt = train_gan(data, config, dev, out, resume=resume, checkpoint_every=checkpoint_every,
                         show_progress=not quiet, samples_path=samples)
    m = ckpt["metrics"]
    say(_runtime_line(ckpt))
    say(f"trained {data.name} GAN: {m['steps']} steps in {m['train_seconds']:.1f} s "
        f"({m['images_per_second']:.0f} images/s); wrote {out} and {samples}")


class _removed_on_failure:
    """Remove side files (a sample grid) that a failed run wrote, so that they cannot pass for a result; an
    interrupted run keeps them, as it keeps its resume file."""

    def __init__(self, *paths):
        self.paths = [Path(p) for p in paths]

    def __enter__(self):
        self.before = {p: _stamp(p) for p in self.paths}

    def __exit__(self, exc_type, exc, tb):
        from trainers.loop import TrainingInterrupted

        if exc_type is not None and not issubclass(exc_type, TrainingInterrupted):
            for p in self.paths:
                if _stamp(p) != self.before[p]:
                    p.unlink(missing_ok=True)
        return False


def _stamp(p: Path):
    try:
        st = p.stat()
        return st.st_ino, st.st_mtime_ns, st.st_size
    except OSError:
        return None


@main.command("train-classifier", context_settings=CONTEXT)
@dataset_option
@data_options
@limit_option
@click.option("--epochs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--lr", type=POSITIVE, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--hidden", type=click.IntRange(2, 65536), default=512, show_default=True,
              help="Units of the hidden (feature) layer.")
@click.option("--exclude-class", type=int, default=None,
              help="Train without this class (the retrained baseline of class unlearning).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=500, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT.resume if an earlier run was interrupted.")
@precision_option
@run_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def train_classifier_cmd(dataset, data_root, download, limit, epochs, batch_size, lr, hidden, exclude_class,
                         checkpoint_every, resume, precision, device, seed, quiet, out):
    """Train the small CNN classifier (the oracle) and report its test accuracy."""
    from trainers.classifier import ClassifierConfig, train_classifier
    from trainers.loop import resume_path

    from gan_unlearn.checkpoint import check_outputs
    from gan_unlearn.forget import ForgetRequest
    from gan_unlearn.runtime import resolve_device

    check_outputs([out, resume_path(out)], inputs=dataset_inputs(dataset, data_root))
    dev = resolve_device(device)
    data = load_training_data(dataset, data_root, download, limit)
    test = load_training_data(dataset, data_root, download, split="test")
    if exclude_class is not None:
        _, retain = ForgetRequest.for_class(exclude_class).split(data.labels, data.num_classes)
        data = data.subset(retain)
    config = ClassifierConfig(epochs=epochs, batch_size=batch_size, lr=lr, hidden=hidden, seed=seed,
                              precision=precision)
    ckpt = train_classifier(data, config, dev, out, test_set=test, checkpoint_every=checkpoint_every,
                            show_progress=not quiet)
    acc = ckpt["metrics"]["test_accuracy"]
    say(_runtime_line(ckpt))
    say(f"test accuracy {100 * acc:.2f}% on {len(test)} {data.name} test images "
        f"({ckpt['metrics']['train_seconds']:.1f} s); wrote {out}")


@main.command("sample", context_settings=CONTEXT)
@click.option("--gan", "gan_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="GAN checkpoint.")
@click.option("--num", type=click.IntRange(min=1, max=100000), default=64, show_default=True)
@click.option("--nrow", type=click.IntRange(min=1), default=None, help="Images per row (default: square).")
@click.option("--format", "fmt", type=click.Choice(["png", "npz"]), default=None,
              help="png grid or npz arrays (default: from the --out suffix).")
@run_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def sample_cmd(gan_path, num, nrow, fmt, device, seed, quiet, out):
    """Generate images from a GAN checkpoint: a PNG grid or an npz array file (no dataset needed)."""
    import numpy as np

    from gan_unlearn.checkpoint import atomic_write, check_outputs, load_checkpoint, restore_model
    from gan_unlearn.data import to_uint8
    from gan_unlearn.images import save_grid
    from gan_unlearn.runtime import resolve_device

    fmt = fmt or ("npz" if out.suffix == ".npz" else "png")
    check_outputs([out], inputs=input_files(gan_path))
    dev = resolve_device(device)
    G = restore_model(load_checkpoint(gan_path, kind="gan"), "generator", dev)
    images = G.generate_images(num, seed=seed)
    if fmt == "png":
        save_grid(images, out, nrow)
    else:
        x = to_uint8(images).numpy().transpose(0, 2, 3, 1)
        atomic_write(out, lambda f: np.savez_compressed(f, x=x))
    click.echo(f"wrote {num} samples to {out}")


@main.command("info", context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
@user_errors
def info_cmd(checkpoint, as_json):
    """Show what a checkpoint holds: models, dataset, recipe, metrics and how it was made."""
    from gan_unlearn.checkpoint import json_bytes, load_checkpoint, nonfinite_tensor
    from .report import checkpoint_summary, format_summary

    ckpt = load_checkpoint(checkpoint, allow_nonfinite=True)
    summary = checkpoint_summary(ckpt)
    bad = nonfinite_tensor(ckpt)
    if bad:
        summary["problems"] = [f"{bad} holds NaN or Inf values: the checkpoint is unusable"]
    click.echo(json_bytes(summary).decode() if as_json else format_summary(summary))
    if bad:  # the metadata is shown, but a checkpoint with broken weights is not a success
        raise UserError(f"{checkpoint}: {summary['problems'][0]}")


def request_options(func):
    func = click.option("--forget-items", default=None, metavar="FILE_OR_LIST",
                        help="Training-set indices to forget: a file (JSON list or whitespace/comma separated) "
                             "or an inline list like 3,17,42.")(func)
    func = click.option("--forget-class", type=int, default=None, help="Class id whose images are forgotten.")(func)
    func = click.option("--gan", "gan_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                        help="The original GAN checkpoint (never modified).")(func)
    return func


def secret_option(func):
    return click.option("--request-secret", "secret_path", type=click.Path(dir_okay=False, path_type=Path),
                        default=None,
                        help="Item requests: the secret file that keys the request record (written by an earlier "
                             "run as OUT.secret). Without it a new secret is written to OUT.secret (mode 0600); "
                             "keep it outside the checkpoint's reach, it is needed to verify the request later.")(func)


def item_file(forget_items: str | None) -> Path | None:
    return Path(forget_items) if forget_items is not None and Path(forget_items).is_file() else None


def _request_outputs(request, out: Path, secret_path) -> list[Path]:
    from .unlearning import secret_path as default_secret, summary_path

    outs = [out, summary_path(out)]
    if request.kind == "item" and secret_path is None:
        outs.append(default_secret(out))
    return outs


def _read_secret(request, secret_path):
    from gan_unlearn.forget import read_secret

    if secret_path is None:
        return None
    if request.kind != "item":
        raise UserError("--request-secret keys item requests only; a class request records its class openly")
    return read_secret(secret_path)


BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def parse_assignments(pairs, types: dict, what: str = "parameter") -> dict:
    """``--set KEY=VALUE`` pairs typed by ``types`` ({key: "int" | "float" | "float-or-auto" | "bool" | "str"}); the one parser
    every command's ``--set`` uses. Dashes in keys read as underscores; a key given twice is an error."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            names = sorted(k for k in types if "." not in k)
            raise UserError(f"--set {pair!r}: expected KEY=VALUE with KEY a {what}: {', '.join(names)}")
        if key in out:
            raise UserError(f"--set {key} is given twice")
        kind = types[key]
        try:
            if kind == "bool":
                if value.strip().lower() not in BOOLEANS:
                    raise ValueError
                out[key] = BOOLEANS[value.strip().lower()]
            elif kind == "float-or-auto":
                out[key] = None if value.strip().lower() == "auto" else float(value)
            else:
                out[key] = {"int": int, "float": float, "str": str}[kind](value)
        except ValueError:
            what = "number or auto" if kind == "float-or-auto" else kind
            raise UserError(f"--set {pair!r}: {value!r} is not a valid {what}") from None
    return out


def _unlearn_epilog() -> str:
    """The ``--set`` parameters with their ranges and meaning, from the one place that declares them."""
    from trainers.unlearning import GROUPS, UnlearnConfig

    ranges, params = UnlearnConfig.ranges(), UnlearnConfig.parameters()
    lines = ["Parameters for --set (name = default: valid values; meaning):", ""]
    for group in (*GROUPS, None):
        names = [k for k, v in params.items() if v[0] == group and "." not in k]
        lines.append("\b")
        lines.append(f"{group or 'general'}:")
        for name in names:
            valid, text = ranges[name]
            default = "auto" if params[name][2] is None else params[name][2]
            lines.append(f"  {name} = {default}: {valid}; {text}")
        lines.append("")
    return "\n".join(lines)


@main.command("unlearn", context_settings=CONTEXT, epilog=_unlearn_epilog())
@request_options
@click.option("--oracle", "oracle_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Oracle classifier checkpoint: required for --forget-class; for items it gives the feature "
                   "space of nearest neighbours (pixels otherwise).")
@click.option("--method", type=click.Choice(list(_gan_methods())), default="cascaded", show_default=True,
              help=_choices_help(_gan_methods()) + ".")
@click.option("--substitution", type=click.Choice(list(_substitutions())), default=None,
              help=f"Substitute for forgotten latents ({_choices_help(_substitutions())}).  "
                   f"[default: {_unlearn_defaults()['kind']}]")
@click.option("--max-rounds", type=click.IntRange(min=1), default=None,
              help=f"Step budget in rounds.  [default: {_unlearn_defaults()['max_rounds']}]")
@click.option("--forget-target", type=FiniteFloatRange(0, 1), default=None,
              help="Class requests stop once the forgotten class's share of samples is at most this.  "
                   f"[default: {_unlearn_defaults()['forget_target']}]")
@click.option("--precision", type=click.Choice(_precisions()), default=None,
              help=f"[default: {_unlearn_defaults()['precision']}]")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any other parameter of the method, by name or as GROUP.NAME (groups: "
                   "training, cascade, substitution, stopping, guard; all of them with their ranges are listed "
                   "below), for example lambda_keep=30; repeatable.")
@secret_option
@data_options
@run_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="New checkpoint; a JSON summary goes beside it (OUT.json), for item requests also the "
                   "request secret (OUT.secret) unless --request-secret is given. All land together or not at all.")
@user_errors
def unlearn_cmd(gan_path, forget_class, forget_items, oracle_path, method, substitution, max_rounds, forget_target,
                precision, overrides, secret_path, data_root, download, device, seed, quiet, out):
    """Remove training items or a class from a GAN by cascaded unlearning (or fine-tuning)."""
    _single_process()
    from trainers.unlearning import UnlearnConfig

    from gan_unlearn.checkpoint import check_outputs
    from gan_unlearn.forget import ForgetRequest

    from .unlearning import summary_path, unlearn_checkpoint

    request = ForgetRequest.from_options(forget_class, forget_items)
    inputs = input_files(gan_path, oracle_path, item_file(forget_items), secret_path)
    check_outputs(_request_outputs(request, out, secret_path),
                  inputs=inputs + dataset_inputs(checkpoint_dataset(gan_path), data_root))
    secret = _read_secret(request, secret_path)
    given = {"kind": substitution, "max_rounds": max_rounds, "forget_target": forget_target, "precision": precision}
    given = {k: v for k, v in given.items() if v is not None}
    params = UnlearnConfig.parameters()
    values = parse_assignments(overrides, {k: v[1] for k, v in params.items()}, "parameter of the unlearning method")
    twice = [k for k in values if k.rsplit(".", 1)[-1] in given or k.rsplit(".", 1)[-1] == "seed"]
    if twice:
        raise UserError(f"--set {twice[0]} repeats an option given on its own (--{twice[0].rsplit('.', 1)[-1].replace('_', '-')})")
    config = UnlearnConfig.from_values({"seed": seed, **given, **values}).validate()
    summary = unlearn_checkpoint(gan_path, request, out, oracle_path=oracle_path, method=method, config=config,
                                 data_root=data_root, download=download, device=device, show_progress=not quiet,
                                 secret=secret, write_summary=True)
    say(_runtime_line(summary))
    verdict = "forgot" if summary.get("forgotten") else \
        "reached its floor above the forget target for" if summary.get("plateaued") else \
        "did NOT reach the forget target for"
    click.echo(f"{method}: {verdict} {request} in {summary['seconds']:.2f} s ({summary['rounds']} rounds, "
               f"{summary['stopping_reason']}); before {_fmt(summary['before'])}, after {_fmt(summary['after'])}; "
               f"wrote {out} and {summary_path(out)}{_secret_note(summary)}")


def _secret_note(summary: dict) -> str:
    where = summary.get("request_secret")
    return f", and the request secret {where} (keep it apart from the checkpoint)" if where not in (None, "given") else ""


def _fmt(metric: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metric.items() if isinstance(v, float))


@main.command("retrain", context_settings=CONTEXT)
@request_options
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Override the recorded number of epochs (default: the original recipe's).")
@click.option("--resume", is_flag=True, help="Continue from OUT.resume if an earlier run was interrupted.")
@secret_option
@data_options
@device_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="New checkpoint; a JSON summary goes beside it (OUT.json), for item requests also the "
                   "request secret (OUT.secret) unless --request-secret is given.")
@user_errors
def retrain_cmd(gan_path, forget_class, forget_items, epochs, resume, secret_path, data_root, download, device, quiet,
                out):
    """Baseline: retrain the GAN from scratch on the retained data with the recipe (and seed) recorded in --gan."""
    from trainers.loop import resume_path

    from gan_unlearn.checkpoint import check_outputs
    from gan_unlearn.forget import ForgetRequest

    from .unlearning import retrain_checkpoint, summary_path

    request = ForgetRequest.from_options(forget_class, forget_items)
    inputs = input_files(gan_path, item_file(forget_items), secret_path)
    check_outputs(_request_outputs(request, out, secret_path) + [out.with_name(out.stem + "_samples.png"),
                                                                  resume_path(out)],
                  inputs=inputs + dataset_inputs(checkpoint_dataset(gan_path), data_root))
    secret = _read_secret(request, secret_path)
    summary = retrain_checkpoint(gan_path, request, out, data_root=data_root, download=download, device=device,
                                 show_progress=not quiet, resume=resume, epochs=epochs, secret=secret,
                                 write_summary=True)
    say(_runtime_line(summary))
    say(f"retrained without {request} in {summary['seconds']:.1f} s ({summary['steps']} steps); "
        f"wrote {out} and {summary_path(out)}{_secret_note(summary)}")


def _classifier_methods():
    from trainers.classifier_unlearning import METHODS

    return METHODS


def parameter_range(name: str, default) -> tuple[float, float, bool] | None:
    """The valid range ``(low, high, low_open)`` of a classifier-unlearning parameter, by the rule its name and
    default follow: counts are at least 1 (at least 0 where the default 0 switches a step off), learning
    rates are positive, percentages lie in (0, 100], targets and probabilities in [0, 1], every other number
    (scales, noise, epsilons, weights) is at least 0; all finite. None for non-numbers."""
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return None
    if isinstance(default, int):
        return (0 if default == 0 else 1), math.inf, False
    if name == "lr" or name.endswith("_lr"):
        return 0.0, math.inf, True
    if name.endswith("_percent"):
        return 0.0, 100.0, True
    if name.endswith(("_target", "_prob", "_fraction")):
        return 0.0, 1.0, False
    return 0.0, math.inf, False


def check_method_parameter(cls, name: str, value) -> None:
    """A classifier-unlearning ``--set`` value against the method's declared ``ranges`` (if it has them) or
    ``parameter_range``'s rule."""
    declared = getattr(cls, "ranges", {}) or {}
    bounds = declared.get(name) or parameter_range(name, cls.defaults[name])
    if bounds is None:
        return
    low, high, low_open = (tuple(bounds) + (False,))[:3]
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        lo = f"{'>' if low_open else '>='} {low:g}"
        text = lo if high == math.inf else f"{lo} and <= {high:g}"
        raise UserError(f"--set {name}={value}: {name} must be a finite number {text} for {cls.name}")


@main.command("unlearn-classifier", context_settings=CONTEXT)
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Classifier checkpoint (never modified).")
@click.option("--forget-class", type=int, required=True, help="Class to forget.")
@click.option("--method", type=click.Choice(list(_classifier_methods())), default="path-perturbation",
              show_default=True, help=_choices_help(_classifier_methods()) + ".")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Method parameter, repeatable (for example top_h=80, lr=0.01).")
@click.option("--dataset", default=None, metavar="NAME",
              help="Dataset to evaluate on (default: the checkpoint's; another one is refused).")
@data_options
@run_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="New checkpoint; a JSON summary goes beside it (OUT.json).")
@user_errors
def unlearn_classifier_cmd(model_path, forget_class, method, overrides, dataset, data_root, download, device, seed,
                           quiet, out):
    """Remove a class from a classifier and report accuracies and membership AUC before and after."""
    from trainers.classifier_unlearning import get_method, unlearn_classifier_checkpoint

    from gan_unlearn.checkpoint import atomic_write, check_outputs, json_bytes

    summary_path = out.with_name(out.name + ".json")
    check_outputs([out, summary_path], inputs=input_files(model_path)
                  + dataset_inputs(dataset or checkpoint_dataset(model_path), data_root))
    cls = _classifier_methods()[method]
    types = {k: type(v).__name__ for k, v in cls.defaults.items()}
    params = parse_assignments(overrides, types, f"parameter of {method}")
    for key, value in params.items():
        check_method_parameter(cls, key, value)
    get_method(method, **params)  # bad values fail before any loading
    s = unlearn_classifier_checkpoint(model_path, forget_class, method, out, params=params, dataset=dataset,
                                      data_root=data_root, download=download, device=device, seed=seed)
    try:  # the checkpoint is written by now; its summary lands beside it, or the checkpoint goes too
        atomic_write(summary_path, lambda f: f.write(json_bytes(s)))
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    b, a = s["before"], s["after"]
    click.echo(f"{method}: class {forget_class} test accuracy {100 * b['acc_forget_test']:.2f}% -> "
               f"{100 * a['acc_forget_test']:.2f}%, other classes {100 * b['acc_rest_test']:.2f}% -> "
               f"{100 * a['acc_rest_test']:.2f}%, membership AUC {b['mia_auc']:.3f} -> {a['mia_auc']:.3f}, "
               f"{s['seconds']:.2f} s; wrote {out} and {summary_path}")


@main.command("relevance", context_settings=CONTEXT)
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Classifier checkpoint.")
@click.option("--class", "class_id", type=int, required=True, help="Class whose logit seeds the relevance.")
@click.option("--layer", default="head", show_default=True,
              help="Layer name (head, fc, conv.0, ...); units are its neurons or channels.")
@click.option("--at", type=click.Choice(["input", "output"]), default="input", show_default=True)
@click.option("--rule", type=click.Choice(list(_relevance_rules())), default="epsilon", show_default=True,
              help=_choices_help(_relevance_rules()) + ".")
@click.option("--epsilon", type=FiniteFloatRange(min=0), default=0.1, show_default=True)
@click.option("--num", type=click.IntRange(min=1), default=36, show_default=True,
              help="Test-split images of the class to attribute.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="Units to list.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a bar chart of the units' relevance (PNG; needs matplotlib).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write all units' relevance as JSON.")
@data_options
@device_options
@user_errors
def relevance_cmd(model_path, class_id, layer, at, rule, epsilon, num, top, plot, json_path, data_root, download,
                  device, quiet):
    """List (and plot) the units of a layer most relevant to a class, over test images of that class."""
    import torch

    from gan_unlearn.checkpoint import atomic_write, check_outputs, json_bytes, load_checkpoint, restore_model
    from gan_unlearn.data import load_dataset
    from gan_unlearn.relevance import unit_relevance
    from gan_unlearn.runtime import resolve_device

    check_outputs([plot, json_path], inputs=input_files(model_path)
                  + dataset_inputs(checkpoint_dataset(model_path), data_root))
    dev = resolve_device(device)
    ckpt = load_checkpoint(model_path, kind="classifier")
    model = restore_model(ckpt, "classifier", dev).eval()
    test = load_dataset(ckpt["dataset"]["name"], "test", data_root, download)
    if not 0 <= class_id < model.num_classes:
        raise UserError(f"class {class_id} is out of range: the model has classes 0..{model.num_classes - 1}")
    idx = (test.labels == class_id).nonzero().flatten()[:num]
    rel = unit_relevance(model, layer, test.batch(idx, dev), lambda out: out[:, class_id], at=at, rule=rule,
                         epsilon=epsilon, reduce="none")
    total, hits = rel.sum(0), torch.bincount(rel.topk(min(top, rel.shape[1]), 1).indices.flatten().cpu(),
                                             minlength=rel.shape[1])
    order = total.argsort(descending=True)[:top]
    click.echo(f"{layer} ({at}), rule {rule}, {len(idx)} test images of class {class_id}:")
    click.echo(f"{'unit':>6} {'relevance':>12} {'in top-' + str(top):>10}")
    for u in order.tolist():
        click.echo(f"{u:>6} {total[u].item():>12.4f} {hits[u].item():>10}")
    if json_path is not None:
        payload = {"layer": layer, "at": at, "rule": rule, "epsilon": epsilon, "class_id": class_id,
                   "num_images": len(idx), "relevance": total.tolist()}
        atomic_write(json_path, lambda f: f.write(json_bytes(payload, indent=None)))
    if plot is not None:
        from gan_unlearn.plots import bar_chart

        bar_chart(total.cpu(), plot, title=f"relevance of {layer} units for class {class_id} ({rule})",
                  xlabel="unit", ylabel="relevance (sum over images)")
        click.echo(f"wrote {plot}")


def entry_point(argv=None) -> None:
    """The console script: like click's standalone mode, but every error is one line on stderr."""
    import sys

    try:
        main.main(args=argv, prog_name="gan-unlearn", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help())  # bare `gan-unlearn`: show the help, as click does
        sys.exit(0)
    except click.exceptions.UsageError as exc:
        hint = f" (see 'gan-unlearn {exc.ctx.info_name} --help')" if exc.ctx is not None and exc.ctx.parent else \
            " (see 'gan-unlearn --help')"
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Error: aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


@main.command("evaluate", context_settings=CONTEXT)
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--oracle", "oracle_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Oracle classifier: labels samples, and gives the classifier FID features.")
@click.option("--forget-class", type=int, default=None,
              help="Class request to measure (default: the one recorded in the unlearned checkpoints).")
@click.option("--forget-items", default=None, metavar="FILE_OR_LIST",
              help="Item request to measure (indices are never stored in checkpoints, so give them here).")
@click.option("--request-secret", "secret_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The secret file written by 'unlearn' (OUT.secret): verifies --forget-items against the "
                   "checkpoints' request records (without it they are evaluated but not verified).")
@click.option("--judge", "judge_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Independent judge classifier (trained separately: another --seed and --hidden than the "
                   "oracle): reads the forget rate a second time and gives a second FID in its features.")
@click.option("--extractor", type=click.Choice(list(_extractors())), default="classifier", show_default=True,
              help="FID features: " + _choices_help(_extractors()) + ".")
@click.option("--inception-weights", type=click.Path(dir_okay=False), default=None,
              help="pt_inception-2015-12-05-6726825d.pth (default: the torch hub cache).")
@click.option("--lpips-backbone", type=click.Path(dir_okay=False), default=None,
              help="torchvision AlexNet weights for LPIPS memorisation of items (off when not given).")
@click.option("--samples", type=click.IntRange(min=2), default=10000, show_default=True)
@click.option("--downstream-samples", type=click.IntRange(min=0), default=0, show_default=True,
              help="Train a fresh classifier on this many oracle-labelled samples per model (0: skip).")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Existing folder for report.json, report.md and sample grids.")
@data_options
@run_options
@user_errors
def evaluate_cmd(checkpoints, oracle_path, forget_class, forget_items, secret_path, judge_path, extractor,
                 inception_weights, lpips_backbone, samples, downstream_samples, out_dir, data_root, download, device,
                 seed, quiet):
    """Measure GAN checkpoints side by side: FID, forget rate or item memorisation, membership AUC,
    downstream accuracy, speedup. Writes report.json, report.md and one sample grid per model."""
    _single_process()
    from . import evaluate
    from .evaluate import EvalSettings, evaluate_checkpoints, markdown_table

    from gan_unlearn.checkpoint import check_outputs, json_bytes, load_checkpoint, write_together
    from gan_unlearn.forget import read_secret

    from .unlearning import resolve_request

    if not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir} is not an existing folder")
    grids = evaluate.grid_paths(list(checkpoints), out_dir) if hasattr(evaluate, "grid_paths") else \
        [out_dir / f"{Path(p).stem}_samples.png" for p in checkpoints]
    inputs = input_files(*checkpoints, oracle_path, judge_path, inception_weights, lpips_backbone,
                         item_file(forget_items), secret_path)
    names = {checkpoint_dataset(p) for p in checkpoints}
    check_outputs([out_dir / "report.json", out_dir / "report.md", *grids],
                  inputs=inputs + [f for n in names for f in dataset_inputs(n, data_root)])
    secret = read_secret(secret_path) if secret_path is not None else None
    records = {str(p): load_checkpoint(p, kind="gan").get("unlearning") for p in checkpoints}
    request, notes = resolve_request(records, forget_class, forget_items, secret)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    settings = EvalSettings(samples=samples, seed=seed, judge=str(judge_path) if judge_path else None,
                            extractor=extractor, inception_weights=inception_weights,
                            downstream_samples=downstream_samples, lpips_backbone=lpips_backbone)
    report = evaluate_checkpoints(list(checkpoints), oracle_path, request=request, settings=settings,
                                  data_root=data_root, download=download, device=device, out_dir=out_dir,
                                  show_progress=not quiet, log=click.echo)
    if notes:
        report["notes"] = notes
    table = markdown_table(report)
    write_together({out_dir / "report.json": lambda f: f.write(json_bytes(report)),
                    out_dir / "report.md": lambda f: f.write((table + "\n").encode())})
    click.echo(table)
    click.echo(f"evaluated {len(checkpoints)} model(s) in {report['seconds']:.1f} s; wrote {out_dir}/report.json, "
               "report.md and sample grids")


@main.command("augment", context_settings=CONTEXT)
@click.option("--gan", "gan_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--oracle", "oracle_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Labels the generated images.")
@click.option("--per-class", type=click.IntRange(min=1), required=True, help="Images per class.")
@click.option("--min-confidence", type=FiniteFloatRange(0, 1), default=0.0, show_default=True,
              help="Keep only samples the oracle labels with at least this probability.")
@click.option("--include-forgotten", is_flag=True,
              help="Also fill the class a checkpoint has unlearned (by default it is left out).")
@run_options
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New folder: synthetic.npz (usable as npz:OUT/synthetic.npz), manifest.json, grid.png.")
@user_errors
def augment_cmd(gan_path, oracle_path, per_class, min_confidence, include_forgotten, device, seed, quiet, out):
    """Write an oracle-labelled synthetic dataset drawn from a GAN, for downstream training."""
    import numpy as np

    from .downstream import per_class_synthetic
    from gan_unlearn.checkpoint import file_sha256

    from .unlearning import load_oracle

    from gan_unlearn.checkpoint import atomic_write, check_output_path, json_bytes, load_checkpoint, restore_model
    from gan_unlearn.images import save_grid
    from gan_unlearn.runtime import resolve_device

    if out.exists():
        raise UserError(f"{out} already exists; give a new folder")
    check_output_path(out)  # its parent must exist and be writable
    dev = resolve_device(device)
    ckpt = load_checkpoint(gan_path, kind="gan")
    oracle = load_oracle(oracle_path, ckpt, dev)
    G = restore_model(ckpt, "generator", dev).eval()
    request = (ckpt.get("unlearning") or {}).get("request", {})
    skip = [request["class_id"]] if request.get("kind") == "class" and not include_forgotten else []
    data, stats = per_class_synthetic(G, oracle, per_class, skip, seed, dev)
    short = [c for c in range(oracle.num_classes) if c not in skip and stats["per_class"][c] < per_class]
    manifest = {"gan": str(gan_path), "gan_sha256": file_sha256(gan_path), "oracle": str(oracle_path),
                "oracle_sha256": file_sha256(oracle_path), "per_class_requested": per_class, **stats,
                "unlearned_request": request or None, "images": len(data), "classes_short": short}
    out.mkdir()
    x = data.images.numpy().transpose(0, 2, 3, 1)
    atomic_write(out / "synthetic.npz", lambda f: np.savez_compressed(  # num_classes: a skipped class stays a class
        f, x_train=x, y_train=data.labels.numpy(), num_classes=np.int64(oracle.num_classes)))
    atomic_write(out / "manifest.json", lambda f: f.write(json_bytes(manifest)))
    order = data.labels.argsort(stable=True)
    from gan_unlearn.data import to_float

    save_grid(to_float(data.images[order][:: max(1, len(data) // 100)][:100]), out / "grid.png", nrow=10)
    shares = stats["draw_share_per_class"]
    msg = f"wrote {len(data)} images to {out}/synthetic.npz ({stats['draws']} draws)"
    if skip:
        msg += f"; oracle share of forgotten class {skip[0]} among all draws: {100 * shares[skip[0]]:.2f}%"
    if short:
        msg += f"; classes short of {per_class}: {short}"
    click.echo(msg)
