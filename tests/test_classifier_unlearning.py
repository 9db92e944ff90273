"""Classifier unlearning methods on a tiny trained MNIST model: each lowers the forgotten class's
accuracy, the original checkpoint stays byte-identical, bad input fails cleanly."""

import json

import pytest
import torch

from gan_unlearn.checkpoint import load_checkpoint, restore_model
from gan_unlearn.errors import UserError
from metrics.classifier_metrics import class_accuracies, forgetting_rate, retention_rate
from trainers.classifier_unlearning import METHODS, forget_data, get_method, path_units, unlearn_classifier_checkpoint

from .test_cli import assert_clean_failure, listing, run

STRONG = {  # settings that bite on a 128-unit model trained on 6,000 images
    "path-perturbation": {"top_k": 10, "top_h": 24},
    "path-gaussian": {"top_k": 10, "top_h": 32, "scale": 15.0},
    "path-laplace": {"top_k": 10, "top_h": 32, "scale": 15.0},
    "jit": {"num_samples": 256, "lr": 0.05},
    "topk": {"k_percent": 2.0, "sigma": 0.3},
    "randomk": {"k_percent": 20.0, "sigma": 0.3},
    "l2ul": {"num_instances": 64, "max_steps": 30},
}


@pytest.fixture(scope="module")
def tiny(tiny_oracle_ckpt, mnist_train, mnist_test):
    model = restore_model(load_checkpoint(tiny_oracle_ckpt), "classifier").eval()
    test = mnist_test.subset(range(3000))
    return model, forget_data(3, mnist_train.subset(range(6000)), test), test


def test_every_registered_method_has_strong_test_settings():
    assert set(STRONG) == set(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_lowers_forgotten_class_accuracy(name, tiny):
    model, data, test = tiny
    before = class_accuracies(model, test, 3)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    new = get_method(name, **STRONG[name]).apply(model, data, "cpu")
    after = class_accuracies(new, test, 3)
    assert after["forget"] < before["forget"] - 0.2, (name, before, after)
    assert forgetting_rate(before["forget"], after["forget"]) > 0.2
    assert 0 < retention_rate(before["rest"], after["rest"]) <= 1.05
    for k, v in model.state_dict().items():  # the model passed in is untouched
        assert torch.equal(v, original[k])


def test_path_perturbation_keeps_other_classes(tiny):
    model, data, test = tiny
    before = class_accuracies(model, test, 3)
    after = class_accuracies(get_method("path-perturbation", **STRONG["path-perturbation"]).apply(model, data, "cpu"),
                             test, 3)
    assert after["forget"] < 0.25 and after["rest"] > 0.9 * before["rest"]


def test_path_units_are_the_class_relevant_ones(tiny):
    model, data, _ = tiny
    from gan_unlearn.data import to_float

    units = path_units(model, to_float(data.proxy.images[:36]), top_k=10, top_h=5, epsilon=0.1, device="cpu")
    assert len(units) == 5 and len(set(units.tolist())) == 5
    # the chosen units carry more of the class's logit than random units do
    x = to_float(data.proxy.images[:36])
    contrib = (model.features(x) * model.head.weight[3]).mean(0).detach()
    assert contrib[units].mean() > contrib.mean()


def test_checkpoint_round_trip_leaves_the_original_untouched(tmp_path, tiny_oracle_ckpt, data_root):
    before = tiny_oracle_ckpt.read_bytes()
    out = tmp_path / "u.pt"
    s = unlearn_classifier_checkpoint(tiny_oracle_ckpt, 3, "path-perturbation", out, data_root=data_root,
                                      params=STRONG["path-perturbation"], device="cpu", eval_train_samples=2000)
    assert tiny_oracle_ckpt.read_bytes() == before
    assert s["after"]["acc_forget_test"] < s["before"]["acc_forget_test"]
    assert s["eval_test_size"] == 10000 - 36  # the proxies are not scored
    ckpt = load_checkpoint(out, kind="classifier")
    assert ckpt["unlearning"]["method"] == "path-perturbation" and ckpt["unlearning"]["zero_shot"]


def test_cli_unlearn_classifier_and_bad_input(tmp_path, tiny_oracle_ckpt, data_root, tiny_gan_ckpt, cifar_npz):
    out = tmp_path / "u.pt"
    result = run("unlearn-classifier", "--model", tiny_oracle_ckpt, "--forget-class", 1, "--set", "top_h=24",
                 "--set", "top_k=10", "--data-root", data_root, "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "u.pt.json").read_text())
    assert summary["after"]["acc_forget_test"] < summary["before"]["acc_forget_test"]
    before = listing(tmp_path)
    assert_clean_failure(run("unlearn-classifier", "--model", tiny_oracle_ckpt, "--forget-class", 10,
                             "--data-root", data_root, "--out", tmp_path / "x.pt"), "class 10 is out of range")
    assert_clean_failure(run("unlearn-classifier", "--model", tiny_oracle_ckpt, "--forget-class", 1,
                             "--set", "bogus=2", "--data-root", data_root, "--out", tmp_path / "x.pt"),
                         "has no parameter(s) bogus")
    assert_clean_failure(run("unlearn-classifier", "--model", tiny_oracle_ckpt, "--forget-class", 1,
                             "--dataset", cifar_npz, "--data-root", data_root, "--out", tmp_path / "x.pt"),
                         "was trained on mnist")
    assert_clean_failure(run("unlearn-classifier", "--model", tiny_gan_ckpt, "--forget-class", 1,
                             "--data-root", data_root, "--out", tmp_path / "x.pt"), "a classifier checkpoint is needed")
    assert listing(tmp_path) == before
    with pytest.raises(UserError, match="unknown classifier unlearning method"):
        get_method("forget-everything")


def test_cli_unknown_method_is_one_line(capsys):
    from gan_unlearn.workflows.cli import entry_point

    with pytest.raises(SystemExit) as exc:
        entry_point(["unlearn-classifier", "--model", "x.pt", "--forget-class", "1", "--method", "magic",
                     "--out", "y.pt"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'magic' is not one of" in err[0]


def test_relevance_command(tmp_path, tiny_oracle_ckpt, data_root):
    result = run("relevance", "--model", tiny_oracle_ckpt, "--class", 3, "--top", 5, "--data-root", data_root,
                 "--json", tmp_path / "r.json", "--plot", tmp_path / "r.png")
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "r.json").read_text())["relevance"]) == 128
    assert (tmp_path / "r.png").stat().st_size > 0
    assert_clean_failure(run("relevance", "--model", tiny_oracle_ckpt, "--class", 3, "--layer", "nope",
                             "--data-root", data_root), "no layer named 'nope'")
