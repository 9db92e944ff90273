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
    assert report["reference"]["oracle"]["classes"] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert (tmp_path / "report.md").read_text().startswith("| model |")
    assert (tmp_path / "gan_samples.png").exists()


def test_evaluate_items_needs_the_indices_and_checks_their_commitment(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt,
                                                                     data_root):
    from gan_unlearn.forget import new_secret

    secret = new_secret()
    (tmp_path / "u.secret").write_text(secret.hex() + "\n")
    ckpt = load_checkpoint(tiny_gan_ckpt)
    ckpt["unlearning"] = {"request": ForgetRequest.for_items([1, 2, 3]).describe(secret), "method": "cascaded",
                          "seconds": 1.0}
    save_checkpoint(tmp_path / "u.pt", ckpt)
    out = tmp_path / "ev"
    out.mkdir()
    common = ["--oracle", tiny_oracle_ckpt, "--samples", 200, "--data-root", data_root, "--quiet", "--out-dir", out]
    assert_clean_failure(run("evaluate", tmp_path / "u.pt", *common), "pass --forget-items")
    assert_clean_failure(run("evaluate", tmp_path / "u.pt", "--forget-items", "1,2,4", "--request-secret",
                             tmp_path / "u.secret", *common), "not the one the checkpoint was unlearned with")
    assert listing(out) == []
    ok = run("evaluate", tiny_gan_ckpt, tmp_path / "u.pt", "--forget-items", "1,2,3", "--request-secret",
             tmp_path / "u.secret", *common)
    assert ok.exit_code == 0, ok.output
    report = json.loads((out / "report.json").read_text())
    item = report["models"][1]["metrics"]
    assert {"d_score", "membership_auc_d", "memorisation", "d_accuracy"} <= set(item)
    assert item["d_score"]["forgotten_items"] == 3 and 0 <= item["membership_auc_d"]["value"] <= 1
    a = item["membership_auc_d"]
    assert a["distance_from_chance"] == abs(a["value"] - 0.5)
    assert 0 <= item["d_accuracy"]["held_out_real"] <= 1 and 0 <= item["d_accuracy"]["generated"] <= 1
    assert {"pixels", "oracle features"} <= set(item["memorisation"])
    assert report["models"][1]["method"] == "cascaded" and report["models"][0]["method"] == "original"


def test_retraining_is_the_yardstick(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt, data_root):
    """A model identical to the retrained one reads exactly 1 as an FID ratio and 0 as differences."""
    from gan_unlearn.workflows.evaluate import EvalSettings, evaluate_checkpoints

    ckpt = load_checkpoint(tiny_gan_ckpt)
    for name, method in (("retrain", "retrain"), ("twin", "cascaded")):
        ckpt["unlearning"] = {"request": ForgetRequest.for_class(4).describe(), "method": method, "seconds": 10.0
                              if method == "retrain" else 0.5}
        save_checkpoint(tmp_path / f"{name}.pt", ckpt)
    report = evaluate_checkpoints([tmp_path / "twin.pt", tmp_path / "retrain.pt"], tiny_oracle_ckpt,
                                  settings=EvalSettings(samples=300), data_root=data_root, device="cpu",
                                  show_progress=False, log=lambda *_: None)
    twin, retrain = report["models"]
    assert "against_retrain" not in retrain
    vs = twin["against_retrain"]
    assert vs["fid"]["ratio"] == 1.0 and vs["forget_rate"]["difference"] == 0.0
    assert vs["fid"]["retrain"] == retrain["metrics"]["fid"]["value"]
    assert twin["speedup_vs_retrain"] == 20.0


def test_the_judge_reads_the_forget_rate_and_is_not_the_oracle(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt,
                                                               tiny_judge_ckpt, data_root):
    out = tmp_path / "ev"
    out.mkdir()
    common = ["--oracle", tiny_oracle_ckpt, "--forget-class", 4, "--samples", 300, "--data-root", data_root,
              "--quiet", "--out-dir", out]
    assert_clean_failure(run("evaluate", tiny_gan_ckpt, "--judge", tiny_oracle_ckpt, *common), "the judge is the oracle")
    ok = run("evaluate", tiny_gan_ckpt, "--judge", tiny_judge_ckpt, *common)
    assert ok.exit_code == 0, ok.output
    report = json.loads((out / "report.json").read_text())
    m = report["models"][0]["metrics"]
    assert m["forget_rate_judge"]["labeller"] == "judge" and 0 <= m["forget_rate_judge"]["value"] <= 1
    assert sum(m["class_histogram_judge"]["value"]) == 300
    assert m["fid_judge"]["features_of"] == "judge" and m["fid_judge"]["value"] != m["fid"]["value"]
    assert report["judge"]["hidden"] == 32 and "forget rate, judge" in (out / "report.md").read_text()


def test_rows_of_same_named_checkpoints_get_their_own_labels_and_grids(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt,
                                                                        data_root):
    for d in ("d1", "d2"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "m.pt").write_bytes(tiny_gan_ckpt.read_bytes())
    out = tmp_path / "ev"
    out.mkdir()
    ok = run("evaluate", tmp_path / "d1" / "m.pt", tmp_path / "d2" / "m.pt", "--oracle", tiny_oracle_ckpt,
             "--samples", 200, "--data-root", data_root, "--quiet", "--out-dir", out)
    assert ok.exit_code == 0, ok.output
    report = json.loads((out / "report.json").read_text())
    assert [r["label"] for r in report["models"]] == ["d1_m", "d2_m"]
    assert (out / "d1_m_samples.png").exists() and (out / "d2_m_samples.png").exists()


def test_evaluate_without_inception_weights_is_one_line(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt, data_root,
                                                        monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    out = tmp_path / "ev"
    out.mkdir()
    assert_clean_failure(run("evaluate", tiny_gan_ckpt, "--oracle", tiny_oracle_ckpt, "--extractor", "inception",
                             "--data-root", data_root, "--out-dir", out), "FID Inception weights not found")
    assert listing(out) == []


def test_evaluate_refuses_a_checkpoint_that_stopped_on_another_held_out_split(tmp_path, tiny_gan_ckpt,
                                                                               tiny_oracle_ckpt, data_root):
    from gan_unlearn.heldout import held_out_split, split_record

    ckpt = load_checkpoint(tiny_gan_ckpt)
    ckpt["unlearning"] = {"request": ForgetRequest.for_class(4).describe(), "method": "cascaded", "seconds": 1.0,
                          "held_out_split": split_record(held_out_split(10000, seed=1), seed=0)}
    save_checkpoint(tmp_path / "u.pt", ckpt)
    out = tmp_path / "ev"
    out.mkdir()
    assert_clean_failure(run("evaluate", tmp_path / "u.pt", "--oracle", tiny_oracle_ckpt, "--samples", 200,
                             "--data-root", data_root, "--quiet", "--out-dir", out), "another held-out split")
    assert listing(out) == []
