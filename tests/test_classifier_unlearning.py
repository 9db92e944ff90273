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
    "path-perturbation": {"top_k": 10, "top_h": 24, "auto_h": False},
    "path-perturbation-full": {"top_k": 10, "top_h": 24, "auto_h": False},
    "path-gaussian": {"top_k": 10, "top_h": 32},  # absolute N(0, 1), as in LRA-NPP
    "path-laplace": {"top_k": 10, "top_h": 32},
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


@pytest.mark.parametrize("name", sorted(n for n in METHODS if not METHODS[n].instance_wise))
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


def test_default_cut_leaves_every_other_class_logit_unchanged(tiny):
    """Cutting only the path units' weights to the class cannot touch another class's logit: exactly equal
    on every test image. The paper's cut (incoming rows too) silences those units for every class."""
    model, data, test = tiny
    from gan_unlearn.data import to_float

    x = to_float(test.images[:500])
    others = [k for k in range(10) if k != 3]
    with torch.no_grad():
        before = model(x)
        head = get_method("path-perturbation", **STRONG["path-perturbation"]).apply(model, data, "cpu")
        full_method = get_method("path-perturbation-full", **STRONG["path-perturbation-full"])
        full = full_method.apply(model, data, "cpu")
        assert torch.equal(head(x)[:, others], before[:, others])
        assert not torch.allclose(full(x)[:, others], before[:, others])
        assert torch.equal(head.fc.weight, model.fc.weight)
        assert (full.fc.weight[full_method.units] == 0).all()
        assert (head.head.weight[3, full_method.units] == 0).all()  # same ranking, same units cut at the head


def test_auto_h_grows_the_cut_until_the_proxies_are_forgotten(tiny):
    """With a deliberately small H the fixed rule leaves the class recognised; the per-class rule adds units
    of the same relevance ranking until no proxy is predicted as the class, and the held-out test images of
    the class follow the proxies down."""
    model, data, test = tiny
    from gan_unlearn.data import to_float

    proxies = to_float(data.proxy.images[:36])
    fixed = get_method("path-perturbation", top_k=10, top_h=4, auto_h=False)
    fixed_model = fixed.apply(model, data, "cpu")
    auto = get_method("path-perturbation", top_k=10, top_h=4, h_step=4)
    auto_model = auto.apply(model, data, "cpu")
    with torch.no_grad():
        assert (fixed_model(proxies).argmax(1) == 3).float().mean() > 0.5
        assert (auto_model(proxies).argmax(1) == 3).float().mean() == 0
    assert fixed.top_h_used == 4 and auto.top_h_used > 4 and len(auto.units) == auto.top_h_used
    assert auto.units[:4].tolist() == fixed.units.tolist()  # the same ranking, cut deeper
    held_out = test.subset(torch.tensor([i for i in range(len(test)) if i not in set(data.proxy_test_index[:36].tolist())]))
    after = class_accuracies(auto_model, held_out, 3)
    fixed_after = class_accuracies(fixed_model, held_out, 3)
    assert after["forget"] < 0.1 < fixed_after["forget"], (after, fixed_after)
    assert after["rest"] > 0.7  # measured 0.77 on this 128-unit model (36 of 128 units cut), 0.92 before


def test_absolute_path_noise_destroys_what_relative_noise_leaves(tiny):
    """LRA-NPP's baselines add N(0, 1) / Laplace(0, 1) to the path weights (of order 0.05 here): the class
    and the rest both suffer; the relative option (std of the weights) barely changes anything."""
    model, data, test = tiny
    before = class_accuracies(model, test, 3)
    for name in ("path-gaussian", "path-laplace"):
        absolute = class_accuracies(get_method(name, top_k=10, top_h=32).apply(model, data, "cpu"), test, 3)
        relative = class_accuracies(get_method(name, top_k=10, top_h=32, relative=True).apply(model, data, "cpu"), test, 3)
        assert relative["forget"] > before["forget"] - 0.1 and relative["rest"] > before["rest"] - 0.05, (name, relative)
        assert absolute["rest"] < before["rest"] - 0.05, (name, absolute)


def test_per_sample_sensitivity_matches_a_loop_over_samples(tiny):
    model, data, _ = tiny
    from gan_unlearn.data import to_float
    from trainers.classifier_unlearning import per_sample_sensitivity

    x = to_float(data.forget_train.images[:7])
    fast = per_sample_sensitivity(model, x, 3, chunk=3)
    weights = [q for q in model.parameters() if q.ndim > 1]
    ref = [torch.zeros_like(q) for q in weights]
    for xi in x:
        grads = torch.autograd.grad(model(xi[None])[0, 3], weights)
        for r, g in zip(ref, grads):
            r += g.abs()
    for f, r in zip(fast, ref):
        assert torch.allclose(f, r, rtol=1e-4, atol=1e-6)
    # the mean-logit gradient lets per-sample gradients cancel: it is never larger, and smaller somewhere
    mean_grad = torch.autograd.grad(model(x)[:, 3].sum(), weights)
    assert all((m.abs() <= f * (1 + 1e-4) + 1e-6).all() for m, f in zip(mean_grad, fast))
    assert any((m.abs() < f - 1e-4).any() for m, f in zip(mean_grad, fast))


