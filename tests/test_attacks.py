"""Fr and Fs membership attacks: constructed cases with known answers, then a tiny model that memorised its
training images against one that never saw them."""

import pytest
import torch
from torch.nn import functional as F

from gan_unlearn.errors import UserError
from metrics.attacks import FrAttack, fit_linear_svm, loss_attack_accuracy, membership_report


def test_svm_separates_separable_points_and_matches_the_known_boundary():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=g)
    x = x[(x[:, 0] - x[:, 1]).abs() > 0.3]  # a margin around the line x0 = x1
    y = (x[:, 0] > x[:, 1]).long()
    svm = fit_linear_svm(x, y, l2=1e-4)
    assert (svm.predict(x) == y).all()
    w = svm.weight / svm.std  # back in the raw coordinates: parallel to (1, -1)
    assert torch.allclose(w / w.norm(), torch.tensor([1.0, -1.0], dtype=torch.float64) / 2 ** 0.5, atol=0.05)


def _probs(p_class: float, n: int, num_classes: int = 10, class_id: int = 3, noise: float = 0.01, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    p = torch.full((n, num_classes), (1 - p_class) / (num_classes - 1))
    p[:, class_id] = p_class
    p = (p + noise * torch.rand(n, num_classes, generator=g)).clamp_min(0)
    return p / p.sum(1, keepdim=True)


def test_fr_known_answers():
    # original: members confident (0.99), non-members less so (0.6): a separable, known attack
    attack = FrAttack(_probs(0.99, 300, seed=1), _probs(0.6, 100, seed=2))
    assert attack.train_accuracy == 1.0
    assert attack.rate(_probs(0.99, 200, seed=3)) == 0.0  # nothing forgotten: every member still a member
    assert attack.rate(_probs(0.05, 200, seed=4)) == 1.0  # the class forgotten: every member looks unseen


def test_fs_known_answers():
    g = torch.Generator().manual_seed(0)
    members = torch.rand(200, generator=g) * 1e-3  # memorised: near-zero loss
    non_members = 0.5 + torch.rand(300, generator=g)
    assert loss_attack_accuracy(members, non_members) == 1.0
    same = torch.full((200,), 0.7)  # identical losses: nothing to tell apart, exactly chance
    assert loss_attack_accuracy(same, same.clone()) == 0.5
    # same distribution: close to chance
    a, b = torch.rand(500, generator=g), torch.rand(500, generator=g)
    assert abs(loss_attack_accuracy(a, b) - 0.5) < 0.06


def test_attack_input_errors():
    with pytest.raises(UserError, match="members and non-members"):
        loss_attack_accuracy(torch.rand(10), torch.empty(0))
    with pytest.raises(UserError, match="at least 2 folds"):
        loss_attack_accuracy(torch.rand(10), torch.rand(10), folds=1)
    with pytest.raises(UserError, match="both members and non-members"):
        fit_linear_svm(torch.rand(10, 2), torch.ones(10, dtype=torch.long))


def _mlp_trained_on(images, labels, steps, seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = images.float() / 127.5 - 1
    for _ in range(steps):
        loss = F.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_memorising_model_is_caught_and_unseen_model_is_not(mnist_train, mnist_test):
    """MLPs fitted hard to 150 training images, 50 of them of class 3. Members: those 100; non-members: class
    3's test images. The model that trained on them is caught by the loss attack (Fs far from 0.5) and keeps
    its members (Fr low when read on itself); a model trained the same way on other images reads near chance
    (Fs) and has the members called non-members (Fr high)."""

    def split(ds, offset):
        threes = (ds.labels == 3).nonzero().flatten()[offset:offset + 50]
        others = (ds.labels != 3).nonzero().flatten()[offset * 2:offset * 2 + 100]
        return ds.subset(threes), ds.subset(torch.cat([threes, others]))

    members, train_a = split(mnist_train, 0)
    _, train_b = split(mnist_train, 500)
    non_members = mnist_test.subset((mnist_test.labels == 3).nonzero().flatten()[:150])
    memorised = _mlp_trained_on(train_a.images, train_a.labels, 300, seed=0)
    unseen = _mlp_trained_on(train_b.images, train_b.labels, 300, seed=0)
    r_mem = membership_report(memorised, memorised, members, non_members)
    r_unseen = membership_report(memorised, unseen, members, non_members)
    # measured: Fs 0.72 vs 0.60 (50 per side, so +-0.05 is sampling noise), Fr 0.04 vs 0.26
    assert r_mem["fs_accuracy"] > 0.65 and r_unseen["fs_gap"] < 0.15, (r_mem, r_unseen)
    assert r_mem["fs_accuracy"] > r_unseen["fs_accuracy"] + 0.05
    assert r_mem["fr"] < 0.1 and r_unseen["fr"] > r_mem["fr"] + 0.15, (r_mem, r_unseen)
