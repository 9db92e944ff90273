"""Checkpoint-to-checkpoint unlearning: what the ``unlearn`` and ``retrain`` commands (and the benchmark
scripts) run. Each reads the original GAN checkpoint, never writes it, and writes a new checkpoint that
records what was forgotten (request hash and size, method, parameters, time, source) but not the
forgotten images or indices."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from pathlib import Path

from gan_unlearn.checkpoint import (check_dataset_matches, check_training_set, dataset_record, load_checkpoint,
                                    model_entry, package_versions, restore_model, save_checkpoint)
from gan_unlearn.data import load_dataset
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.runtime import resolve_device

from .cascaded import UnlearnConfig, unlearn
from .gan import GANConfig, GANTrainer


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    check_dataset_matches(ckpt, _Shape(gan_ckpt["dataset"]), what="oracle")
    return restore_model(ckpt, "classifier", device).eval()


class _Shape:
    """Just enough of a dataset for ``check_dataset_matches`` to word its error."""

    def __init__(self, info):
        self.name, self.image_shape, self.num_classes = info["name"], tuple(info["image_shape"]), info["num_classes"]


def _unlearning_record(request: ForgetRequest, method: str, source: Path, parameters: dict, seconds: float,
                       forget_set_size: int, **extra) -> dict:
    return {"request": request.describe(), "forget_set_size": forget_set_size, "method": method,
            "parameters": parameters, "seconds": round(seconds, 3), "source_checkpoint": str(source),
            "source_sha256": file_sha256(source), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


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
    record = _unlearning_record(request, method, Path(gan_path), s["config"], s["seconds"], s["forget_set_size"],
                                rounds=s["rounds"], stopping_reason=s["stopping_reason"],
                                seconds_by_phase=s["seconds_by_phase"],
                                oracle_sha256=file_sha256(oracle_path) if oracle_path else None)
    new = {k: v for k, v in ckpt.items() if k not in ("models", "format")}
    new.update(models={"generator": model_entry(result.generator), "discriminator": model_entry(result.discriminator)},
               versions=package_versions(), unlearning=record,
               lineage=list(ckpt.get("lineage", [])) + [{"event": f"unlearn-{method}", **record["request"],
                                                         "time": record["time"]}])
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
    record = _unlearning_record(request, "retrain", Path(gan_path), asdict(config), seconds, len(forget_idx),
                                steps=result["metrics"]["steps"])
    result["dataset"] = {**ckpt["dataset"], "trained_on": dataset_record(retained)}
    result["unlearning"] = record
    result["lineage"] = list(ckpt.get("lineage", [])) + [{"event": "retrain", **record["request"],
                                                          "time": record["time"]}]
    save_checkpoint(out, result)
    return {"method": "retrain", "request": request.describe(), "forget_set_size": len(forget_idx),
            "seconds": seconds, "steps": result["metrics"]["steps"], "epochs": config.epochs,
            "stopping_reason": "epochs done", "config": asdict(config)}


def parse_request(forget_class: int | None, forget_items: str | None) -> ForgetRequest:
    if (forget_class is None) == (forget_items is None):
        raise UserError("give exactly one of --forget-class or --forget-items")
    if forget_class is not None:
        return ForgetRequest.for_class(forget_class)
    return ForgetRequest.parse_items(forget_items)
