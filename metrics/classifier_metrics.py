"""How well a classifier forgot a class: accuracies on the class and the rest, a membership attack on the
class's training images, and the forgetting / memory retention rates of Zuo et al."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from gan_unlearn.data import ImageDataset
from gan_unlearn.models import predict

from .membership import auc


def class_accuracies(model, dataset: ImageDataset, class_id: int, device="cpu") -> dict:
    return _accuracies(predict(model, dataset.images, device), dataset.labels, class_id)


def _accuracies(logits: torch.Tensor, labels: torch.Tensor, class_id: int) -> dict:
    hit = logits.argmax(1) == labels
    mask = labels == class_id
    return {"forget": hit[mask].float().mean().item(), "rest": hit[~mask].float().mean().item()}


def classifier_report(model, class_id: int, train: ImageDataset, test: ImageDataset, device="cpu", *,
                      original=None, seed: int = 0, fr_attack=None) -> dict:
    """Accuracies (train and test, forgotten class and the rest), the class membership AUC, and with
    ``original`` (the model before unlearning) the papers' Fr and Fs attacks (``metrics.attacks``).

    ``train`` may be a sample of the training set; ``test`` should exclude any proxy images a zero-shot
    method looked at. The class's images in ``train`` are the members, those in ``test`` the non-members.
    Each split is read once: every number comes from the same two sets of logits.
    """
    logits = {"train": predict(model, train.images, device), "test": predict(model, test.images, device)}
    out, of_class = {}, {}
    for split, ds in (("train", train), ("test", test)):
        acc = _accuracies(logits[split], ds.labels, class_id)
        out[f"acc_forget_{split}"], out[f"acc_rest_{split}"] = acc["forget"], acc["rest"]
        mask = ds.labels == class_id
        of_class[split] = (logits[split][mask], ds.labels[mask])
    confidence = {k: F.softmax(lg, 1).gather(1, y[:, None]).squeeze(1) for k, (lg, y) in of_class.items()}
    out["mia_auc"] = auc(confidence["train"], confidence["test"])
    if original is not None or fr_attack is not None:
        from .attacks import membership_report_from_logits

        members, non_members = train.subset((train.labels == class_id).nonzero().flatten()), \
            test.subset((test.labels == class_id).nonzero().flatten())
        out.update(membership_report_from_logits(original, members, non_members, *of_class["train"], *of_class["test"],
                                                 device, seed, fr_attack))
    return out


def instance_report(model, data, num_instances: int, test: ImageDataset, device="cpu", trained_on: int = 0) -> dict:
    """Instance-wise forgetting (L2UL): accuracy on the forgotten instances (the first ``num_instances`` of
    ``data.forget_train``), on the rest of their class's training images (minus the ``trained_on`` images
    after the instances that the method fitted as retained data), on the class's test images, and on the
    other classes' test images."""
    c = data.class_id
    pred = predict(model, data.forget_train.images, device).argmax(1)
    hit = pred == c
    mask = test.labels == c
    te = predict(model, test.images, device).argmax(1) == test.labels
    return {"acc_instances": hit[:num_instances].float().mean().item(),
            "acc_class_rest_train": hit[num_instances + trained_on:].float().mean().item(),
            "acc_class_test": te[mask].float().mean().item(), "acc_other_test": te[~mask].float().mean().item()}


def forgetting_rate(acc_before: float, acc_after: float) -> float:
    """Relative accuracy drop on the forget data (1 = completely forgotten)."""
    return (acc_before - acc_after) / acc_before if acc_before > 0 else float("nan")


def retention_rate(acc_before: float, acc_after: float) -> float:
    """Accuracy after / before on retained data (1 = nothing lost)."""
    return acc_after / acc_before if acc_before > 0 else float("nan")
