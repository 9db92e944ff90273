"""Checkpoint-to-checkpoint unlearning: what the ``unlearn`` and ``retrain`` commands (and the benchmark
scripts) run. Each reads the original GAN checkpoint, never writes it, and writes a new checkpoint that
records what was forgotten (for a class its id; for items their number and a keyed commitment whose secret
stays outside the checkpoint), method, parameters, time and source, but not the forgotten images or indices.

The new checkpoint, its JSON summary and (for item requests) the request secret land together or not at
all, and a checkpoint with NaN or Inf weights is never written."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path

from gan_unlearn.checkpoint import (check_dataset_matches, check_training_set, dataset_record, derived_checkpoint,
                                    file_sha256, json_bytes, load_checkpoint, nonfinite_tensor, restore_model,
                                    save_checkpoint, unlearning_record)
from gan_unlearn.data import load_dataset
from gan_unlearn.distributed import is_main_process
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest, new_secret
from gan_unlearn.runtime import device_description, resolve_device
from gan_unlearn.workflows.provenance import code_sha256
from trainers.gan import GANConfig, GANTrainer
from trainers.unlearning import UnlearnConfig, unlearn


def load_gan_and_data(gan_path, data_root, download: bool = False):
    """The GAN checkpoint and the exact training set it was trained on (hash-checked)."""
    ckpt = load_checkpoint(gan_path, kind="gan")
    train = load_dataset(ckpt["dataset"]["name"], "train", data_root, download)
    check_training_set(ckpt, train)
    return ckpt, train


def load_oracle(oracle_path, gan_ckpt: dict, device):
    if oracle_path is None:
        return None
    ckpt = load_checkpoint(oracle_path, kind="classifier")
    check_dataset_matches(ckpt, gan_ckpt["dataset"], what="oracle")
    return restore_model(ckpt, "classifier", device).eval()


def summary_path(out) -> Path:
    """Where the JSON summary of a run goes: ``OUT.json``."""
    return Path(out).with_name(Path(out).name + ".json")


def secret_path(out) -> Path:
    """Where a generated request secret goes: ``OUT.secret`` (mode 0600; the user keeps it)."""
    return Path(out).with_name(Path(out).name + ".secret")


def _request_files(request: ForgetRequest, out, secret: bytes | None, summary: dict | None, write_summary: bool):
    """The request record, the secret to use, and the side files ``{path: write}`` that land with ``out``:
    the JSON summary (if asked) and, for an item request without a given secret, a new secret file."""
    files = {}
    if request.kind == "item" and secret is None:
        secret = new_secret()
        files[secret_path(out)] = ((lambda f: f.write(secret.hex().encode() + b"\n")), 0o600)
    record = request.describe(secret if request.kind == "item" else None)
    if summary is not None:
        summary["request"] = record
        if request.kind == "item":
            summary["request_secret"] = str(secret_path(out)) if secret_path(out) in files else "given"
        if write_summary:
            files[summary_path(out)] = lambda f: f.write(json_bytes(summary))
    return record, files


def _finite_models(models: dict, what: str) -> None:
    """The run's own words for a diverged result, before any file is prepared (the scan is the checkpoint's)."""
    bad = nonfinite_tensor({"models": {role: {"state": m.state_dict()} for role, m in models.items()}})
    if bad:
        raise UserError(f"{what} produced NaN or Inf weights ({bad}); nothing was written. "
                        "Lower the learning rates or loss weights")


def unlearn_checkpoint(gan_path, request: ForgetRequest, out, *, oracle_path=None, method: str = "cascaded",
                       config: UnlearnConfig | None = None, data_root=None, download: bool = False,
                       device="auto", show_progress: bool = True, secret: bytes | None = None,
                       write_summary: bool = False) -> dict:
    """Unlearn ``request`` from the GAN in ``gan_path`` and write the result to ``out``; returns the summary.

    An item request is recorded by a keyed commitment under ``secret`` (given, or a new one written to
    ``OUT.secret``); ``write_summary`` also writes the summary as ``OUT.json``. All of them land together."""
    dev = resolve_device(device)
    ckpt, train = load_gan_and_data(gan_path, data_root, download)
    oracle = load_oracle(oracle_path, ckpt, dev)
    held_out = load_dataset(ckpt["dataset"]["name"], "test", data_root, download) if request.kind == "item" else None
    G, D = restore_model(ckpt, "generator", dev), restore_model(ckpt, "discriminator", dev)
    result = unlearn(G, D, request, train, method=method, config=config or UnlearnConfig(), oracle=oracle,
                     held_out=held_out, device=dev, show_progress=show_progress)
    s = result.summary
    _finite_models({"generator": result.generator, "discriminator": result.discriminator}, f"unlearning ({method})")
    request_record, files = _request_files(request, out, secret, s, write_summary)
    record = unlearning_record(request_record, method, gan_path, s["config"], s["seconds"],
                               forget_set_size=s["forget_set_size"], rounds=s["rounds"],
                               stopping_reason=s["stopping_reason"], seconds_by_phase=s["seconds_by_phase"],
                               oracle_sha256=file_sha256(oracle_path) if oracle_path else None,
                               forgotten=s["forgotten"], held_out_split=s["held_out_split"],
                               backoffs=s.get("backoffs"), restored_healthy_state=s.get("restored_healthy_state"),
                               drift_limit=s.get("drift_limit"), guard_spread=s.get("guard_spread"),
                               finish=s.get("finish"), generator_gate=s.get("generator_gate"),
                               adversarial_off=s.get("adversarial_off"),
                               device=device_description(dev), runtime=s.get("runtime"), code_sha256=code_sha256())
    new = derived_checkpoint(ckpt, {"generator": result.generator, "discriminator": result.discriminator}, record)
    save_checkpoint(out, new, together=files)
    return s


def retrain_checkpoint(gan_path, request: ForgetRequest, out, *, data_root=None, download: bool = False,
                       device="auto", show_progress: bool = True, resume: bool = False, epochs: int | None = None,
                       checkpoint_every: int = 500, secret: bytes | None = None, write_summary: bool = False) -> dict:
    """The gold standard: train from scratch on the retained data with the recipe recorded in ``gan_path``.

    The trainer writes ``out`` (and its resume file and sample grid) as it goes; the final checkpoint with
    its unlearning record then replaces it together with the summary and secret (see ``unlearn_checkpoint``),
    and if that fails, the trainer's ``out`` and grid are removed too."""
    dev = resolve_device(device)
    ckpt, train = load_gan_and_data(gan_path, data_root, download)
    forget_idx, retain_idx = request.split(train.labels, train.num_classes)
    retained = train.subset(retain_idx)
    config = GANConfig.from_record(ckpt["config"], **({"epochs": epochs} if epochs else {}))
    samples = Path(out).with_name(Path(out).stem + "_samples.png")
    trainer = GANTrainer(retained, config, dev, out, checkpoint_every=checkpoint_every, show_progress=show_progress,
                         samples_path=samples, provenance={"retrain_of": str(gan_path)})
    result = trainer.fit(resume=resume)
    seconds = result["metrics"]["train_seconds"]
    summary = {"method": "retrain", "request": None, "forget_set_size": len(forget_idx), "seconds": seconds,
               "steps": result["metrics"]["steps"], "epochs": config.epochs, "stopping_reason": "epochs done",
               "config": asdict(config), "runtime": result.get("runtime")}
    if not is_main_process():  # under torchrun only the main process writes
        return summary
    try:
        request_record, files = _request_files(request, out, secret, summary, write_summary)
        record = unlearning_record(request_record, "retrain", gan_path, asdict(config), seconds,
                                   forget_set_size=len(forget_idx), steps=result["metrics"]["steps"],
                                   device=device_description(dev), runtime=result.get("runtime"))
        result = derived_checkpoint(ckpt, result["models"], record, config=result["config"],
                                    metrics=result["metrics"], history=result["history"],
                                    runtime=result.get("runtime"),
                                    dataset={**ckpt["dataset"], "trained_on": dataset_record(retained)})
        save_checkpoint(out, result, together=files)
    except BaseException:
        for p in (Path(out), samples):  # the trainer's own products of this run must not stand in for the result
            with contextlib.suppress(OSError):
                p.unlink()
        raise
    return summary


