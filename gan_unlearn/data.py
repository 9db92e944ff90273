"""Datasets as in-memory uint8 tensors, from torchvision (MNIST, CIFAR-10) or from npz arrays.

A dataset name is ``mnist``, ``cifar10`` or ``npz:PATH``. Data are read from a root folder that is
never written to; an opt-in download goes to the project's cache folder instead. Images stay uint8
(N, C, H, W) in memory and are scaled to [-1, 1] per batch, which keeps full MNIST at 47 MB and makes
a training-set hash cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

DATA_ROOT_ENV = "GAN_UNLEARN_DATA"
CACHE_ENV = "GAN_UNLEARN_CACHE"
TORCHVISION_DATASETS = ("mnist", "cifar10")
MAX_CLASSES = 1000  # class ids are 0..999 at most: a label of 10^9 must not become a 10^9-way classifier
MIN_SIDE, MAX_SIDE = 8, 512  # square images, 8x8 to 512x512 (the networks need a few poolings)
RAW_FILES = {"mnist": ("MNIST/raw", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                    "t10k-labels-idx1-ubyte")),
             "cifar10": ("cifar-10-batches-py", ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                                 "data_batch_5", "test_batch", "batches.meta"))}


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


def cache_dir() -> Path:
    """Where the project may write (downloads, reference statistics): ``$GAN_UNLEARN_CACHE`` or ~/.cache."""
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "gan-unlearn")
    return Path(base)


@dataclass
class ImageDataset:
    """Labelled uint8 images (N, C, H, W) with the name of the source they came from."""

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise UserError(f"{self.name}: images must be uint8 (N, C, H, W), got {tuple(self.images.shape)} "
                            f"{self.images.dtype}")
        if len(self.images) != len(self.labels):
            raise UserError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise UserError(f"{self.name}: {self.num_classes} classes; class ids must lie in 0..{MAX_CLASSES - 1}")
        if len(self.labels) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < self.num_classes:
            raise UserError(f"{self.name}: labels must lie in 0..{self.num_classes - 1}, found "
                            f"{int(self.labels.min())}..{int(self.labels.max())}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, indices) -> "ImageDataset":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(self.name, self.split, self.images[idx], self.labels[idx], self.num_classes)

    def batch(self, indices, device: torch.device | str = "cpu") -> torch.Tensor:
        """Images at ``indices`` as float in [-1, 1] on ``device``."""
        return to_float(self.images[indices].to(device))

    def content_hash(self) -> str:
        """sha256 over pixels and labels: identifies the training set in checkpoint metadata."""
        h = hashlib.sha256()
        h.update(str(tuple(self.images.shape)).encode())
        h.update(self.images.contiguous().numpy().tobytes())
        h.update(self.labels.to(torch.int64).numpy().tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        c, hgt, wid = self.image_shape
        return {"name": self.name, "split": self.split, "size": len(self), "image_shape": [c, hgt, wid],
                "num_classes": self.num_classes}


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images_uint8.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (rounded, clamped)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def split_limit(name: str) -> tuple[str, int | None]:
    """``("mnist", 2000)`` for ``mnist[:2000]``, ``(name, None)`` for a name without a limit."""
    limited = re.fullmatch(r"(.+)\[:(\d+)\]", name)
    return (limited.group(1), int(limited.group(2))) if limited else (name, None)


def load_dataset(name: str, split: str = "train", root: str | Path | None = None,
                 download: bool = False) -> ImageDataset:
    """Load ``mnist``, ``cifar10`` or ``npz:PATH`` (``split`` is ``train`` or ``test``).

    A name may end in ``[:N]`` (for example ``mnist[:2000]``): the first N training images, the form
    in which quick runs record their training set.
    """
    base, n = split_limit(name)
    if n is not None:
        full = load_dataset(base, split, root, download)
        if split != "train" or n >= len(full):
            return full
        part = full.subset(range(n))
        part.name = name
        return part
    if split not in ("train", "test"):
        raise UserError(f"unknown split {split!r}; use 'train' or 'test'")
    root = Path(root) if root is not None else default_data_root()
    if name.startswith("npz:"):
        return _load_npz(name[4:], split, root)
    if name in TORCHVISION_DATASETS:
        return _load_torchvision(name, split, root, download)
    raise UserError(f"unknown dataset {name!r}; use one of: mnist, cifar10, npz:PATH")


def dataset_files(name: str, root: str | Path | None = None) -> list[Path]:
    """The files a dataset name reads (the npz file, or the torchvision raw files under the root): the inputs
    that no output of a command may overwrite."""
    name = split_limit(name)[0]
    root = Path(root) if root is not None else default_data_root()
    if name.startswith("npz:"):
        return [resolve_npz_path(name[4:], root)]
    if name in RAW_FILES:
        folder, files = RAW_FILES[name]
        return [root / folder / f for f in files]
    return []


def _check_images(x: np.ndarray, where: str) -> None:
    n, h, w = x.shape[:3]
    if n == 0:
        raise UserError(f"{where} holds no images")
    if h != w or not MIN_SIDE <= h <= MAX_SIDE:
        raise UserError(f"{where}: images must be square, {MIN_SIDE}x{MIN_SIDE} to {MAX_SIDE}x{MAX_SIDE} pixels, "
                        f"got {h}x{w}")


def resolve_npz_path(path: str, root: Path) -> Path:
    p = Path(path).expanduser()
    if p.is_file() or p.is_absolute():
        return p
    return root / p


def _load_npz(path: str, split: str, root: Path) -> ImageDataset:
    p = resolve_npz_path(path, root)
    if not p.is_file():
        raise UserError(f"npz file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as arrays:
            keys = set(arrays.files)
            xk, yk = (f"x_{split}", f"y_{split}") if f"x_{split}" in keys else ("x", "y")
            if xk not in keys or yk not in keys:
                raise UserError(f"{p} holds no {split} split: expected arrays x_{split}/y_{split} (or x/y), "
                                f"found {sorted(keys)}")
            x, y = arrays[xk], arrays[yk]
            y_all = [arrays[k] for k in ("y", "y_train", "y_test") if k in keys]
            declared = arrays["num_classes"] if "num_classes" in keys else None
    except UserError:
        raise
    except Exception as exc:  # zip or format errors from numpy
        raise UserError(f"cannot read npz file {p}: {exc}") from None
    if x.dtype != np.uint8:
        raise UserError(f"{p}: {xk} must be uint8 images (N, H, W, C) or (N, H, W), got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise UserError(f"{p}: {xk} must have shape (N, H, W, C) with C 1 or 3, got {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{p}: {yk} must be integer labels, one per image")
    _check_images(x, f"{p}: {xk}")
    if len(y) and y.min() < 0:
        raise UserError(f"{p}: {yk} holds negative labels")
    num_classes = _npz_classes(p, y_all, declared)
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return ImageDataset(f"npz:{path}", split, images, torch.from_numpy(y.astype(np.int64)), num_classes)


def _npz_classes(p: Path, label_arrays: list, declared) -> int:
    """Classes 0..K-1: K from an optional scalar ``num_classes`` array, else the largest label + 1, in which
    case every class must have images somewhere in the file (a stray label of 200 in a 10-class file would
    otherwise make a 201-class model)."""
    labels = [a for a in label_arrays if a.ndim == 1 and np.issubdtype(a.dtype, np.integer) and len(a)]
    top = max((int(a.max()) for a in labels), default=-1)
    if declared is not None:
        if declared.shape != () or not np.issubdtype(declared.dtype, np.integer):
            raise UserError(f"{p}: num_classes must be one integer")
        k = int(declared)
        if not 1 <= k <= MAX_CLASSES or top >= k:
            raise UserError(f"{p}: num_classes {k} must be in 1..{MAX_CLASSES} and above every label (largest {top})")
        return k
    if top >= MAX_CLASSES:
        raise UserError(f"{p}: label {top} is out of range; class ids must lie in 0..{MAX_CLASSES - 1}")
    present = np.unique(np.concatenate(labels)) if labels else np.zeros(0, int)
    if len(present) < top + 1:
        missing = sorted(set(range(top + 1)) - set(present.tolist()))
        raise UserError(f"{p}: labels run to {top} but classes {_ranges(missing)} have no images; labels must be "
                        "0..K-1 (or store num_classes in the file)")
    return top + 1


def _ranges(values: list[int]) -> str:
    return f"{values[0]}..{values[-1]}" if len(values) > 2 and values[-1] - values[0] == len(values) - 1 else \
        ", ".join(map(str, values[:5])) + (", ..." if len(values) > 5 else "")


def _load_torchvision(name: str, split: str, root: Path, download: bool) -> ImageDataset:
    import torchvision  # heavy; imported only when a torchvision dataset is asked for

    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    train = split == "train"
    folder, files = RAW_FILES[name]
    present = [f for f in files if (root / folder / f).is_file()]
    try:
        ds = cls(str(root), train=train, download=False)
    except Exception as exc:
        if len(present) == len(files):  # the files are there but do not load
            raise UserError(f"{name} under {root / folder} is corrupt or truncated ({type(exc).__name__}"
                            f"{': ' + str(exc).splitlines()[0][:120] if str(exc) else ''}); replace its files") from None
        if not download:
            layout = "MNIST/raw/*-ubyte" if name == "mnist" else "cifar-10-batches-py/"
            raise UserError(f"{name} not found under {root} (expected {layout}); point --data-root (or "
                            f"${DATA_ROOT_ENV}) at a folder that holds it, or pass --download on a machine "
                            "with internet") from None
        target = cache_dir() / "datasets"
        try:
            target.mkdir(parents=True, exist_ok=True)
            ds = cls(str(target), train=train, download=True)
        except Exception as exc:
            raise UserError(f"{name} not found under {root} and downloading into {target} failed: {exc}") from None
    if name == "mnist":
        images = ds.data.unsqueeze(1).contiguous()
        labels = ds.targets.to(torch.int64)
    else:
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    if len(labels) == 0 or len(labels) != len(images) or not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise UserError(f"{name} under {root / folder} is corrupt: {len(images)} images, {len(labels)} labels"
                        + (f", labels {int(labels.min())}..{int(labels.max())} (expected 0..9)" if len(labels) else ""))
    return ImageDataset(name, split, images, labels, 10)