def test_repair_fine_tune_restores_the_rest(tiny):
    model, data, test = tiny
    noisy = class_accuracies(get_method("randomk", k_percent=30, sigma=0.3).apply(model, data, "cpu"), test, 3)
    repaired = class_accuracies(get_method("randomk", k_percent=30, sigma=0.3, repair_steps=30, repair_lr=1e-3)
                                .apply(model, data, "cpu"), test, 3)
    assert repaired["rest"] > noisy["rest"] + 0.05, (noisy, repaired)


def test_l2ul_forgets_its_instances_and_keeps_other_classes(tiny):
    model, data, test = tiny
    from metrics.classifier_metrics import instance_report

    method = get_method("l2ul", num_instances=8, max_steps=50)
    new = method.apply(model, data, "cpu")
    before, after = instance_report(model, data, 8, test), instance_report(new, data, 8, test)
    assert before["acc_instances"] == 1.0 and after["acc_instances"] == 0.0, (before, after)
    assert after["acc_other_test"] > before["acc_other_test"] - 0.05, (before, after)
    assert 0 < method.steps < 50 and 0 < method.adv_kept <= 1
    # measured: the rest of the class does NOT survive on MNIST (its accuracy falls with the instances);
    # the benchmark's instance-wise table reports it


def test_l2ul_anchored_variant_keeps_the_rest_of_the_class(tiny):
    """On a model that generalises, pushing typical images of a class out of it takes the class with them;
    bounded ascent plus cross entropy on retained images of the same class moves the instances out while the
    class's unseen test images stay recognised; how many of the 8 instances leave varies with the environment."""
    model, data, test = tiny
    from metrics.classifier_metrics import instance_report

    plain = get_method("l2ul", num_instances=8, max_steps=100, lr=3e-3)
    anchored = get_method("l2ul", num_instances=8, max_steps=100, lr=3e-3, ascent="correct", class_anchors=128)
    p_model, a_model = plain.apply(model, data, "cpu"), anchored.apply(model, data, "cpu")
    before = instance_report(model, data, 8, test, trained_on=128)
    p, a = instance_report(p_model, data, 8, test, trained_on=128), instance_report(a_model, data, 8, test, trained_on=128)
    assert anchored.class_images_fitted == 128 and plain.class_images_fitted == 0
    # measured: instances 1.0 -> 0.625 (0.875 in a fresh environment of 2026-12-01: how many of the 8 leave
    # varies), class test 0.934 -> 0.896, rest of the class 0.962 -> 0.928; the paper's version takes all three
    # to 0. A trade-off, not a free lunch: with anchors some instances stay recognised
    assert a["acc_instances"] < before["acc_instances"], (before, a)
    assert p["acc_instances"] == 0 and p["acc_class_test"] < 0.1, p
    assert a["acc_class_test"] > before["acc_class_test"] - 0.1, (before, a)
    assert a["acc_class_rest_train"] > p["acc_class_rest_train"] + 0.5, (p, a)
    with pytest.raises(UserError, match="ascent must be one of 'all', 'correct'"):
        get_method("l2ul", num_instances=8, ascent="sideways")  # refused before any work


def test_instance_report_leaves_out_the_fitted_class_images(tiny):
    model, data, test = tiny
    from metrics.classifier_metrics import instance_report
    from gan_unlearn.models import predict

    hit = predict(model, data.forget_train.images, "cpu").argmax(1) == 3
    r = instance_report(model, data, 8, test, trained_on=100)
    assert r["acc_class_rest_train"] == pytest.approx(hit[108:].float().mean().item())


def test_l2ul_adversarial_examples_are_made_once_from_the_original(tiny):
    model, data, _ = tiny
    from gan_unlearn.data import to_float
    from trainers.classifier_unlearning import adversarial_anchors

    x = to_float(data.forget_train.images[:5])
    y = data.forget_train.labels[:5]
    x_adv, y_adv = adversarial_anchors(model, x, y, 4, 6.0, 20, torch.Generator().manual_seed(0))
    assert 0 < len(x_adv) <= 20 and (y_adv != 3).all()  # targets are other classes
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1), y_adv)  # kept only where the attack reached its target
    # each kept example lies within eps of one of the forget instances
    dist = torch.cdist(x_adv.flatten(1), x.flatten(1)).min(1).values
    assert (dist <= 6.0 + 1e-3).all() and x_adv.min() >= -1 and x_adv.max() <= 1


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
    for when in ("before", "after"):  # the papers' attacks are in the summary
        assert {"fr", "fs_accuracy", "fs_gap"} <= set(s[when])
        assert 0 <= s[when]["fr"] <= 1 and 0 <= s[when]["fs_gap"] <= 0.5


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
                         "bogus")
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
