"""Checkpoint-to-checkpoint unlearning: what the ``unlearn`` and ``retrain`` commands (and the benchmark
scripts) run. Each reads the original GAN checkpoint, never writes it, and writes a new checkpoint that
records what was forgotten (request hash and size, method, parameters, time, source) but not the
forgotten images or indices."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from gan_unlearn.checkpoint import (check_dataset_matches, check_training_set, dataset_record, derived_checkpoint,
                                    file_sha256, load_checkpoint, restore_model, save_checkpoint, unlearning_record)
from gan_unlearn.data import load_dataset
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.runtime import resolve_device
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


def unlearn_checkpoint(gan_path, request: ForgetRequest, out, *, oracle_path=None, method: str = "cascaded",
                       config: UnlearnConfig | None = None, data_root=None, download: bool = False,
                       device="auto", show_progress: bool = True) -> dict:
    """Unlearn ``request`` from the GAN in ``gan_path`` and write the result to ``out``; returns the summary."""
    dev = resolve_device(device)
    ckpt, train = load_gan_and_data(gan_path, data_root, download)
    oracle = load_oracle(oracle_path, ckpt, dev)
    held_out = load_dataset(ckpt["dataset"]["name"], "test", data_root, download) if request.kind == "item" else None
    G, D = restore_model(ckpt, "generator", dev), restore_model(ckpt, "discriminator", dev)
    result = unlearn(G, D, request, train, method=method, config=config or UnlearnConfig(), oracle=oracle,
                     held_out=held_out, device=dev, show_progress=show_progress)
    s = result.summary
    record = unlearning_record(request.describe(), method, gan_path, s["config"], s["seconds"],
                               forget_set_size=s["forget_set_size"], rounds=s["rounds"],
                               stopping_reason=s["stopping_reason"], seconds_by_phase=s["seconds_by_phase"],
                               oracle_sha256=file_sha256(oracle_path) if oracle_path else None)
    new = derived_checkpoint(ckpt, {"generator": result.generator, "discriminator": result.discriminator}, record)
    save_checkpoint(out, new)
    return s


def retrain_checkpoint(gan_path, request: ForgetRequest, out, *, data_root=None, download: bool = False,
                       device="auto", show_progress: bool = True, resume: bool = False, epochs: int | None = None,
                       checkpoint_every: int = 500) -> dict:
    """The gold standard: train from scratch on the retained data with the recipe recorded in ``gan_path``."""
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
    record = unlearning_record(request.describe(), "retrain", gan_path, asdict(config), seconds,
                               forget_set_size=len(forget_idx), steps=result["metrics"]["steps"])
    result = derived_checkpoint(ckpt, result["models"], record, config=result["config"], metrics=result["metrics"],
                                history=result["history"], dataset={**ckpt["dataset"], "trained_on": dataset_record(retained)})
    save_checkpoint(out, result)
    return {"method": "retrain", "request": request.describe(), "forget_set_size": len(forget_idx),
            "seconds": seconds, "steps": result["metrics"]["steps"], "epochs": config.epochs,
            "stopping_reason": "epochs done", "config": asdict(config)}
