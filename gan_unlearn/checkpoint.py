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

import contextlib
import hashlib
import json
import math
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
from .data import MAX_CLASSES
from .models import build_model, check_spec

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


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output_path(path: str | Path, inputs: tuple = ()) -> Path:
    """Fail before any work if ``path`` cannot be written: missing or read-only folder, a folder given
    as the file, or an input file that would be overwritten (compared as resolved paths, so links and
    ``./`` spellings of an input are caught too)."""
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
        if original is not None and _same_file(p, Path(original)):
            raise UserError(f"output {p} is the input {original}; write the result to a new file")
    return p


def check_outputs(outputs, inputs=()) -> list[Path]:
    """``check_output_path`` for every file a command will write (checkpoint, summary, grids, secrets,
    resume files), each against every input and against the other outputs, before any work starts."""
    outs = [Path(o) for o in outputs if o is not None]
    ins = [Path(i) for i in inputs if i is not None]
    for i, o in enumerate(outs):
        check_output_path(o, inputs=ins)
        for other in outs[:i]:
            if _same_file(o, other):
                raise UserError(f"two outputs of this command would be the same file {o}; rename one")
    return outs


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


def write_together(files: dict) -> None:
    """Write several files so that they land together or not at all: each ``{path: write}`` (or ``{path:
    (write, mode)}``) goes to a temporary file beside its path first; only when all are written are they
    renamed into place, and if a write or a rename fails, every temporary and every file already renamed by
    this call is removed."""
    staged, placed = [], []
    try:
        for path, write in files.items():
            write, mode = write if isinstance(write, tuple) else (write, 0o666 & ~_umask())
            p = Path(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
            staged.append((tmp, p))
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
        for tmp, p in staged:
            os.replace(tmp, p)
            placed.append(p)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for p in placed:
            with contextlib.suppress(OSError):
                p.unlink()
        raise


def json_bytes(obj, indent: int | None = 2) -> bytes:
    """Strictly valid JSON (no bare NaN or Infinity, which strict parsers reject): non-finite numbers
    become ``null``."""
    return json.dumps(finite_json(obj), indent=indent, allow_nan=False).encode()


def finite_json(obj):
    """``obj`` with every non-finite float replaced by ``None`` (and tuples as lists)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | Path, checkpoint: dict, together: dict | None = None) -> None:
    """Write a checkpoint atomically, refusing one whose weights are not finite (a diverged run must not
    be passed off as a result). ``together``: other files ``{path: write}`` (a JSON summary) that land
    with the checkpoint or not at all."""
    checkpoint = {"format": FORMAT, **checkpoint}
    bad = nonfinite_tensor(checkpoint)
    if bad:
        raise UserError(f"refusing to write {path}: {bad} holds NaN or Inf values (the run diverged; try a lower "
                        "learning rate)")
    try:
        write_together({path: lambda f: torch.save(checkpoint, f), **(together or {})})
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def nonfinite_tensor(checkpoint: dict) -> str | None:
    """The first model tensor with NaN or Inf values, as ``"role tensor-name"``, or None."""
    models = checkpoint.get("models")
    for role, entry in (models.items() if isinstance(models, dict) else ()):
        state = entry.get("state") if isinstance(entry, dict) else None
        for name, t in (state.items() if isinstance(state, dict) else ()):
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return f"{role} tensor {name}"
    return None


def load_checkpoint(path: str | Path, kind: str | None = None, allow_nonfinite: bool = False) -> dict:
    """Load a checkpoint safely; corrupt, truncated, foreign or code-carrying files, a structure that does
    not match the checkpoint schema, and (unless ``allow_nonfinite``) NaN or Inf weights are a ``UserError``."""
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
    problem = schema_problem(ckpt)
    if problem:
        raise UserError(f"{p} is not a valid gan-unlearn checkpoint: {problem}")
    if not allow_nonfinite:
        bad = nonfinite_tensor(ckpt)
        if bad:
            raise UserError(f"{p} is unusable: {bad} holds NaN or Inf values")
    return ckpt


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def schema_problem(ckpt: dict) -> str | None:
    """What is wrong with a loaded checkpoint's structure (None if nothing): checked before any model is
    built, so a malformed file is a one-line error and never a huge allocation or a crash later."""
    if not isinstance(ckpt.get("kind"), str):
        return "'kind' must be a string"
    for key, typ in (("config", dict), ("metrics", dict), ("versions", dict), ("unlearning", dict),
                     ("history", list), ("lineage", list), ("resume", dict)):
        if key in ckpt and not isinstance(ckpt[key], typ):
            return f"'{key}' must be a {'dict' if typ is dict else 'list'}, not {type(ckpt[key]).__name__}"
    if "seed" in ckpt and not _is_int(ckpt["seed"]):
        return "'seed' must be an integer"
    if any(not isinstance(r, dict) for r in ckpt.get("lineage", [])):
        return "every 'lineage' entry must be a dict"
    u = ckpt.get("unlearning")
    if u is not None and not (isinstance(u.get("request"), dict) and isinstance(u["request"].get("kind"), str)):
        return "'unlearning' must hold a 'request' dict with a 'kind'"
    if ckpt["kind"].endswith("-resume"):
        return None if isinstance(ckpt.get("resume"), dict) else "a resume file needs a 'resume' dict"
    models = ckpt.get("models")
    if not isinstance(models, dict) or not models:
        return f"'models' must be a non-empty dict of role -> {{spec, state}}, not {type(models).__name__}"
    for role, entry in models.items():
        if not isinstance(role, str) or not isinstance(entry, dict):
            return "'models' must map role names to {spec, state} dicts"
        spec, state = entry.get("spec"), entry.get("state")
        if not isinstance(spec, dict) or not isinstance(spec.get("arch"), str):
            return f"models.{role}.spec must be a dict with an 'arch'"
        try:
            check_spec(spec)
        except UserError as exc:
            return f"models.{role}: {exc}"
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in state.items()):
            return f"models.{role}.state must be a dict of tensors"
    d = ckpt.get("dataset")
    if not isinstance(d, dict):
        return "'dataset' must be a dict"
    shape = d.get("image_shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(_is_int(v) and 0 < v <= 4096 for v in shape)):
        return f"dataset.image_shape must be 3 positive integers (C, H, W), not {shape!r}"[:200]
    if not (_is_int(d.get("num_classes")) and 1 <= d["num_classes"] <= MAX_CLASSES):
        return f"dataset.num_classes must be an integer in 1..{MAX_CLASSES}"
    if not isinstance(d.get("name"), str) or not (_is_int(d.get("size")) and d["size"] >= 0):
        return "dataset needs a 'name' string and a non-negative integer 'size'"
    return None


def model_entry(model: torch.nn.Module) -> dict:
    return {"spec": model.spec(), "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


def restore_model(checkpoint: dict, role: str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Rebuild the network stored under ``role`` and load its weights; a mismatch is a ``UserError``. The
    spec is checked against its bounds and the stored tensors' shapes (on the meta device, which allocates
    nothing) before the network is built for real."""
    entry = checkpoint.get("models", {}).get(role)
    if entry is None:
        raise UserError(f"checkpoint holds no {role}")
    with torch.device("meta"):
        skeleton = build_model(entry["spec"])
    stored = entry["state"]
    for name, t in skeleton.state_dict().items():
        if name in stored and tuple(stored[name].shape) != tuple(t.shape):
            raise UserError(f"{role} weights do not fit architecture {entry['spec']}: {name} is "
                            f"{tuple(stored[name].shape)}, the architecture needs {tuple(t.shape)}")
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
