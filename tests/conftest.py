"""Shared fixtures: the real data in ../shared/datasets (or $GAN_UNLEARN_DATA) and tiny trained models.

Integration tests use the real data at small scale; a missing data folder is an error, not a skip.
"""

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    root = Path(os.environ.get("GAN_UNLEARN_DATA", REPO.parent / "shared" / "datasets")).resolve()
    if not (root / "MNIST" / "raw").is_dir():
        raise RuntimeError(f"test data not found under {root}: set GAN_UNLEARN_DATA to the shared datasets folder")
    return root


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _data_root()


@pytest.fixture(scope="session")
def cifar_npz(data_root) -> str:
    return f"npz:{data_root / 'cifar10_subset.npz'}"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Nothing a test does may write into the user's cache; each session gets its own."""
    monkeypatch.setenv("GAN_UNLEARN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _bf16_measures_faster(monkeypatch):
    """``auto`` on a CPU with native bf16 times bf16 against fp32 (runtime.measured_bf16); tests get a fixed
    answer, bf16 faster, so they mean the same on every machine. tests/test_precision.py tests the probe."""
    from gan_unlearn import runtime

    monkeypatch.setattr(runtime, "measured_bf16", lambda key: (True, "test stand-in: bf16 measured faster"))


@pytest.fixture(scope="session")
def mnist_train(data_root):
    from gan_unlearn.data import load_dataset

    return load_dataset("mnist", "train", data_root)


@pytest.fixture(scope="session")
def mnist_test(data_root):
    from gan_unlearn.data import load_dataset

    return load_dataset("mnist", "test", data_root)


@pytest.fixture(scope="session")
def tiny_gan_ckpt(tmp_path_factory, data_root):
    """A tiny DCGAN (width 8) trained one epoch on the first 512 MNIST images."""
    from gan_unlearn.data import load_dataset
    from trainers.gan import GANConfig, train_gan

    out = tmp_path_factory.mktemp("tiny_gan") / "gan.pt"
    data = load_dataset("mnist[:512]", "train", data_root)
    train_gan(data, GANConfig(epochs=1, batch_size=32, width=8, seed=0), torch.device("cpu"), out,
              show_progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_oracle_ckpt(tmp_path_factory, data_root):
    """A small classifier trained two epochs on 6,000 MNIST images (about 95% test accuracy)."""
    from gan_unlearn.data import load_dataset
    from trainers.classifier import ClassifierConfig, train_classifier

    out = tmp_path_factory.mktemp("tiny_oracle") / "oracle.pt"
    data = load_dataset("mnist[:6000]", "train", data_root)
    test = load_dataset("mnist", "test", data_root).subset(range(2000))
    train_classifier(data, ClassifierConfig(epochs=2, hidden=128, seed=0), torch.device("cpu"), out,
                     test_set=test, show_progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_judge_ckpt(tmp_path_factory, data_root):
    """An independent judge: another seed, another width and other images than the tiny oracle."""
    from gan_unlearn.data import load_dataset
    from trainers.classifier import ClassifierConfig, train_classifier

    out = tmp_path_factory.mktemp("tiny_judge") / "judge.pt"
    data = load_dataset("mnist", "train", data_root).subset(range(6000, 10000))
    train_classifier(data, ClassifierConfig(epochs=1, hidden=32, seed=7), torch.device("cpu"), out,
                     show_progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_gan_top_class(tiny_gan_ckpt, tiny_oracle_ckpt):
    """The class the tiny GAN generates most often (by the tiny oracle): one it can be asked to forget."""
    from gan_unlearn.checkpoint import load_checkpoint, restore_model
    from metrics.forgetting import class_histogram

    G = restore_model(load_checkpoint(tiny_gan_ckpt), "generator")
    C = restore_model(load_checkpoint(tiny_oracle_ckpt), "classifier")
    return int(class_histogram(G, C, 1000).argmax())


@pytest.fixture(scope="module")
def tiny_unlearning_inputs(tiny_gan_ckpt, tiny_oracle_ckpt, data_root):
    """What an unlearning method takes, tiny: G and D of the tiny GAN, the tiny oracle, the GAN's 512 training
    images and MNIST's test split (held-out images). Per module, so that no module sees another's changes."""
    from gan_unlearn.checkpoint import load_checkpoint, restore_model
    from gan_unlearn.data import load_dataset

    ck = load_checkpoint(tiny_gan_ckpt)
    return (restore_model(ck, "generator"), restore_model(ck, "discriminator"),
            restore_model(load_checkpoint(tiny_oracle_ckpt), "classifier"),
            load_dataset("mnist[:512]", "train", data_root), load_dataset("mnist", "test", data_root))
