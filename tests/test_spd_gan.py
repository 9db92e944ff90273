"""SPD-GAN: the perturbation bound holds by construction, kept samples lie inside the stated band (checked
here independently of spd_samples' own checks), the band's scale has a closed form, bad input fails."""

import pytest
import torch

from gan_unlearn.checkpoint import load_checkpoint, restore_model
from gan_unlearn.data import to_float
from gan_unlearn.errors import UserError
from trainers.spd_gan import (PerturbationGenerator, SPDBand, SPDConfig, median_nn_distance, spd_samples,
                              train_spd_gan)


@pytest.fixture(scope="module")
def trained(mnist_train):
    return train_spd_gan(mnist_train.subset(range(512)), SPDConfig(steps=60, width=16, seed=0))


def test_median_nearest_neighbour_distance_closed_form():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])  # nearest-neighbour distances 1, 1, 2, 4
    assert median_nn_distance(points) == pytest.approx(1.0)  # torch's median: the lower middle value
    assert median_nn_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)


def test_no_pixel_moves_beyond_eps(trained):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=g) * 2 - 1
    z = torch.randn(64, trained.noise_dim, generator=g) * 10  # large latents: tanh saturates, the bound still holds
    for G in (trained, PerturbationGenerator(1, 8, 8, eps=0.1)):
        with torch.no_grad():
            out = G(x, z)
        assert (out - x).abs().max() <= G.eps + 1e-6 and out.min() >= -1 and out.max() <= 1


def test_kept_samples_lie_in_the_stated_band(trained, tiny_oracle_ckpt, mnist_train):
    judge = restore_model(load_checkpoint(tiny_oracle_ckpt), "classifier").eval()
    source = mnist_train.subset(range(10000, 10300))  # images the SPD-GAN never trained on
    band = SPDBand()
    kept, record = spd_samples(trained, source, judge, band, seed=1)
    assert record["acceptance_rate"] > 0.3, record  # most samples of a trained generator fall in the band
    assert len(kept) == record["accepted"] > 0
    idx = record["source_index"]
    x, xp = to_float(source.images[idx]), to_float(kept.images)
    diff = (xp - x).flatten(1)
    assert diff.abs().max() <= band.eps + 1e-6
    assert (diff.pow(2).mean(1).sqrt() >= band.min_rms).all()  # new samples, not copies of their sources
    with torch.no_grad():
        assert (judge(xp).argmax(1) == kept.labels).all()
        for c in kept.labels.unique().tolist():
            real = judge.features(to_float(source.images[source.labels == c])).double()
            d = torch.cdist(real, real) + torch.diag(torch.full((len(real),), float("inf"), dtype=torch.float64))
            scale = d.min(1).values.median()
            mine = kept.labels == c
            dist = (judge.features(xp[mine]).double() - judge.features(x[mine]).double()).norm(dim=1)
            assert (dist <= band.feature_ratio * scale + 1e-6).all()
    again, _ = spd_samples(trained, source, judge, band, seed=1, batch_size=77)  # seeded, batch-size independent
    assert torch.equal(again.images, kept.images)


def test_bad_input():
    with pytest.raises(UserError, match="eps must be in"):
        PerturbationGenerator(eps=0)
    with pytest.raises(UserError, match="below the generator's bound"):
        spd_samples(PerturbationGenerator(eps=0.3), None, None, SPDBand(eps=0.1))
    with pytest.raises(UserError, match="at least two"):
        median_nn_distance(torch.zeros(1, 3))