def resolve_request(records: dict, forget_class: int | None, forget_items: str | None,
                    secret: bytes | None = None) -> tuple[ForgetRequest | None, list[str]]:
    """The forget request to evaluate checkpoints against, and notes for the user. ``records``: ``{label:
    unlearning record}`` of the unlearned checkpoints. A request given on the command line is verified
    against every record (a keyed item record only with ``secret``; without it the note says it could not be
    verified); without one, the class recorded by the checkpoints is used, and item records, which hold no
    indices, need the indices given."""
    recorded = {label: r["request"] for label, r in records.items() if r}
    notes = []
    if forget_class is not None or forget_items is not None:
        request = ForgetRequest.from_options(forget_class, forget_items)
        unverified = []
        for label, r in recorded.items():
            try:
                ok = request.verify(r, secret)
            except UserError as exc:
                raise UserError(f"{label}: {exc}") from None
            if not ok:
                unverified.append(label)
        if unverified:
            notes.append(f"could not verify the item request against the record of {', '.join(unverified)} "
                         "(no --request-secret given): evaluating the given indices as they are")
        return request, notes
    kinds = {r.get("kind") for r in recorded.values()}
    if not recorded:
        return None, notes
    if kinds == {"class"}:
        classes = {r.get("class_id") for r in recorded.values()}
        if len(classes) > 1:
            raise UserError("the checkpoints were unlearned with different requests; evaluate them separately")
        return ForgetRequest.for_class(classes.pop()), notes
    if len(kinds) > 1:
        raise UserError("the checkpoints were unlearned with different requests; evaluate them separately")
    raise UserError("item unlearning records no indices: pass --forget-items (and --request-secret to verify them)")
