"""FID against closed forms, batch-size independence, the reference cache, and the extractors."""

import warnings

import numpy as np
import pytest
import torch

from gan_unlearn.errors import UserError
from gan_unlearn.models import Classifier, Generator
from metrics.extractors import ClassifierFeatures, FeatureExtractor
from metrics.fid import dataset_statistics, fid, generated_statistics, reference_statistics
from metrics.frechet import FIDWarning, GaussianStats, StreamingStats, frechet_distance, stats_of, trace_sqrt_product


def _gaussian(n, mean, cov_sqrt, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(mean), generator=g, dtype=torch.float64) @ cov_sqrt.double().T + mean.double()


def test_equal_covariances_give_squared_mean_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    sigma = a @ a.T + np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    d = frechet_distance(GaussianStats(mu1, sigma, 10), GaussianStats(mu2, sigma, 10))
    assert d == pytest.approx(float(((mu1 - mu2) ** 2).sum()), rel=1e-9, abs=1e-9)


def test_closed_form_for_commuting_covariances():
    # diagonal covariances: FID = |mu1-mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, 2.0])
    expected = 5.0 + float(((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum())
    d = frechet_distance(GaussianStats(mu1, np.diag(s1), 10), GaussianStats(mu2, np.diag(s2), 10))
    assert d == pytest.approx(expected, rel=1e-12)


def test_trace_sqrt_matches_eigen_reference_for_non_commuting_matrices():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T, b @ b.T
    reference = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(0)).sum()  # eigenvalues of S1 S2 are real, >= 0
    assert trace_sqrt_product(s1, s2) == pytest.approx(reference, rel=1e-8)


def test_identical_sets_give_zero_and_sample_estimates_converge():
    x = _gaussian(4000, torch.zeros(4), torch.eye(4), 0)
    assert frechet_distance(stats_of(x), stats_of(x)) == pytest.approx(0, abs=1e-8)
    y = _gaussian(4000, torch.tensor([1.0, 0, 0, 0]), torch.eye(4), 1)
    assert frechet_distance(stats_of(x), stats_of(y)) == pytest.approx(1.0, abs=0.1)


def test_streaming_statistics_match_numpy_and_do_not_depend_on_batching():
    x = _gaussian(1000, torch.arange(5.0), torch.eye(5) * 2, 3)
    whole = stats_of(x)
    parts = StreamingStats(5)
    for chunk in x.split(37):
        parts.update(chunk)
    parts = parts.finalize()
    np.testing.assert_allclose(whole.mu, x.mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(whole.sigma, np.cov(x.numpy(), rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(parts.sigma, whole.sigma, rtol=1e-10, atol=1e-12)


def test_warning_when_fewer_samples_than_dimensions():
    with pytest.warns(FIDWarning, match="rank-deficient"):
        stats_of(torch.randn(5, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats_of(torch.randn(20, 10))


class _Pixels(FeatureExtractor):
    """4x4-pooled pixels: 49-d features, few enough for small test samples."""

    name, dim = "pixels", 49

    def features(self, images):
        return torch.nn.functional.avg_pool2d(images, 4).flatten(1)


def test_fid_is_independent_of_the_evaluation_batch_size():
    G = Generator(28, 1, latent_dim=8, width=4)
    C = Classifier(28, 1, hidden=32)
    ext = ClassifierFeatures(C)
    ref = stats_of(torch.randn(200, 32).abs())
    a = fid(G, ext, ref, num_samples=300, seed=1, batch_size=300)
    b = fid(G, ext, ref, num_samples=300, seed=1, batch_size=7)
    assert a == pytest.approx(b, rel=1e-9)
    assert fid(G, ext, ref, num_samples=300, seed=2) != pytest.approx(a, rel=1e-9)


def test_reference_statistics_are_cached_under_a_complete_key(mnist_test):
    ext = _Pixels()
    data = mnist_test.subset(range(300))
    s1, cached1 = reference_statistics(data, ext, classes=[0, 1, 2])
    s2, cached2 = reference_statistics(data, ext, classes=[0, 1, 2])
    s3, cached3 = reference_statistics(data, ext, classes=[0, 1])
    assert (cached1, cached2, cached3) == (False, True, False)
    np.testing.assert_array_equal(s1.sigma, s2.sigma)
    assert not np.allclose(s1.mu, s3.mu)
    direct = dataset_statistics(data.subset(torch.isin(data.labels, torch.tensor([0, 1, 2])).nonzero().flatten()), ext)
    np.testing.assert_allclose(s1.mu, direct.mu)


def test_generated_statistics_are_seeded():
    G = Generator(28, 1, latent_dim=8, width=4)
    a = generated_statistics(G, _Pixels(), 50, seed=0)
    b = generated_statistics(G, _Pixels(), 50, seed=0)
    np.testing.assert_array_equal(a.mu, b.mu)


def test_mismatched_dimensions_are_refused():
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(GaussianStats(np.zeros(2), np.eye(2), 2), GaussianStats(np.zeros(3), np.eye(3), 2))


def test_user_error_type_is_shared():
    assert issubclass(UserError, Exception)
