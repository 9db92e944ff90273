"""Inception and LPIPS weights: found in the torch hub cache or at an explicit path (stand-in weights of
the real shapes here), never downloaded, and a clear error without them."""

import pytest
import torch

from gan_unlearn.errors import UserError
from metrics.extractors import INCEPTION_FILENAME, InceptionFeatures, fid_inception_skeleton
from metrics.perceptual import BACKBONE_FILES, LPIPS


@pytest.fixture(scope="module")
def inception_standin(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "standin_inception.pth"
    torch.manual_seed(0)
    torch.save(fid_inception_skeleton().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def alexnet_standin(tmp_path_factory):
    import torchvision

    path = tmp_path_factory.mktemp("weights") / "standin_alexnet.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def test_inception_from_explicit_path_gives_2048_features(inception_standin, empty_hub):
    ext = InceptionFeatures(weights=inception_standin)
    feats = ext(torch.rand(2, 1, 28, 28) * 2 - 1)  # grayscale is repeated to RGB
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
    assert not ext.model.training
    assert ext.describe()["weights_sha256"] and ext.describe()["extractor"] == "inception"


def test_inception_from_hub_cache(inception_standin, empty_hub):
    (empty_hub / "checkpoints").mkdir(parents=True)
    (empty_hub / "checkpoints" / INCEPTION_FILENAME).write_bytes(inception_standin.read_bytes())
    feats = InceptionFeatures()(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert feats.shape == (1, 2048)


def test_inception_missing_or_wrong_weights(empty_hub, tmp_path, alexnet_standin):
    with pytest.raises(UserError, match=f"--inception-weights PATH or put {INCEPTION_FILENAME} into"):
        InceptionFeatures()
    with pytest.raises(UserError, match="not found at"):
        InceptionFeatures(weights=tmp_path / "nope.pth")
    with pytest.raises(UserError, match="does not hold FID InceptionV3 weights"):
        InceptionFeatures(weights=alexnet_standin)


def test_lpips_zero_for_identical_and_symmetric(alexnet_standin, empty_hub, recwarn):
    metric = LPIPS("alex", backbone=alexnet_standin)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1, torch.rand(3, 1, 28, 28, generator=g) * 2 - 1
    assert torch.allclose(metric(x, x), torch.zeros(3), atol=1e-6)
    assert torch.allclose(metric(x, y), metric(y, x), atol=1e-6)
    assert (metric(x, y) > 0).all()
    assert not [w for w in recwarn.list if issubclass(w.category, (DeprecationWarning, UserWarning))]


def test_lpips_from_hub_cache_and_missing(alexnet_standin, empty_hub):
    with pytest.raises(UserError, match="--lpips-backbone PATH or put alexnet-owt-7be5be79.pth into"):
        LPIPS("alex")
    (empty_hub / "checkpoints").mkdir(parents=True)
    (empty_hub / "checkpoints" / BACKBONE_FILES["alex"]).write_bytes(alexnet_standin.read_bytes())
    assert LPIPS("alex")(torch.zeros(1, 3, 32, 32), torch.ones(1, 3, 32, 32)).item() > 0
    with pytest.raises(UserError, match="unknown LPIPS backbone"):
        LPIPS("resnet")
