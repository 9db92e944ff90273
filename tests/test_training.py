"""Trainers on real MNIST at small scale: resume equals an uninterrupted run, metadata is complete."""

import pytest
import torch

from gan_unlearn.checkpoint import load_checkpoint
from gan_unlearn.data import load_dataset
from trainers.classifier import ClassifierConfig, accuracy, train_classifier
from trainers.gan import GANConfig, train_gan
from trainers.loop import TrainingInterrupted, resume_path

CPU = torch.device("cpu")


def _same_weights(a: dict, b: dict):
    for role in a["models"]:
        sa, sb = a["models"][role]["state"], b["models"][role]["state"]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{role}.{k} differs"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gan_resume_gives_the_same_final_weights(tmp_path, data_root, precision):
    data = load_dataset("mnist[:192]", "train", data_root)
    config = GANConfig(epochs=2, batch_size=32, width=8, precision=precision, seed=7)
    full = train_gan(data, config, CPU, tmp_path / "full.pt", show_progress=False)
    out = tmp_path / "resumed.pt"
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train_gan(data, config, CPU, out, show_progress=False, stop_after_steps=8, checkpoint_every=3)
    assert resume_path(out).exists() and not out.exists()  # mid-epoch 2, nothing final written
    resumed = train_gan(data, config, CPU, out, show_progress=False, resume=True)
    assert not resume_path(out).exists()
    assert resumed["metrics"]["resumed"] and resumed["metrics"]["steps"] == full["metrics"]["steps"] == 12
    _same_weights(full, resumed)
    _same_weights(full, load_checkpoint(out))
    for a, b in zip(full["history"], resumed["history"], strict=True):  # the interrupted epoch's loss means too
        assert (a["epoch"], a["loss_d"], a["loss_g"]) == pytest.approx((b["epoch"], b["loss_d"], b["loss_g"]))


def test_resume_with_other_settings_is_refused(tmp_path, data_root):
    data = load_dataset("mnist[:128]", "train", data_root)
    out = tmp_path / "g.pt"
    with pytest.raises(TrainingInterrupted):
        train_gan(data, GANConfig(epochs=1, batch_size=32, width=8), CPU, out, show_progress=False,
                  stop_after_steps=2)
    with pytest.raises(Exception, match="other settings.*lr"):
        train_gan(data, GANConfig(epochs=1, batch_size=32, width=8, lr=1e-3), CPU, out, show_progress=False,
                  resume=True)


def test_classifier_resume_gives_the_same_final_weights(tmp_path, data_root):
    data = load_dataset("mnist[:600]", "train", data_root)
    config = ClassifierConfig(epochs=2, batch_size=100, hidden=32, seed=1)  # dropout exercises the RNG state
    full = train_classifier(data, config, CPU, tmp_path / "full.pt", show_progress=False)
    with pytest.raises(TrainingInterrupted):
        train_classifier(data, config, CPU, tmp_path / "r.pt", show_progress=False, stop_after_steps=4)
    resumed = train_classifier(data, config, CPU, tmp_path / "r.pt", show_progress=False, resume=True)
    _same_weights(full, resumed)


def test_gan_checkpoint_metadata_and_sample_grid(tiny_gan_ckpt, tmp_path, data_root):
    ckpt = load_checkpoint(tiny_gan_ckpt, kind="gan")
    assert ckpt["dataset"]["name"] == "mnist[:512]" and ckpt["dataset"]["size"] == 512
    assert ckpt["dataset"]["train_hash"] == load_dataset("mnist[:512]", "train", data_root).content_hash()
    assert ckpt["config"]["lr"] == 2e-4 and ckpt["config"]["beta1"] == 0.5 and ckpt["seed"] == 0
    assert {"torch", "numpy", "gan_unlearn", "python"} <= set(ckpt["versions"])
    assert ckpt["lineage"][0]["event"] == "train-gan"
    assert ckpt["metrics"]["steps"] == 16 and ckpt["metrics"]["train_seconds"] > 0
    data = load_dataset("mnist[:64]", "train", data_root)
    samples = tmp_path / "s.png"
    train_gan(data, GANConfig(epochs=1, batch_size=32, width=4), CPU, tmp_path / "g.pt", show_progress=False,
              samples_path=samples)
    from PIL import Image

    assert Image.open(samples).size == (8 * 30 + 2, 8 * 30 + 2)


def test_oracle_learns_real_mnist(tiny_oracle_ckpt, mnist_test):
    from gan_unlearn.checkpoint import restore_model

    ckpt = load_checkpoint(tiny_oracle_ckpt, kind="classifier")
    model = restore_model(ckpt, "classifier")
    assert ckpt["metrics"]["test_accuracy"] > 0.9
    assert accuracy(model, mnist_test.subset(range(2000)), CPU) == pytest.approx(ckpt["metrics"]["test_accuracy"],
                                                                                 abs=1e-6)


def test_discriminator_batchnorm_recalibration_averages_mixed_batch_statistics(data_root):
    from gan_unlearn.models import Discriminator, Generator
    from trainers.gan import recalibrate_discriminator

    torch.manual_seed(0)
    data = load_dataset("mnist[:256]", "train", data_root)
    G, D = Generator(28, 1, latent_dim=8, width=4), Discriminator(28, 1, width=4)
    bn = D.net[3]
    seen = []
    handle = bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().mean((0, 2, 3))))
    D.eval()
    recalibrate_discriminator(D, G, data, CPU, seed=1, batches=5, batch_size=16)
    handle.remove()
    assert len(seen) == 5
    torch.testing.assert_close(bn.running_mean, torch.stack(seen).mean(0))  # cumulative average of batch means
    assert bn.momentum == 0.1 and not D.training and G.training  # settings and modes restored
