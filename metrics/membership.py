"""Membership evidence: AUC of a score that separates members from non-members, and the nearest
generated sample of each forgotten item against the same for held-out images."""

from __future__ import annotations

import torch

from gan_unlearn.neighbours import nearest_neighbours


def auc(member_scores, nonmember_scores) -> float:
    """P(score of a member > score of a non-member), ties counting half (Mann-Whitney U / (n m))."""
    pos = torch.as_tensor(member_scores, dtype=torch.float64).flatten()
    neg = torch.as_tensor(nonmember_scores, dtype=torch.float64).flatten()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUC needs at least one member and one non-member score")
    both = torch.cat([pos, neg])
    order = both.argsort()
    ranks = torch.empty_like(both)
    ranks[order] = torch.arange(1, len(both) + 1, dtype=torch.float64)
    sorted_vals = both[order]
    # average ranks over ties
    unique, inverse, counts = torch.unique(sorted_vals, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks[order] = mean_rank[inverse]
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def nearest_sample_distances(queries: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """Euclidean distance from each query (flattened) to its nearest sample."""
    q, s = queries.flatten(1).float(), samples.flatten(1).float()
    idx = nearest_neighbours(q, s)[:, 0]
    return (q - s[idx]).norm(dim=1)


def memorisation(forgotten_feats, held_out_feats, generated_feats) -> dict:
    """How much closer the generator comes to forgotten items than to unseen ones.

    ``auc`` is the membership AUC of -distance: 0.5 means the forgotten items look like unseen images.
    """
    d_forget = nearest_sample_distances(forgotten_feats, generated_feats)
    d_held = nearest_sample_distances(held_out_feats, generated_feats)
    return {"nn_distance_forgotten": d_forget.mean().item(), "nn_distance_held_out": d_held.mean().item(),
            "nn_auc": auc(-d_forget, -d_held)}
