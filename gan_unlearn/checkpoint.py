"""Checkpoints: state dicts plus plain metadata, written atomically, loaded with ``weights_only=True``.

A checkpoint is a dict::

    {"format": "gan-unlearn/1", "kind": "gan" | "classifier",
     "models": {role: {"spec": {...}, "state": state_dict}},
     "dataset": {"name", "image_shape", "num_classes", "train_hash", "size"},
     "config": {...}, "seed": int, "versions": {...}, "metrics": {...},
     "lineage": [records of how it was made: training, unlearning, ...]}

Only tensors and plain Python values go in, so loading never runs pickled code. Resumable training
adds a ``"resume"`` entry (optimizer and RNG states) to the partial file it writes beside the output.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import platform
import stat
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import torch

from .errors import UserError
from .models import build_model

FORMAT = "gan-unlearn/1"


def package_versions() -> dict:
    import numpy

    from . import __version__

    versions = {"gan_unlearn": __version__, "torch": str(torch.__version__), "numpy": str(numpy.__version__),
                "python": platform.python_version()}
    try:
        import torchvision

        versions["torchvision"] = str(torchvision.__version__)
    except Exception:  # torchvision is optional for loading and sampling
        pass
    return versions


def check_output_path(path: str | Path, inputs: tuple = ()) -> Path:
    """Fail before any work if ``path`` cannot be written: missing or read-only folder, a folder given
    as the file, or an input file that would be overwritten."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UserError(f"output {p} is a folder; give a file path")
    if not parent.is_dir():
        raise UserError(f"output folder {parent} does not exist")
    mode = parent.stat().st_mode
    if not os.access(parent, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise UserError(f"output folder {parent} is read-only")
    for original in inputs:
        if original is not None and Path(original).exists() and p.exists() and p.resolve() == Path(original).resolve():
            raise UserError(f"output {p} is the input checkpoint; write the result to a new file")
    return p


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place, so a
    crash or interrupt never leaves a half-written file."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    checkpoint = {"format": FORMAT, **checkpoint}
    try:
        atomic_write(path, lambda f: torch.save(checkpoint, f))
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict:
    """Load a checkpoint safely; corrupt, truncated, foreign or code-carrying files are a ``UserError``."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of foreign files
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc) or "Unsupported global" in str(exc):
            raise UserError(f"{p} is not a plain gan-unlearn checkpoint (it holds objects other than tensors and "
                            "plain values, possibly code); refusing to load it") from None
        raise UserError(f"{p} is corrupt or truncated, or not a plain checkpoint; refusing to load it") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, IndexError, KeyError) as exc:
        raise UserError(f"{p} is corrupt or truncated: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{p} is not a gan-unlearn checkpoint")
    if kind is not None and ckpt.get("kind") != kind:
        raise UserError(f"{p} holds a {ckpt.get('kind')} checkpoint, but a {kind} checkpoint is needed here")
    return ckpt


def model_entry(model: torch.nn.Module) -> dict:
    return {"spec": model.spec(), "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


def restore_model(checkpoint: dict, role: str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Rebuild the network stored under ``role`` and load its weights; a mismatch is a ``UserError``."""
    entry = checkpoint.get("models", {}).get(role)
    if entry is None:
        raise UserError(f"checkpoint holds no {role}")
    model = build_model(entry["spec"])
    try:
        model.load_state_dict(entry["state"])
    except RuntimeError as exc:
        raise UserError(f"{role} weights do not fit architecture {entry['spec']}: {str(exc).splitlines()[0]}") from None
    return model.to(device)


def check_dataset_matches(checkpoint: dict, dataset, what: str = "checkpoint") -> None:
    """A model trained on one image shape or label set cannot be used with another. ``dataset`` is a
    dataset or another checkpoint's dataset record."""
    info = checkpoint["dataset"]
    other = dataset if isinstance(dataset, dict) else dataset_record(dataset, with_hash=False)
    if tuple(info["image_shape"]) != tuple(other["image_shape"]) or info["num_classes"] != other["num_classes"]:
        c, h, w = info["image_shape"]
        dc, dh, dw = other["image_shape"]
        raise UserError(f"{what} was trained on {info['name']} ({c}x{h}x{w}, {info['num_classes']} classes), "
                        f"not on {other['name']} ({dc}x{dh}x{dw}, {other['num_classes']} classes)")


def check_training_set(checkpoint: dict, dataset) -> None:
    """Forget indices only mean something on the exact training set the model saw."""
    check_dataset_matches(checkpoint, dataset)
    expected = checkpoint["dataset"].get("train_hash")
    if expected and expected != dataset.content_hash():
        raise UserError(f"the training set differs from the one the checkpoint was trained on "
                        f"({checkpoint['dataset']['name']}, {checkpoint['dataset']['size']} images); "
                        "forget indices would point at other images")


def dataset_record(dataset, with_hash: bool = True) -> dict:
    record = {"name": dataset.name, "image_shape": list(dataset.image_shape), "num_classes": dataset.num_classes,
              "size": len(dataset)}
    if with_hash:
        record["train_hash"] = dataset.content_hash()
    return record


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes: ties a derived checkpoint to the exact source file it was made from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unlearning_record(request: dict, method: str, source: str | Path, parameters: dict, seconds: float,
                      **extra) -> dict:
    """What an unlearned (or retrained) checkpoint records about how it was made: the request's description
    (never the forgotten images), the method and its parameters, the time taken, and the source file."""
    return {"request": request, "method": method, "parameters": parameters, "seconds": round(seconds, 4),
            "source_checkpoint": str(source), "source_sha256": file_sha256(source),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


def derived_checkpoint(source: dict, models: dict, record: dict, **updates) -> dict:
    """A new checkpoint made from ``source`` by unlearning: its metadata, the new models, the unlearning
    record, and one more lineage entry."""
    new = {k: v for k, v in source.items() if k not in ("models", "format")}
    event = {"event": f"unlearn-{record['method']}" if record["method"] != "retrain" else "retrain",
             **record["request"], "time": record["time"]}
    new.update(models={role: model_entry(m) if isinstance(m, torch.nn.Module) else m for role, m in models.items()},
               versions=package_versions(), unlearning=record, lineage=list(source.get("lineage", [])) + [event],
               **updates)
    return new
