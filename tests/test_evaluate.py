"""gan-unlearn evaluate on a tiny MNIST GAN: report contents, the reference-statistics cache, bad input."""

import json

from gan_unlearn.checkpoint import load_checkpoint, save_checkpoint
from gan_unlearn.forget import ForgetRequest

from .test_cli import assert_clean_failure, listing, run


def test_evaluate_reports_every_number_with_its_variant(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt, data_root):
    args = ["evaluate", tiny_gan_ckpt, "--oracle", tiny_oracle_ckpt, "--forget-class", 4, "--samples", 300,
            "--downstream-samples", 200, "--data-root", data_root, "--quiet", "--out-dir", tmp_path]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert "computed and cached" in first.output
    second = run(*args)
    assert second.exit_code == 0 and "reused from cache" in second.output
    report = json.loads((tmp_path / "report.json").read_text())
    m = report["models"][0]["metrics"]
    assert m["fid"]["extractor"] == "classifier" and m["fid"]["samples"] == 300 and m["fid"]["seed"] == 0
    assert m["fid"]["weights_sha256"] and m["fid"]["value"] > 0
    assert 0 <= m["forget_rate"]["value"] <= 1 and m["forget_rate"]["class_id"] == 4
    assert sum(m["class_histogram"]["value"]) == 300
    assert 0 <= m["downstream_accuracy"]["value"] <= 1 and m["downstream_accuracy"]["train_samples"] == 200
    assert report["reference"]["classes"] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert (tmp_path / "report.md").read_text().startswith("| model |")
    assert (tmp_path / "gan_samples.png").exists()


def test_evaluate_items_needs_the_indices_and_checks_their_hash(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt, data_root):
    ckpt = load_checkpoint(tiny_gan_ckpt)
    ckpt["unlearning"] = {"request": ForgetRequest.for_items([1, 2, 3]).describe(), "method": "cascaded",
                          "seconds": 1.0}
    save_checkpoint(tmp_path / "u.pt", ckpt)
    out = tmp_path / "ev"
    out.mkdir()
    common = ["--oracle", tiny_oracle_ckpt, "--samples", 200, "--data-root", data_root, "--quiet", "--out-dir", out]
    assert_clean_failure(run("evaluate", tmp_path / "u.pt", *common), "pass --forget-items")
    assert_clean_failure(run("evaluate", tmp_path / "u.pt", "--forget-items", "1,2,4", *common),
                         "not the one a checkpoint was unlearned with")
    assert listing(out) == []
    ok = run("evaluate", tiny_gan_ckpt, tmp_path / "u.pt", "--forget-items", "1,2,3", *common)
    assert ok.exit_code == 0, ok.output
    report = json.loads((out / "report.json").read_text())
    item = report["models"][1]["metrics"]
    assert {"d_score", "membership_auc_d", "memorisation"} <= set(item)
    assert item["d_score"]["forgotten_items"] == 3 and 0 <= item["membership_auc_d"]["value"] <= 1
    assert report["models"][1]["method"] == "cascaded" and report["models"][0]["method"] == "original"


def test_evaluate_without_inception_weights_is_one_line(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt, data_root,
                                                        monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    out = tmp_path / "ev"
    out.mkdir()
    assert_clean_failure(run("evaluate", tiny_gan_ckpt, "--oracle", tiny_oracle_ckpt, "--extractor", "inception",
                             "--data-root", data_root, "--out-dir", out), "FID Inception weights not found")
    assert listing(out) == []
