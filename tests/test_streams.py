"""Separate randomness by construction: no two consumers of latents share one, for any seed."""

import torch

from gan_unlearn.heldout import check_split, held_out_split, split_record
from gan_unlearn.models import Generator
from gan_unlearn.streams import STREAMS, generator, stream_seed

LATENT_CONSUMERS = ["unlearn.pool", "unlearn.steps", "unlearn.check", "unlearn.guard", "evaluate.latents",
                    "evaluate.beyond", "augment.latents"]


def test_streams_of_several_seeds_share_no_latent():
    G = Generator(28, 1, latent_dim=16, width=4)
    rows = {}
    for seed in range(5):
        for name in LATENT_CONSUMERS:
            for row in G.sample_latents(500, generator(seed, name)):
                key = tuple(row.tolist())
                assert key not in rows, f"{name} (seed {seed}) repeats a latent of {rows[key]}"
                rows[key] = (name, seed)
    assert len(rows) == 5 * len(LATENT_CONSUMERS) * 500


def test_the_old_overlap_is_gone():
    """Evaluation at seed 0 used to draw exactly the unlearning pool of seed 0."""
    G = Generator(28, 1, latent_dim=16, width=4)
    old_pool = G.sample_latents(100, torch.Generator().manual_seed(0))
    assert torch.equal(old_pool, G.sample_latents(100, torch.Generator().manual_seed(0)))  # the old way: equal
    assert not torch.equal(G.sample_latents(100, generator(0, "unlearn.pool")),
                           G.sample_latents(100, generator(0, "evaluate.latents")))
    assert len({stream_seed(s, n) for s in range(20) for n in STREAMS}) == 20 * len(STREAMS)


def test_the_held_out_split_is_disjoint_fixed_and_checked():
    for n in (10, 1017, 10000):
        split = held_out_split(n)
        stop, report = set(split["stop"].tolist()), set(split["report"].tolist())
        assert stop.isdisjoint(report) and stop | report == set(range(n))
        assert torch.equal(held_out_split(n)["stop"], split["stop"])  # the same split every time
    record = split_record(held_out_split(1000))
    check_split(record, held_out_split(1000), "x")
    other = split_record(held_out_split(1000, seed=1))
    try:
        check_split(other, held_out_split(1000), "x")
    except Exception as exc:
        assert "another held-out split" in str(exc)
    else:
        raise AssertionError("a checkpoint that stopped on another split was accepted")
