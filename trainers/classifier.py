"""Classifier training: the oracle (labels and features for metrics) and downstream classifiers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from gan_unlearn.data import ImageDataset
from gan_unlearn.models import Classifier, predict  # noqa: F401  (predict: imported from here too)
from gan_unlearn.runtime import autocast

from .loop import ResumableTrainer


@dataclass
class ClassifierConfig:
    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    hidden: int = 512
    dropout: float = 0.25
    precision: str = "fp32"  # or auto / bf16, see gan_unlearn.runtime.PRECISIONS
    seed: int = 0


def accuracy(model, dataset: ImageDataset, device, classes=None) -> float:
    """Top-1 accuracy, optionally on the images of the given classes only."""
    images, labels = dataset.images, dataset.labels
    if classes is not None:
        mask = torch.isin(labels, torch.as_tensor(list(classes)))
        images, labels = images[mask], labels[mask]
    if len(labels) == 0:
        return float("nan")
    return (predict(model, images, device).argmax(1) == labels).float().mean().item()


class ClassifierTrainer(ResumableTrainer):
    kind = "classifier"
    event = "train-classifier"

    def __init__(self, dataset: ImageDataset, config: ClassifierConfig, device, out, *,
                 test_set: ImageDataset | None = None, checkpoint_every: int = 500, show_progress: bool = True,
                 provenance: dict | None = None):
        super().__init__(dataset, config, device, out, checkpoint_every=checkpoint_every,
                         show_progress=show_progress, provenance=provenance)
        self.test_set = test_set
        c, h, _ = dataset.image_shape
        self.model = Classifier(h, c, dataset.num_classes, hidden=config.hidden, dropout=config.dropout).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.model_train = self.parallel(self.model)

    def networks(self) -> dict:
        return {"classifier": self.model}

    def train_step(self, indices: torch.Tensor) -> dict:
        x, y = self.batch(indices)
        with autocast(self.device, self.precision):
            loss = F.cross_entropy(self.model_train(x).float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    def training_state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict()}

    def load_training_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])

    def end_of_epoch(self, epoch: int, means: dict) -> dict:
        if self.test_set is None:
            return {}
        return {"test_accuracy": round(accuracy(self.model, self.test_set, self.device), 5)}

    def extra_metrics(self) -> dict:
        if self.test_set is None:
            return {}
        return {"test_accuracy": self.epoch_log[-1]["test_accuracy"], "test_size": len(self.test_set)}


def train_classifier(dataset: ImageDataset, config: ClassifierConfig, device, out, *, resume: bool = False,
                     stop_after_steps: int | None = None, **kwargs) -> dict:
    """Train the small CNN on ``dataset``, evaluate on ``test_set`` each epoch, write ``out`` (rank 0 under
    torchrun); returns the checkpoint."""
    return ClassifierTrainer(dataset, config, device, out, **kwargs).fit(resume=resume,
                                                                         stop_after_steps=stop_after_steps)
