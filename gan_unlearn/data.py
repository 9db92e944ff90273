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


def load_dataset(name: str, split: str = "train", root: str | Path | None = None,
                 download: bool = False) -> ImageDataset:
    """Load ``mnist``, ``cifar10`` or ``npz:PATH`` (``split`` is ``train`` or ``test``).

    A name may end in ``[:N]`` (for example ``mnist[:2000]``): the first N training images, the form
    in which quick runs record their training set.
    """
    limited = re.fullmatch(r"(.+)\[:(\d+)\]", name)
    if limited:
        full = load_dataset(limited.group(1), split, root, download)
        n = int(limited.group(2))
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
    if len(y) and y.min() < 0:
        raise UserError(f"{p}: {yk} holds negative labels")
    num_classes = int(max((int(a.max()) for a in y_all if len(a)), default=-1)) + 1
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return ImageDataset(f"npz:{path}", split, images, torch.from_numpy(y.astype(np.int64)), num_classes)


def _load_torchvision(name: str, split: str, root: Path, download: bool) -> ImageDataset:
    import torchvision  # heavy; imported only when a torchvision dataset is asked for

    cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    train = split == "train"
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError:
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
    return ImageDataset(name, split, images, labels, 10)
