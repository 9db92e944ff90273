"""Membership attacks as the classifier unlearning papers report them (Fr and Fs).

- **Fr** (Chundawat et al., Tarun et al.): a linear SVM is trained on the ORIGINAL model's softmax outputs,
  the forgotten class's training images being members and its test images non-members; it is then applied
  to the UNLEARNED model's softmax outputs on the class's training images. Fr is the share of these true
  members that the attack now calls non-members (1: none is recognised as trained on; retraining reads
  about 1 too, since the retrained model never saw them).
- **Fs** (a loss-based attack, as in Foster et al.'s SSD evaluation): the unlearned model's per-sample loss
  on the class's training images (members) and test images (non-members), a logistic regression on it,
  k-fold cross-validated accuracy. 0.5 means the losses no longer tell members apart; report
  |accuracy - 0.5| beside retraining's.

The SVM is an L2-regularised squared-hinge linear SVM (the loss of liblinear's ``LinearSVC`` default), fitted
full-batch with L-BFGS in float64: squared hinge is smooth, so L-BFGS converges to the unique optimum
without a step-size schedule. Both attacks balance members and non-members by subsampling the larger set
(seeded), so chance is 0.5 and class imbalance cannot pose as membership signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from gan_unlearn.errors import UserError
from gan_unlearn.models import predict


@dataclass
class LinearModel:
    """w.x + b on features standardised with the training features' mean and std."""

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def decision(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """1 for the positive class (members), 0 otherwise."""
        return (self.decision(x) > 0).long()


def _check_xy(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise UserError(f"attack features must be (N, D) with N labels, got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(torch.unique(y)) != 2:
        raise UserError("an attack needs both members and non-members to train on")


def _fit_linear(x: torch.Tensor, y: torch.Tensor, loss: str, l2: float, max_iter: int = 200) -> LinearModel:
    _check_xy(x, y)
    x = x.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    z = (x - mean) / std
    sign = y.double() * 2 - 1
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        margin = sign * (z @ w + b)
        if loss == "squared_hinge":
            data = F.relu(1 - margin).pow(2).mean()
        else:  # logistic
            data = F.softplus(-margin).mean()
        objective = data + 0.5 * l2 * w.pow(2).sum()
        objective.backward()
        return objective

    opt.step(closure)
    return LinearModel(w.detach(), b.detach(), mean, std)


def fit_linear_svm(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-3) -> LinearModel:
    """L2-regularised squared-hinge linear SVM; ``y`` holds 1 (member) and 0 (non-member)."""
    return _fit_linear(x, y, "squared_hinge", l2)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-3) -> LinearModel:
    """L2-regularised logistic regression; ``y`` holds 1 and 0."""
    return _fit_linear(x, y, "logistic", l2)


def _balanced(a: torch.Tensor, b: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if len(a) == 0 or len(b) == 0:
        raise UserError(f"a membership attack needs members and non-members (got {len(a)} and {len(b)})")
    n = min(len(a), len(b))
    g = torch.Generator().manual_seed(seed)
    return a[torch.randperm(len(a), generator=g)[:n]], b[torch.randperm(len(b), generator=g)[:n]]


class FrAttack:
    """The Fr attack: fitted once on the original model's softmax outputs, then read on any model's."""

    def __init__(self, member_probs: torch.Tensor, non_member_probs: torch.Tensor, seed: int = 0, l2: float = 1e-3):
        m, n = _balanced(member_probs, non_member_probs, seed)
        self.svm = fit_linear_svm(torch.cat([m, n]), torch.cat([torch.ones(len(m)), torch.zeros(len(n))]).long(), l2)
        self.train_accuracy = (self.svm.predict(torch.cat([m, n])) ==
                               torch.cat([torch.ones(len(m)), torch.zeros(len(n))]).long()).double().mean().item()

    def rate(self, member_probs: torch.Tensor) -> float:
        """Fr: share of the (true) members that the attack calls non-members."""
        if len(member_probs) == 0:
            raise UserError("Fr needs at least one member sample")
        return (self.svm.predict(member_probs) == 0).double().mean().item()


def loss_attack_accuracy(member_losses: torch.Tensor, non_member_losses: torch.Tensor, folds: int = 5,
                         seed: int = 0) -> float:
    """Fs: k-fold cross-validated accuracy of a logistic regression on per-sample losses (balanced classes).

    The feature is log(loss): losses span orders of magnitude (1e-6 to 10), and a one-feature logistic
    regression is a threshold either way, so the monotone log only makes the fit well conditioned.
    """
    if folds < 2:
        raise UserError(f"cross-validation needs at least 2 folds, not {folds}")
    m, n = _balanced(member_losses.flatten(), non_member_losses.flatten(), seed)
    if len(m) < folds:
        raise UserError(f"{len(m)} samples per side are too few for {folds}-fold cross-validation")
    g = torch.Generator().manual_seed(seed + 1)
    # stratified folds: each fold takes every k-th member and every k-th non-member (after a seeded shuffle)
    m, n = m[torch.randperm(len(m), generator=g)], n[torch.randperm(len(n), generator=g)]
    x = torch.cat([m, n]).double().clamp_min(1e-12).log()[:, None]
    y = torch.cat([torch.ones(len(m)), torch.zeros(len(n))]).long()
    fold = torch.cat([torch.arange(len(m)) % folds, torch.arange(len(n)) % folds])
    correct = 0
    for k in range(folds):
        train, held = fold != k, fold == k
        if x[train].std() == 0:  # constant losses: the attack cannot do better than one guess
            correct += (y[held] == 1).sum().item() if (y[train] == 1).double().mean() >= 0.5 else (y[held] == 0).sum().item()
            continue
        model = fit_logistic(x[train], y[train])
        correct += (model.predict(x[held]) == y[held]).sum().item()
    return correct / len(y)


# --- model-level helpers -----------------------------------------------------------------------------------
def softmax_and_loss(model, images_uint8: torch.Tensor, labels: torch.Tensor, device="cpu",
                     batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax outputs and per-sample cross-entropy of ``model`` (eval mode) on uint8 images."""
    logits = predict(model, images_uint8, device, batch_size)
    return F.softmax(logits, 1), F.cross_entropy(logits, labels, reduction="none")


def membership_report(original, model, members, non_members, device="cpu", seed: int = 0,
                      fr_attack: FrAttack | None = None) -> dict:
    """Fr and Fs of ``model`` for a class: ``members`` are its training images, ``non_members`` its test
    images (ImageDatasets). ``fr_attack`` may be passed to reuse an attack fitted on ``original``."""
    return membership_report_from_logits(original, members, non_members,
                                         predict(model, members.images, device), members.labels,
                                         predict(model, non_members.images, device), non_members.labels,
                                         device, seed, fr_attack)


def membership_report_from_logits(original, members, non_members, logits_m, labels_m, logits_n, labels_n,
                                  device="cpu", seed: int = 0, fr_attack: FrAttack | None = None) -> dict:
    """``membership_report`` from the unlearned model's logits on the members and non-members, for callers
    that have them already."""
    if fr_attack is None:
        fr_attack = FrAttack(softmax_and_loss(original, members.images, members.labels, device)[0],
                             softmax_and_loss(original, non_members.images, non_members.labels, device)[0], seed)
    p_m, l_m = F.softmax(logits_m, 1), F.cross_entropy(logits_m, labels_m, reduction="none")
    l_n = F.cross_entropy(logits_n, labels_n, reduction="none")
    fs = loss_attack_accuracy(l_m, l_n, seed=seed)
    return {"fr": fr_attack.rate(p_m), "fs_accuracy": fs, "fs_gap": abs(fs - 0.5),
            "fr_attack_train_accuracy": fr_attack.train_accuracy}
