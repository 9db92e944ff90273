"""Downstream usefulness: train a fresh classifier on generated images labelled by the oracle, test it
on real test images (only the retained classes for a class request)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from gan_unlearn import streams
from gan_unlearn.checkpoint import restore_model
from gan_unlearn.data import ImageDataset, to_uint8
from gan_unlearn.runtime import eval_mode
from trainers.classifier import ClassifierConfig, accuracy, train_classifier


def downstream_accuracy(train_set: ImageDataset, test_set: ImageDataset, classes=None, epochs: int = 2,
                        seed: int = 0, device="cpu", hidden: int = 128) -> float:
    """Test accuracy of a fresh classifier trained on ``train_set`` (restricted to ``classes`` if given)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = ClassifierConfig(epochs=epochs, hidden=hidden, seed=seed)
        ckpt = train_classifier(train_set, config, torch.device(device), Path(tmp) / "downstream.pt",
                                show_progress=False, checkpoint_every=0)
    model = restore_model(ckpt, "classifier", device)
    return accuracy(model, test_set, device, classes=classes)


@torch.no_grad()
def per_class_synthetic(generator, oracle, per_class: int, skip_classes=(), seed: int = 0, device="cpu",
                        batch_size: int = 1000, max_draws: int | None = None, min_confidence: float = 0.0):
    """Draw samples until every class (except ``skip_classes``) has ``per_class`` oracle-labelled images, or
    ``max_draws`` samples were drawn. Returns (dataset, stats) where stats has per-class counts and the
    share of all draws that the oracle assigned to each class."""
    k = oracle.num_classes
    wanted = [c for c in range(k) if c not in set(skip_classes)]
    max_draws = max_draws or 20 * per_class * k
    rng = streams.generator(seed, "augment.latents")
    kept_x, kept_y = [], []
    counts = torch.zeros(k, dtype=torch.long)
    drawn_per_class = torch.zeros(k, dtype=torch.long)
    drawn = 0
    with eval_mode(generator, oracle):
        while drawn < max_draws and any(counts[c] < per_class for c in wanted):
            n = min(batch_size, max_draws - drawn)
            x = generator(generator.sample_latents(n, rng, device)).float()
            probs = torch.softmax(oracle(x).float(), 1).cpu()
            conf, y = probs.max(1)
            drawn += n
            drawn_per_class += torch.bincount(y, minlength=k)
            for c in wanted:
                need = per_class - int(counts[c])
                if need <= 0:
                    continue
                idx = ((y == c) & (conf >= min_confidence)).nonzero().flatten()[:need]
                if len(idx):
                    kept_x.append(to_uint8(x[idx.to(x.device)]))
                    kept_y.append(y[idx])
                    counts[c] += len(idx)
    images = torch.cat(kept_x) if kept_x else torch.empty(0, generator.channels, generator.image_size,
                                                          generator.image_size, dtype=torch.uint8)
    labels = torch.cat(kept_y) if kept_y else torch.empty(0, dtype=torch.long)
    stats = {"per_class": counts.tolist(), "draws": drawn, "draw_share_per_class": (drawn_per_class / max(drawn, 1)).tolist(),
             "skipped_classes": sorted(set(skip_classes)), "min_confidence": min_confidence, "seed": seed}
    return ImageDataset("synthetic", "train", images, labels, k), stats
