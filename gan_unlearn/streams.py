"""Named random streams: every consumer of latents or random picks draws from its own stream, derived from
the run's seed and the consumer's name, so that no two consumers can share latents for any seed.

Before this, evaluation at seed 0 drew the very latents the unlearning pool (also seed 0) had trained
onto their substitutes, and the reported forget rate was partly measured on the method's own training
data. ``generator(seed, name)`` replaces every ``torch.Generator().manual_seed(seed [+ k])``.
"""

from __future__ import annotations

import hashlib

import torch

# Every stream the package uses, and who uses it: a new consumer adds its own name here.
STREAMS = {
    "unlearn.pool": "the latent pool that forgotten latents and substitutes are chosen from",
    "unlearn.steps": "the unlearning stages' batches and latents",
    "unlearn.check": "latents of the stopping rule's forget-rate checks",
    "unlearn.check.nn": "latents of the item generator rule's nearest-sample checks",
    "unlearn.guard": "latents of the drift guard",
    "unlearn.guard.spread": "pairs of retained training images whose distance sets the drift guard's scale",
    "unlearn.d_calibration": "retained training images that place D's decision threshold (item requests)",
    "unlearn.finish.head": "the pools of a finish on D's output layer: held-out images to match, retained images, latents",
    "evaluate.latents": "the evaluation's generated samples (every metric and the downstream training data)",
    "evaluate.beyond": "candidate latents for the probes of forgetting beyond the pool's region",
    "augment.latents": "synthetic datasets drawn for downstream training",
    "heldout.split": "the one split of the test set into a stopping part and a reporting part",
}


def stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed for stream ``name`` of run ``seed`` (sha256 of both, so streams never coincide)."""
    if name not in STREAMS:
        raise KeyError(f"unknown random stream {name!r}; register it in gan_unlearn.streams.STREAMS")
    digest = hashlib.sha256(f"{int(seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(seed: int, name: str) -> torch.Generator:
    """A CPU ``torch.Generator`` for stream ``name`` of run ``seed``."""
    return torch.Generator().manual_seed(stream_seed(seed, name))
