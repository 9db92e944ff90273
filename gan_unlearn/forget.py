"""Forget requests: which training images a user asks to remove, validated, and what a checkpoint records.

A request is either a list of training-set indices (item unlearning) or one class id (class
unlearning). It splits a dataset into forget and retain index sets.

What a checkpoint records of it (``describe``) must not identify the person who asked: an unsalted hash
of one index is found by trying all 60,000 indices. So an item request is recorded only as its size and a
keyed commitment, HMAC-SHA256 under a random 32-byte secret that is never stored in the checkpoint (the
user keeps it; ``unlearn`` writes it to ``OUT.secret``). With the secret a request can be verified against
the record; without it the record matches every request of the same size equally well. A class request
records its class id: forgetting a class is public by design.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
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
            raw = path.read_bytes()
            try:
                content = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{path} is not a text file: forget indices must be a JSON list or integers "
                                "separated by commas, spaces or newlines") from None
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
        except RecursionError:  # deeply nested JSON
            raise UserError(f"{source}: forget indices must be a flat list of integers, not nested lists") from None
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

    def _canonical(self) -> bytes:
        return json.dumps({"kind": self.kind, "indices": list(self.indices), "class_id": self.class_id},
                          sort_keys=True).encode()

    def hash(self) -> str:
        """Unkeyed sha256 of the request (kind and sorted indices, or the class id). Identifies a class
        request; for item requests it is NOT private (small index sets are found by brute force), so
        records use ``commitment`` instead."""
        return hashlib.sha256(self._canonical()).hexdigest()

    def commitment(self, secret: bytes) -> str:
        """HMAC-SHA256 of the request under ``secret``: without the secret it reveals nothing of the indices."""
        return hmac.new(check_secret(secret), self._canonical(), hashlib.sha256).hexdigest()

    def describe(self, secret: bytes | None = None) -> dict:
        """What a checkpoint records, never the images or item indices: for a class, its id and hash (the
        class is public); for items, their number and, given the request secret, the keyed commitment and
        the secret's fingerprint (which secret file belongs to the record)."""
        if self.kind == "class":
            return {"kind": "class", "hash": self.hash(), "class_id": self.class_id}
        out = {"kind": self.kind, "num_items": len(self.indices)}
        if secret is not None:
            out.update(commitment=self.commitment(secret), commitment_scheme=COMMITMENT_SCHEME,
                       secret_fingerprint=secret_fingerprint(secret))
        return out

    def verify(self, record: dict, secret: bytes | None = None) -> bool:
        """Check this request against a checkpoint's request record. True: verified; False: the record cannot
        be checked without the secret (an item record whose size matches). A mismatch is a ``UserError``."""
        mismatch = UserError(f"the given forget request ({self}) is not the one the checkpoint was unlearned with")
        if record.get("kind") != self.kind:
            raise mismatch
        if self.kind == "class":
            if record.get("class_id") != self.class_id:
                raise mismatch
            return True
        if record.get("num_items") not in (None, len(self.indices)):
            raise mismatch
        if "commitment" in record:
            if secret is None:
                return False
            if record.get("secret_fingerprint") not in (None, secret_fingerprint(secret)):
                raise UserError("the request secret given is not the one the checkpoint was unlearned with")
            if not hmac.compare_digest(str(record["commitment"]), self.commitment(secret)):
                raise mismatch
            return True
        if "hash" in record:  # records written before keyed commitments: an unsalted sha256
            if record["hash"] != self.hash():
                raise mismatch
            return True
        return False

    def __str__(self) -> str:
        return f"class {self.class_id}" if self.kind == "class" else f"{len(self.indices)} items"


COMMITMENT_SCHEME = "hmac-sha256"
SECRET_BYTES = 32


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def check_secret(secret) -> bytes:
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
        raise UserError("a request secret must be at least 16 random bytes")
    return bytes(secret)


def secret_fingerprint(secret: bytes) -> str:
    """A short public id of a secret (which secret file belongs to which record); reveals nothing of it."""
    return hashlib.sha256(b"gan-unlearn request secret id:" + check_secret(secret)).hexdigest()[:16]


def read_secret(path) -> bytes:
    """A request secret written by ``write_secret`` (hex text); a missing or malformed file is a ``UserError``."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"request secret not found: {p}")
    raw = p.read_bytes()[:4096].strip()
    try:
        secret = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise UserError(f"{p} is not a request secret (expected the hex line that 'unlearn' wrote)") from None
    if len(secret) < 16:
        raise UserError(f"{p} is not a request secret: it holds {len(secret)} bytes, at least 16 are needed")
    return secret
