"""Which code made a result: a hash of the project's sources, above every layer so that it can read them all."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


@functools.lru_cache(maxsize=1)
def code_sha256() -> str:
    """SHA-256 over the project's Python sources (gan_unlearn, trainers, metrics): two results made by code with
    the same hash were made by the same code, whatever the version string says. Benchmarks reuse an
    unlearning checkpoint only when it matches."""
    import gan_unlearn
    import metrics
    import trainers

    h = hashlib.sha256()
    for root in (Path(gan_unlearn.__file__).parent, Path(trainers.__file__).parent, Path(metrics.__file__).parent):
        for f in sorted(root.rglob("*.py")):
            h.update(f"{root.name}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()
