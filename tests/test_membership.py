"""Membership AUC and nearest-sample memorisation against known answers."""

import pytest
import torch

from metrics.membership import auc, memorisation, nearest_sample_distances


def test_auc_is_about_half_for_one_distribution_and_one_for_separable_scores():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4000, generator=g), torch.randn(4000, generator=g)
    assert auc(a, b) == pytest.approx(0.5, abs=0.02)
    assert auc(a + 10, b) == 1.0
    assert auc(a - 10, b) == 0.0


def test_auc_matches_the_pairwise_definition_with_ties():
    pos = torch.tensor([0.3, 0.5, 0.5, 0.9])
    neg = torch.tensor([0.1, 0.5, 0.7])
    pairs = [(p > n) + 0.5 * (p == n) for p in pos.tolist() for n in neg.tolist()]
    assert auc(pos, neg) == pytest.approx(sum(pairs) / len(pairs))
    with pytest.raises(ValueError):
        auc(torch.tensor([]), neg)


def test_nearest_sample_distance_and_memorisation():
    samples = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    assert torch.allclose(nearest_sample_distances(torch.tensor([[1.0, 0.0], [10.0, 2.0]]), samples),
                          torch.tensor([1.0, 2.0]))
    g = torch.Generator().manual_seed(1)
    generated = torch.randn(500, 4, generator=g)
    copied = generated[:50] + 0.001  # forgotten items the generator reproduces
    unseen = torch.randn(50, 4, generator=g)
    m = memorisation(copied, unseen, generated)
    assert m["nn_distance_forgotten"] < m["nn_distance_held_out"] and m["nn_auc"] > 0.95
    fresh = memorisation(torch.randn(50, 4, generator=g), unseen, generated)
    assert 0.3 < fresh["nn_auc"] < 0.7
