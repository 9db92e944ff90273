"""FID of a generator against real images, with reference statistics cached on disk.

The cache key covers everything that changes the reference statistics: dataset identity (name and
content hash), split, class filter, image count, extractor and its weights hash.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from gan_unlearn.checkpoint import atomic_write
from gan_unlearn.data import ImageDataset, cache_dir
from gan_unlearn import streams
from gan_unlearn.runtime import eval_mode

from .frechet import GaussianStats, StreamingStats, frechet_distance


def _stream(extractor, batches) -> GaussianStats:
    stats = StreamingStats(extractor.dim)
    for images in batches:
        stats.update(extractor(images))
    return stats.finalize()


def generated_statistics(generator, extractor, num_samples: int, seed: int = 0, batch_size: int = 500,
                         device="cpu") -> GaussianStats:
    """Statistics of ``num_samples`` generated images (seeded latents drawn at once, eval mode)."""
    z = generator.sample_latents(num_samples, streams.generator(seed, "evaluate.latents"))

    def batches():
        with torch.no_grad():
            for i in range(0, num_samples, batch_size):
                yield generator(z[i:i + batch_size].to(device)).float()

    with eval_mode(generator):
        return _stream(extractor, batches())


def dataset_statistics(dataset: ImageDataset, extractor, batch_size: int = 500) -> GaussianStats:
    return _stream(extractor, (dataset.batch(torch.arange(i, min(i + batch_size, len(dataset))))
                               for i in range(0, len(dataset), batch_size)))


def reference_key(dataset: ImageDataset, extractor, classes=None, max_images: int | None = None) -> str:
    ident = {"dataset": dataset.name, "split": dataset.split, "content": dataset.content_hash(),
             "classes": sorted(int(c) for c in classes) if classes is not None else None,
             "max_images": max_images, **extractor.describe()}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def select_reference(dataset: ImageDataset, classes=None, max_images: int | None = None) -> ImageDataset:
    """The real images FID compares against: optionally only some classes, optionally the first N."""
    if classes is not None:
        dataset = dataset.subset(torch.isin(dataset.labels, torch.as_tensor(list(classes))).nonzero().flatten())
    if max_images is not None and max_images < len(dataset):
        dataset = dataset.subset(torch.arange(max_images))
    return dataset


def reference_statistics(dataset: ImageDataset, extractor, classes=None, max_images: int | None = None,
                         use_cache: bool = True) -> tuple[GaussianStats, bool]:
    """(statistics, came_from_cache) of the real reference images."""
    path = cache_dir() / "fid_stats" / f"{reference_key(dataset, extractor, classes, max_images)}.npz"
    if use_cache and path.is_file():
        with np.load(path) as f:
            return GaussianStats(f["mu"], f["sigma"], int(f["n"])), True
    stats = dataset_statistics(select_reference(dataset, classes, max_images), extractor)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.savez(f, mu=stats.mu, sigma=stats.sigma, n=stats.n))
    return stats, False


def fid(generator, extractor, reference: GaussianStats, num_samples: int = 10000, seed: int = 0,
        device="cpu", batch_size: int = 500) -> float:
    return frechet_distance(generated_statistics(generator, extractor, num_samples, seed, batch_size, device),
                            reference)
