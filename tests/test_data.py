import numpy as np
import pytest
import torch

from gan_unlearn.data import load_dataset, to_float, to_uint8
from gan_unlearn.errors import UserError


def test_mnist_from_shared_folder(mnist_train, mnist_test):
    assert len(mnist_train) == 60000 and len(mnist_test) == 10000
    assert mnist_train.image_shape == (1, 28, 28)
    assert mnist_train.num_classes == 10
    assert sorted(mnist_train.labels.unique().tolist()) == list(range(10))
    x = mnist_train.batch(torch.arange(8))
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1 and x.min() == -1


def test_cifar_subset_npz(cifar_npz, data_root):
    train = load_dataset(cifar_npz, "train", data_root)
    test = load_dataset(cifar_npz, "test", data_root)
    assert (len(train), len(test)) == (8068, 1017)
    assert train.image_shape == (3, 32, 32) and train.num_classes == 10
    raw = np.load(data_root / "cifar10_subset.npz")
    assert torch.equal(train.images[5], torch.from_numpy(raw["x_train"][5]).permute(2, 0, 1))  # HWC -> CHW
    # relative to the data root works too
    assert len(load_dataset("npz:cifar10_subset.npz", "test", data_root)) == 1017


def test_limited_name_takes_the_first_images(data_root, mnist_train):
    part = load_dataset("mnist[:100]", "train", data_root)
    assert len(part) == 100 and part.name == "mnist[:100]"
    assert torch.equal(part.images, mnist_train.images[:100])
    assert len(load_dataset("mnist[:100]", "test", data_root)) == 10000  # limits apply to training only


def test_scaling_round_trip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    f = to_float(x)
    assert f.min() == -1 and f.max() == 1
    assert torch.equal(to_uint8(f), x)


def test_user_npz_grayscale_and_content_hash(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    y = np.arange(20) % 4
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    ds = load_dataset(f"npz:{tmp_path / 'mine.npz'}", "train")
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 4
    assert ds.content_hash() == load_dataset(f"npz:{tmp_path / 'mine.npz'}", "train").content_hash()
    assert ds.content_hash() != ds.subset(range(19)).content_hash()


@pytest.mark.parametrize("name,message", [
    ("imagenet", "unknown dataset 'imagenet'"),
    ("npz:/nowhere/x.npz", "npz file not found"),
])
def test_bad_dataset_names(name, message, tmp_path):
    with pytest.raises(UserError, match=message):
        load_dataset(name, "train", tmp_path)


def test_missing_torchvision_data_offline_names_the_fix(tmp_path):
    with pytest.raises(UserError, match=r"mnist not found under .*--data-root.*--download"):
        load_dataset("mnist", "train", tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing written into the root


def test_bad_npz_contents(tmp_path):
    np.savez(tmp_path / "float.npz", x=np.zeros((3, 8, 8, 3), np.float32), y=np.zeros(3, int))
    with pytest.raises(UserError, match="must be uint8"):
        load_dataset(f"npz:{tmp_path / 'float.npz'}")
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="holds no train split"):
        load_dataset(f"npz:{tmp_path / 'nolabels.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(UserError, match="cannot read npz"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
