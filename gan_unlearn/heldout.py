"""The test split divided once into a part for stopping rules and a part for reports.

A stopping rule that reads the same held-out images a report then measures makes the report flatter
than the truth (the run stopped exactly when those images said so). The split is a fixed property of
the test set (seed ``SPLIT_SEED`` of the ``heldout.split`` stream, whatever the run's seed), so every
unlearning run and every evaluation agree on it; checkpoints record it and evaluation checks it.
"""

from __future__ import annotations

import hashlib

import torch

from .errors import UserError
from .streams import generator

SPLIT_SEED = 0


def held_out_split(num_images: int, seed: int = SPLIT_SEED) -> dict:
    """``{"stop": indices, "report": indices}``: disjoint halves of ``range(num_images)``, each in a seeded
    random order (so its first N are a random sample of it)."""
    if num_images < 2:
        raise UserError(f"the test split has {num_images} image(s); held-out images need at least 2")
    perm = torch.randperm(num_images, generator=generator(seed, "heldout.split"))
    half = num_images // 2
    return {"stop": perm[:half], "report": perm[half:]}


def split_record(split: dict, seed: int = SPLIT_SEED) -> dict:
    """What a checkpoint records of the split: its seed, sizes and a hash of the stopping part."""
    stop = sorted(split["stop"].tolist())
    return {"seed": seed, "stop_size": len(split["stop"]), "report_size": len(split["report"]),
            "stop_sha256": hashlib.sha256(",".join(map(str, stop)).encode()).hexdigest()[:16]}


def check_split(record: dict | None, split: dict, what: str) -> None:
    """A checkpoint's stopping part must be the one this split calls stopping part."""
    if record is not None and record != split_record(split, record.get("seed", SPLIT_SEED)):
        raise UserError(f"{what} stopped on another held-out split than the one evaluation reports on "
                        f"({record}); its held-out numbers would be measured on its own stopping images")
