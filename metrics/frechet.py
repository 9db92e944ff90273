"""Fréchet distance between Gaussian fits of two feature sets, in float64.

Statistics are accumulated in a stream (sums in float64), so any number of samples fits in memory and
the result does not depend on the batch size. The matrix square root uses symmetric eigendecompositions:
tr(sqrt(S1 S2)) = sum of sqrt(eig(A S2 A)) with A = S1^(1/2), which is real and stable for
positive semi-definite inputs (no complex parts to discard, no deprecated SciPy arguments).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch


class FIDWarning(UserWarning):
    """A FID value that is computed but not trustworthy (for example, too few samples)."""


@dataclass
class GaussianStats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int


class StreamingStats:
    """Running float64 sums of features and their outer products."""

    def __init__(self, dim: int):
        self.n, self.sum = 0, torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, features: torch.Tensor) -> None:
        f = features.detach().to("cpu", torch.float64).flatten(1)
        self.n += len(f)
        self.sum += f.sum(0)
        self.outer += f.T @ f

    def finalize(self) -> GaussianStats:
        if self.n < 2:
            raise ValueError("FID needs at least 2 samples")
        mu = self.sum / self.n
        sigma = (self.outer - self.n * torch.outer(mu, mu)) / (self.n - 1)
        if self.n < len(mu):
            warnings.warn(f"FID from {self.n} samples with {len(mu)}-d features: the covariance is rank-deficient "
                          "and the value is biased; use more samples than feature dimensions", FIDWarning, stacklevel=2)
        return GaussianStats(mu.numpy(), sigma.numpy(), self.n)


def stats_of(features: torch.Tensor) -> GaussianStats:
    s = StreamingStats(features.shape[1])
    s.update(features)
    return s.finalize()


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrtm(sigma1 @ sigma2)) for symmetric positive semi-definite matrices."""
    a = _sqrt_psd(sigma1)
    m = a @ sigma2 @ a
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr(sqrt(S_a S_b)), in float64."""
    mu1, mu2 = np.asarray(a.mu, np.float64), np.asarray(b.mu, np.float64)
    s1, s2 = np.asarray(a.sigma, np.float64), np.asarray(b.sigma, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2))
    return max(value, 0.0)
