"""The augmentation command: its file format is a data source, and bad input is refused cleanly."""

import json

import numpy as np
import torch

from gan_unlearn.data import load_dataset
from gan_unlearn.workflows.downstream import per_class_synthetic

from .test_cli import assert_clean_failure, listing, run


def test_augment_writes_a_labelled_npz_data_source(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt):
    out = tmp_path / "synth"
    result = run("augment", "--gan", tiny_gan_ckpt, "--oracle", tiny_oracle_ckpt, "--per-class", 3, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "manifest.json", "synthetic.npz"]
    with np.load(out / "synthetic.npz") as f:
        assert set(f.files) == {"x_train", "y_train", "num_classes"}  # a class left out stays a class
        assert int(f["num_classes"]) == 10
        x, y = f["x_train"], f["y_train"]
    assert x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == (28, 28, 1) and len(x) == len(y)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["images"] == len(x) and sum(manifest["per_class"]) == len(x)
    assert all(n <= 3 for n in manifest["per_class"]) and abs(sum(manifest["draw_share_per_class"]) - 1) < 1e-6
    data = load_dataset(f"npz:{out / 'synthetic.npz'}", "train")
    assert data.image_shape == (1, 28, 28) and len(data) == len(x)
    assert torch.equal(data.labels, torch.from_numpy(y))


def test_unlearned_class_is_left_out(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt):
    from gan_unlearn.checkpoint import load_checkpoint, restore_model, save_checkpoint
    from gan_unlearn.forget import ForgetRequest

    ckpt = load_checkpoint(tiny_gan_ckpt)
    ckpt["unlearning"] = {"request": ForgetRequest.for_class(2).describe(), "method": "cascaded", "seconds": 1.0}
    save_checkpoint(tmp_path / "u.pt", ckpt)
    result = run("augment", "--gan", tmp_path / "u.pt", "--oracle", tiny_oracle_ckpt, "--per-class", 2,
                 "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "oracle share of forgotten class 2 among all draws" in result.output
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["per_class"][2] == 0 and manifest["skipped_classes"] == [2]
    G = restore_model(ckpt, "generator")
    C = restore_model(load_checkpoint(tiny_oracle_ckpt), "classifier")
    data, stats = per_class_synthetic(G, C, 2, skip_classes=[2], seed=0)
    assert (data.labels != 2).all()


def test_bad_inputs(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt, data_root, cifar_npz):
    (tmp_path / "exists").mkdir()
    before = listing(tmp_path)
    assert_clean_failure(run("augment", "--gan", tiny_gan_ckpt, "--oracle", tiny_oracle_ckpt, "--per-class", 2,
                             "--out", tmp_path / "exists"), "already exists")
    assert_clean_failure(run("augment", "--gan", tiny_gan_ckpt, "--oracle", tiny_oracle_ckpt, "--per-class", 2,
                             "--out", tmp_path / "no" / "s"), "does not exist")
    assert_clean_failure(run("augment", "--gan", tiny_oracle_ckpt, "--oracle", tiny_oracle_ckpt, "--per-class", 2,
                             "--out", tmp_path / "s"), "a gan checkpoint is needed")
    assert_clean_failure(run("augment", "--gan", tiny_gan_ckpt, "--oracle", tiny_gan_ckpt, "--per-class", 2,
                             "--out", tmp_path / "s"), "a classifier checkpoint is needed")
    cifar_clf = tmp_path / "cifar_clf.pt"
    r = run("train-classifier", "--dataset", cifar_npz, "--data-root", data_root, "--limit", 256, "--epochs", 1,
            "--hidden", 8, "--quiet", "--out", cifar_clf)
    assert r.exit_code == 0, r.output
    assert_clean_failure(run("augment", "--gan", tiny_gan_ckpt, "--oracle", cifar_clf, "--per-class", 2,
                             "--out", tmp_path / "s"), "oracle was trained on npz:")
    assert_clean_failure(run("augment", "--gan", tiny_gan_ckpt, "--oracle", tiny_oracle_ckpt, "--per-class", 0,
                             "--out", tmp_path / "s"), "--per-class")
    assert listing(tmp_path) == sorted(before + ["cifar_clf.pt"])
