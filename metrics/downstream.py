"""Downstream usefulness: train a fresh classifier on generated images labelled by the oracle, test it
on real test images (only the retained classes for a class request)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from gan_unlearn.data import ImageDataset, to_uint8
from gan_unlearn.runtime import batched
from trainers.classifier import ClassifierConfig, accuracy, train_classifier


@torch.no_grad()
def synthetic_dataset(generator, oracle, num_samples: int, seed: int = 0, device="cpu", name: str = "synthetic",
                      min_confidence: float = 0.0) -> ImageDataset:
    """``num_samples`` generated images with the oracle's labels (optionally only confident ones)."""
    generator.eval(), oracle.eval()
    images = generator.generate_images(num_samples, seed=seed)
    probs = batched(lambda x: torch.softmax(oracle(x), 1), images, 1000, device)
    conf, labels = probs.max(1)
    keep = conf >= min_confidence
    return ImageDataset(name, "train", to_uint8(images[keep]), labels[keep], oracle.num_classes)


def downstream_accuracy(train_set: ImageDataset, test_set: ImageDataset, classes=None, epochs: int = 2,
                        seed: int = 0, device="cpu", hidden: int = 128) -> float:
    """Test accuracy of a fresh classifier trained on ``train_set`` (restricted to ``classes`` if given)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = ClassifierConfig(epochs=epochs, hidden=hidden, seed=seed)
        ckpt = train_classifier(train_set, config, torch.device(device), Path(tmp) / "downstream.pt",
                                show_progress=False, checkpoint_every=0)
    from gan_unlearn.checkpoint import restore_model

    model = restore_model(ckpt, "classifier", device)
    return accuracy(model, test_set, device, classes=classes)
