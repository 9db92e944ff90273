"""Feature extractors for FID, behind one interface and a registry whose names drive ``--extractor``.

``classifier``: the oracle's hidden layer (fast, offline, the usual choice for MNIST).
``inception``: pytorch-fid's InceptionV3 pool3 (2048-d). Its weights come from an explicit path or the
torch hub cache, never from a download; a missing file is a one-line error that says where to put it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from unittest import mock

import torch

from gan_unlearn.errors import UserError
from gan_unlearn.runtime import autocast

INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"


def state_dict_sha256(module: torch.nn.Module) -> str:
    """Hash of a network's weights: identifies the extractor in cache keys and reports."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(explicit: str | os.PathLike | None, filename: str, what: str, option: str) -> Path:
    """An explicit path, else ``<torch hub cache>/checkpoints/<filename>``; never a download."""
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise UserError(f"{what} weights not found at {p}")
        return p
    p = hub_checkpoint_dir() / filename
    if not p.is_file():
        raise UserError(f"{what} weights not found: pass {option} PATH or put {filename} into {p.parent} "
                        "(the torch hub cache, moved by $TORCH_HOME)")
    return p


class FeatureExtractor:
    """Maps images in [-1, 1] (N, C, H, W) to features (N, dim). Subclasses set name, dim, weights_id."""

    name = "base"
    dim = 0

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.weights_id = ""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images.to(self.device)).float().flatten(1).cpu()

    def describe(self) -> dict:
        return {"extractor": self.name, "dim": self.dim, "weights_sha256": self.weights_id}


class ClassifierFeatures(FeatureExtractor):
    """The oracle classifier's hidden layer."""

    name = "classifier"

    def __init__(self, classifier: torch.nn.Module, device="cpu"):
        super().__init__(device)
        self.model = classifier.to(self.device).eval()
        self.dim = classifier.hidden
        self.weights_id = state_dict_sha256(classifier)

    def features(self, images):
        return self.model.features(images)


def fid_inception_skeleton() -> torch.nn.Module:
    """pytorch-fid's FID InceptionV3 (the TensorFlow graph's structure), randomly initialised: the shape
    that the real weights file fills, and the stand-in that tests and throughput benchmarks use."""
    from pytorch_fid import inception as pi

    net = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pi.FIDInceptionE_1(1280)
    net.Mixed_7c = pi.FIDInceptionE_2(2048)
    return net


class InceptionFeatures(FeatureExtractor):
    """pytorch-fid's InceptionV3, pool3 features (2048-d); inputs resized to 299 bilinearly as in pytorch-fid.

    ``precision="bf16"`` and ``channels_last`` are the fast CPU setting; fp32 is the reference.
    """

    name = "inception"
    dim = 2048

    def __init__(self, weights: str | os.PathLike | None = None, device="cpu", precision: str = "fp32",
                 channels_last: bool = False):
        super().__init__(device)
        from pytorch_fid import inception as pi

        path = find_weights(weights, INCEPTION_FILENAME, "FID Inception", "--inception-weights")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net = fid_inception_skeleton()
            net.load_state_dict(state)
        except Exception as exc:  # wrong file, wrong shapes, corrupt
            raise UserError(f"{path} does not hold FID InceptionV3 weights: {str(exc).splitlines()[0][:200]}") from None
        with mock.patch.object(pi, "fid_inception_v3", lambda: net):  # pytorch-fid would download here
            self.model = pi.InceptionV3([pi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval().to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.precision, self.channels_last = precision, channels_last
        self.weights_id = hashlib.sha256(path.read_bytes()).hexdigest()

    def features(self, images):
        x = (images + 1) / 2  # pytorch-fid expects [0, 1]
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision) if self.precision == "bf16" else contextlib.nullcontext():
            return self.model(x)[0]

    def describe(self) -> dict:
        return {**super().describe(), "precision": self.precision}


EXTRACTORS = {"classifier": ClassifierFeatures, "inception": InceptionFeatures}
