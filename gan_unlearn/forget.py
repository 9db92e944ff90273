"""Forget requests: which training images a user asks to remove, validated and hashed.

A request is either a list of training-set indices (item unlearning) or one class id (class
unlearning). It splits a dataset into forget and retain index sets; its hash identifies it in
checkpoint metadata without storing the images or, for items, even the indices themselves.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UserError


@dataclass(frozen=True)
class ForgetRequest:
    kind: str  # "item" or "class"
    indices: tuple[int, ...] = ()
    class_id: int | None = None

    @classmethod
    def for_class(cls, class_id: int) -> "ForgetRequest":
        return cls("class", (), int(class_id))

    @classmethod
    def for_items(cls, indices) -> "ForgetRequest":
        items = [int(i) for i in indices]
        if not items:
            raise UserError("the forget list is empty: give at least one training index")
        negative = [i for i in items if i < 0]
        if negative:
            raise UserError(f"forget indices must be non-negative, got {negative[:5]}")
        seen, dup = set(), []
        for i in items:
            if i in seen:
                dup.append(i)
            seen.add(i)
        if dup:
            raise UserError(f"forget indices must be unique; duplicated: {sorted(set(dup))[:5]}")
        return cls("item", tuple(sorted(items)), None)

    @classmethod
    def from_options(cls, forget_class: int | None, forget_items: str | None) -> "ForgetRequest":
        """The request of the command-line pair ``--forget-class`` / ``--forget-items``: exactly one given."""
        if (forget_class is None) == (forget_items is None):
            raise UserError("give exactly one of --forget-class or --forget-items")
        if forget_class is not None:
            return cls.for_class(forget_class)
        return cls.parse_items(forget_items)

    @classmethod
    def parse_items(cls, text: str) -> "ForgetRequest":
        """Indices inline (``"3,17,42"``) or from a file (JSON list, or integers separated by commas,
        spaces or newlines)."""
        path = Path(text)
        if path.is_file():
            content = path.read_text()
            source = str(path)
        elif re.fullmatch(r"[\s\d,+-]*", text):
            content, source = text, "inline list"
        else:
            raise UserError(f"--forget-items {text!r} is neither a file nor a comma-separated list of indices")
        content = content.strip()
        try:
            values = json.loads(content) if content.startswith("[") else [
                int(tok) for tok in re.split(r"[\s,]+", content) if tok]
        except ValueError:
            raise UserError(f"{source}: forget indices must be integers") from None
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise UserError(f"{source}: forget indices must be a list of integers")
        return cls.for_items(values)

    def split(self, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(forget indices, retain indices) of a dataset with these labels; validates the request."""
        n = len(labels)
        if self.kind == "class":
            if not 0 <= self.class_id < num_classes:
                raise UserError(f"class {self.class_id} is out of range: the dataset has classes 0..{num_classes - 1}")
            mask = labels == self.class_id
            if not mask.any():
                raise UserError(f"class {self.class_id} has no training images to forget")
        elif self.kind == "item":
            bad = [i for i in self.indices if i >= n]
            if bad:
                raise UserError(f"forget indices out of range (dataset has {n} images, 0..{n - 1}): {bad[:5]}")
            mask = torch.zeros(n, dtype=torch.bool)
            mask[list(self.indices)] = True
        else:
            raise UserError(f"unknown forget request kind {self.kind!r}")
        if mask.all():
            raise UserError("the forget set is the whole dataset: nothing would be left to learn from")
        return mask.nonzero().flatten(), (~mask).nonzero().flatten()

    def hash(self) -> str:
        """Stable sha256 of the request (kind and sorted indices, or the class id)."""
        canon = json.dumps({"kind": self.kind, "indices": list(self.indices), "class_id": self.class_id},
                           sort_keys=True)
        return hashlib.sha256(canon.encode()).hexdigest()

    def describe(self) -> dict:
        """What a checkpoint records: kind, hash, size and class, never the images or item indices."""
        out = {"kind": self.kind, "hash": self.hash()}
        if self.kind == "class":
            out["class_id"] = self.class_id
        else:
            out["num_items"] = len(self.indices)
        return out

    def __str__(self) -> str:
        return f"class {self.class_id}" if self.kind == "class" else f"{len(self.indices)} items"
