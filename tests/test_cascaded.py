"""Cascaded GAN unlearning: its pieces against oracles (brute force, closed behaviour), the stopping rule,
and the command line on a tiny MNIST GAN (original untouched, bad requests refused cleanly)."""

import json

import pytest
import torch

from gan_unlearn.checkpoint import load_checkpoint
from gan_unlearn.data import load_dataset
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.models import Discriminator
from metrics.forgetting import discriminator_scores
from trainers.unlearning import METHODS, CascadedUnlearning, UnlearnConfig, unlearn
from gan_unlearn.neighbours import nearest_neighbours
from trainers.latents import LatentPool, substitutes

from .test_cli import assert_clean_failure, listing, run

# item requests' rounds are what these tests exercise: the tiny GAN shows its items no more than unseen images,
# so the generator gate (on by default) would skip them
FAST = dict(pool_size=256, check_samples=200, target_pool=500, held_out=200, batch_size=16, forget_batch=8,
            item_gate_samples=200, precision="fp32", channels_last=False, item_generator_gate=False)


def test_nearest_neighbours_match_brute_force():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(37, 5, generator=g), torch.randn(300, 5, generator=g)
    got = nearest_neighbours(q, k, k=3, chunk=8)
    for i in range(len(q)):
        d = ((k - q[i]) ** 2).sum(1)
        assert got[i].tolist() == d.argsort()[:3].tolist()


def test_substitutes_match_brute_force():
    g = torch.Generator().manual_seed(1)
    pool = LatentPool(torch.randn(50, 4, generator=g), torch.randn(50, 1, 2, 2, generator=g), torch.randn(50, 3, generator=g))
    retained = torch.arange(50) % 3 != 0
    z_f = torch.randn(6, 4, generator=g)
    f_f = torch.randn(6, 3, generator=g)
    real, real_f = torch.randn(40, 1, 2, 2, generator=g), torch.randn(40, 3, generator=g)
    # option B: the original output at the nearest *retained* pool latent
    got_b = substitutes("nearest-latent", pool, retained, z_f, f_f, None, None)
    for i in range(6):
        cand = retained.nonzero().flatten()
        best = cand[((pool.z[cand] - z_f[i]) ** 2).sum(1).argmin()]
        assert torch.equal(got_b[i], pool.images[best])
    # option A: the real retained image nearest in feature space
    got_a = substitutes("nearest-real", pool, retained, z_f, f_f, real, real_f)
    for i in range(6):
        assert torch.equal(got_a[i], real[((real_f - f_f[i]) ** 2).sum(1).argmin()])
    assert substitutes("none", pool, retained, z_f, f_f, real, real_f) is None


def test_fake_label_lowers_the_discriminators_score_on_forgotten_images(data_root):
    torch.manual_seed(0)
    data = load_dataset("mnist[:400]", "train", data_root)
    request = ForgetRequest.for_class(1)
    D = Discriminator(28, 1, width=8)
    from gan_unlearn.models import Generator

    G = Generator(28, 1, latent_dim=16, width=4)
    held = load_dataset("mnist", "test", data_root).subset(range(100))
    u = CascadedUnlearning(G, D, request, data, UnlearnConfig.of(**FAST, lr_d=1e-3), oracle=_ConstOracle(), held_out=held)
    u.opt_d = torch.optim.Adam(u.D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    forget, retain = request.split(data.labels, data.num_classes)
    before_f = discriminator_scores(u.D, data.batch(forget)).mean()
    before_r = discriminator_scores(u.D, data.batch(retain)).mean()
    for _ in range(40):
        u.discriminator_step()
    after_f = discriminator_scores(u.D, data.batch(forget)).mean()
    after_r = discriminator_scores(u.D, data.batch(retain)).mean()
    assert after_f < before_f - 0.2
    assert after_r - after_f > 0.3  # forgotten images now look fake, retained ones real
    assert before_r - before_f < 0.1


class _ConstOracle(torch.nn.Module):
    """Enough of a classifier for code paths that need one."""

    num_classes, hidden = 10, 4

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(4, 10)

    def features(self, x):
        return x.flatten(1)[:, :4]

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def tiny(tiny_unlearning_inputs):
    return tiny_unlearning_inputs


def test_stopping_rule_reached_and_budget(tiny, tiny_gan_top_class):
    G, D, C, train, test = tiny
    req = ForgetRequest.for_class(tiny_gan_top_class)
    mechanics = dict(FAST, min_class_keep=0.0)  # the collapse check has tests of its own
    done = unlearn(G, D, req, train, oracle=C, config=UnlearnConfig.of(**mechanics, max_rounds=20, min_rounds=2,
                                                                       check_every=2, forget_target=1.0))
    assert done.summary["stopping_reason"] == "forget metric reached" and done.summary["rounds"] == 2
    budget = unlearn(G, D, req, train, oracle=C, config=UnlearnConfig.of(**mechanics, max_rounds=4, min_rounds=2,
                                                                         check_every=2, forget_target=0.0))
    assert budget.summary["stopping_reason"] == "step budget" and budget.summary["rounds"] == 4
    assert [h["round"] for h in budget.summary["history"]] == [2, 4]
    assert set(budget.summary["seconds_by_phase"]) >= {"prepare", "discriminator", "generator", "checks"}


def test_item_stopping_rule_compares_with_held_out_images(tiny):
    G, D, C, train, test = tiny
    req = ForgetRequest.for_items(range(0, 512, 16))
    cfg = dict(FAST, d_warmup=10, min_rounds=1, check_every=1, max_rounds=30)
    # with the collapse check off, the rule is "D's score on the items at or below its held-out score"
    r = unlearn(G, D, req, train, oracle=C, held_out=test, config=UnlearnConfig.of(**cfg, max_real_accuracy_drop=1.0))
    after = r.summary["after"]
    assert r.summary["stopping_reason"] == "forget metric reached" and r.summary["forgotten"]
    assert after["d_score_forgotten"] <= after["d_score_held_out"]
    # by default it cannot be met by a D that got there by rejecting held-out real images too
    r = unlearn(G, D, req, train, oracle=C, held_out=test, config=UnlearnConfig.of(**cfg))
    before, after = r.summary["before"], r.summary["after"]
    assert after["d_real_accuracy"] >= before["d_real_accuracy"] - 0.1
    if r.summary["stopping_reason"] != "forget metric reached":
        assert "D accepts" in r.summary["stopping_reason"] and not r.summary["forgotten"]


class _ConstantGenerator(torch.nn.Module):
    """Every latent gives the same image: a generator collapsed to one mode."""

    latent_dim = 16

    def __init__(self, image):
        super().__init__()
        self.image = image

    def sample_latents(self, n, generator=None, device=None):
        return torch.randn(n, self.latent_dim, generator=generator)

    def forward(self, z):
        return self.image.expand(len(z), *self.image.shape[1:]).to(z.device)


class _RejectAll(torch.nn.Module):
    """A discriminator that calls every image fake."""

    def forward(self, x):
        return torch.full((len(x),), -10.0, device=x.device)


def test_a_collapsed_generator_cannot_meet_the_class_stopping_rule(tiny):
    """The finetune baseline stopped with "forget metric reached" once its generator had collapsed to one
    digit; a share of zero from a generator that shows no other class either is not forgetting."""
    G, D, C, train, test = tiny
    blank = -torch.ones(1, 1, 28, 28)
    shown = C(blank).argmax(1).item()
    forget = (shown + 1) % 10
    for method in ("finetune", "cascaded"):
        m = METHODS[method](G, D, ForgetRequest.for_class(forget), train, UnlearnConfig.of(**FAST), oracle=C)
        m.reference = {"shares": [0.1] * 10, "d_real_accuracy": None}
        m.G_ema = _ConstantGenerator(blank)
        metric = m.forget_metric()
        assert metric["class_share"] == 0.0
        assert not metric["satisfied"] and "below 0.5x their original share" in metric["degenerate"]


def test_a_discriminator_that_rejects_real_images_cannot_meet_the_item_stopping_rule(tiny):
    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_items([1, 2, 3]), train, UnlearnConfig.of(**FAST), oracle=C,
                            held_out=test)
    m.reference = {"shares": [], "d_real_accuracy": 0.8}
    m.D = _RejectAll()
    metric = m.forget_metric()
    assert metric["d_score_forgotten"] <= metric["d_score_held_out"]  # the old rule would call this forgotten
    assert metric["d_real_accuracy"] == 0.0 and not metric["satisfied"] and "D accepts 0%" in metric["degenerate"]


def test_unlearning_stops_on_the_stopping_half_of_the_held_out_split(tiny):
    from gan_unlearn.heldout import held_out_split

    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_items([1, 2, 3]), train, UnlearnConfig.of(**FAST), oracle=C,
                            held_out=test)
    split = held_out_split(len(test))
    stop = test.batch(split["stop"][:FAST["held_out"]])
    assert torch.equal(m.held_out_images, stop)
    assert set(split["stop"].tolist()).isdisjoint(split["report"].tolist())
    assert len(split["stop"]) + len(split["report"]) == len(test)


def test_inputs_are_never_modified(tiny, tiny_gan_top_class):
    G, D, C, train, test = tiny
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (G, D)]
    for method in ("cascaded", "finetune"):
        unlearn(G, D, ForgetRequest.for_class(tiny_gan_top_class), train, oracle=C, method=method,
                config=UnlearnConfig.of(**FAST, max_rounds=2, min_rounds=2, check_every=2))
    for m, state in zip((G, D), before):
        for k, v in m.state_dict().items():
            assert torch.equal(v, state[k]), k


def test_cli_unlearn_records_the_request_and_leaves_the_original_byte_identical(tmp_path, tiny_gan_ckpt,
                                                                               tiny_oracle_ckpt, data_root,
                                                                               tiny_gan_top_class):
    original = tiny_gan_ckpt.read_bytes()
    out = tmp_path / "u.pt"
    c = tiny_gan_top_class
    result = run("unlearn", "--gan", tiny_gan_ckpt, "--forget-class", c, "--oracle", tiny_oracle_ckpt,
                 "--data-root", data_root, "--max-rounds", 4, "--set", "pool_size=256", "--set", "check_samples=100",
                 "--precision", "fp32", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert tiny_gan_ckpt.read_bytes() == original
    ckpt = load_checkpoint(out, kind="gan")
    u = ckpt["unlearning"]
    assert u["request"] == ForgetRequest.for_class(c).describe() and u["method"] == "cascaded"
    assert u["parameters"]["stopping"]["max_rounds"] == 4 and u["parameters"]["substitution"]["pool_size"] == 256
    assert u["source_checkpoint"] == str(tiny_gan_ckpt) and len(u["source_sha256"]) == 64 and u["seconds"] > 0
    assert ckpt["lineage"][-1]["event"] == "unlearn-cascaded"
    summary = json.loads((tmp_path / "u.pt.json").read_text())
    assert summary["rounds"] <= 4 and "seconds_by_phase" in summary and summary["stopping_reason"]
    info = run("info", out)
    assert "unlearning:" in info.output and ForgetRequest.for_class(c).hash()[:12] in info.output
    # item requests record the hash and size, never the indices
    items = tmp_path / "items.txt"
    items.write_text("3 5 8 13 21")
    result = run("unlearn", "--gan", tiny_gan_ckpt, "--forget-items", items, "--data-root", data_root,
                 "--max-rounds", 2, "--set", "pool_size=256", "--set", "check_every=1", "--set", "min_rounds=1",
                 "--precision", "fp32", "--quiet", "--out", tmp_path / "i.pt")
    assert result.exit_code == 0, result.output
    u = load_checkpoint(tmp_path / "i.pt")["unlearning"]
    assert u["request"]["kind"] == "item" and u["request"]["num_items"] == 5 and "hash" not in u["request"]
    secret = bytes.fromhex((tmp_path / "i.pt.secret").read_text().strip())
    assert ForgetRequest.for_items([3, 5, 8, 13, 21]).verify(u["request"], secret)
    assert "[3, 5, 8, 13, 21]" not in json.dumps(load_checkpoint(tmp_path / "i.pt")["unlearning"])
    assert u["held_out_split"]["stop_size"] == 5000 and "forgotten" in u  # evaluate checks the split it stopped on
    # what the gate read and what D's finish did (both on by default for items)
    gate = u["generator_gate"]
    assert set(gate) == {"nn_auc", "rounds"} and (u["rounds"] > 0) == gate["rounds"]
    assert set(u["finish"]) == {"steps", "kept", "reached", "limited", "pools", "samples_from",
                                "whole_d_steps"}  # the output layer's finish, and the whole D's steps after it
    assert u["finish"]["samples_from"] == ("finish" if gate["rounds"] else "gate")
    assert u["finish"]["pools"]["forgotten"] == 5  # the items, every one


BAD_REQUESTS = [
    (["--forget-class", "10"], "class 10 is out of range"),
    (["--forget-class", "-1"], "class -1 is out of range"),
    (["--forget-items", "1,600"], "forget indices out of range"),
    (["--forget-items", "1,-3"], "non-negative"),
    (["--forget-items", "4,4"], "unique; duplicated"),
    (["--forget-items", ""], "empty"),
    (["--forget-items", "1", "--forget-class", "2"], "exactly one of --forget-class or --forget-items"),
    ([], "exactly one of --forget-class or --forget-items"),
    (["--forget-items", "0-511"], "forget indices must be integers"),
]


@pytest.mark.parametrize("args,message", BAD_REQUESTS)
def test_bad_requests_fail_cleanly(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt, data_root, args, message):
    result = run("unlearn", "--gan", tiny_gan_ckpt, "--oracle", tiny_oracle_ckpt, *args, "--data-root", data_root,
                 "--out", tmp_path / "u.pt")
    assert_clean_failure(result, message)
    assert listing(tmp_path) == []


def test_other_refusals(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt, data_root, cifar_npz):
    all_items = tmp_path / "all.json"
    all_items.write_text(json.dumps(list(range(512))))
    before = listing(tmp_path)
    assert_clean_failure(run("unlearn", "--gan", tiny_gan_ckpt, "--forget-items", all_items, "--data-root", data_root,
                             "--out", tmp_path / "u.pt"), "whole dataset")
    assert_clean_failure(run("unlearn", "--gan", tiny_gan_ckpt, "--forget-class", 1, "--data-root", data_root,
                             "--out", tmp_path / "u.pt"), "needs an oracle")
    assert_clean_failure(run("unlearn", "--gan", tiny_gan_ckpt, "--forget-class", 1, "--oracle", tiny_oracle_ckpt,
                             "--data-root", data_root, "--out", tiny_gan_ckpt), "is the input")
    assert_clean_failure(run("unlearn", "--gan", tiny_gan_ckpt, "--forget-class", 1, "--oracle", tiny_oracle_ckpt,
                             "--set", "lr_g=fast", "--data-root", data_root, "--out", tmp_path / "u.pt"),
                         "is not a valid number or auto")
    assert_clean_failure(run("retrain", "--gan", tiny_oracle_ckpt, "--forget-class", 1, "--data-root", data_root,
                             "--out", tmp_path / "r.pt"), "a gan checkpoint is needed")
    assert listing(tmp_path) == before


def test_retrain_uses_the_recorded_recipe(tmp_path, tiny_gan_ckpt, data_root):
    out = tmp_path / "r.pt"
    result = run("retrain", "--gan", tiny_gan_ckpt, "--forget-class", 0, "--data-root", data_root, "--quiet",
                 "--out", out)
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out, kind="gan")
    original = load_checkpoint(tiny_gan_ckpt)
    assert ckpt["config"] == original["config"]
    assert ckpt["unlearning"]["method"] == "retrain" and ckpt["unlearning"]["seconds"] > 0
    trained_on = ckpt["dataset"]["trained_on"]
    assert trained_on["size"] == 512 - int((load_dataset("mnist[:512]", "train", data_root).labels == 0).sum())
    assert ckpt["dataset"]["train_hash"] == original["dataset"]["train_hash"]


def test_drift_guard_returns_to_the_last_good_state_and_halves_the_learning_rates(tiny):
    G, D, C, train, test = tiny
    req = ForgetRequest.for_items(range(0, 512, 16))  # keeps most pool latents, whose drift the guard watches
    guard = dict(FAST, ema=0, min_rounds=1, check_every=1, max_drift=1e-9, relative_drift=0.0, lr_g=0.1, lr_d=0.2)
    one = unlearn(G, D, req, train, oracle=C, held_out=test, config=UnlearnConfig.of(**guard, max_rounds=1, max_backoffs=1))
    assert one.summary["backoffs"] == 1 and one.summary["history"][0]["drift"] > 0
    for k, v in G.state_dict().items():  # the only check backed off to the state before the first round
        torch.testing.assert_close(one.generator.state_dict()[k], v, rtol=0, atol=0, msg=k)
    three = unlearn(G, D, req, train, oracle=C, held_out=test,
                    config=UnlearnConfig.of(**guard, max_rounds=3, max_backoffs=2))
    assert [h.get("backoff_lr_g") for h in three.summary["history"]][:2] == [0.05, 0.025]
    assert "backoff_lr_g" not in three.summary["history"][-1]  # only max_backoffs of them
    assert three.summary["backoffs"] == 2
    with pytest.raises(Exception, match="max-drift"):
        UnlearnConfig.of(max_drift=0).validate()


@pytest.mark.parametrize("watch", [True, False])
def test_the_guard_steps_back_when_the_trained_generator_drifts_while_its_average_lags(tiny, watch):
    """A large learning rate moves the trained generator far in one step while an average with decay 0.999 moves
    a thousandth of the way: only a guard that watches the trained generator sees it and steps back to the
    original (whose average is then returned unchanged); one that watches the average alone keeps the step."""
    G, D, C, train, test = tiny
    req = ForgetRequest.for_items(range(0, 512, 16))
    config = UnlearnConfig.of(**FAST, ema=0.999, min_rounds=1, check_every=1, max_rounds=1, max_backoffs=1,
                              max_drift=0.02, relative_drift=0.0, lr_g=0.1, watch_trained=watch)
    result = unlearn(G, D, req, train, oracle=C, held_out=test, config=config)
    check = result.summary["history"][0]
    assert check["drift"] < 0.02  # the average barely moved
    if watch:
        assert check["trained_drift"] > 0.02 and result.summary["backoffs"] == 1
        for k, v in G.state_dict().items():
            torch.testing.assert_close(result.generator.state_dict()[k], v, rtol=0, atol=0, msg=k)
    else:
        assert "trained_drift" not in check and result.summary["backoffs"] == 0
        assert any(not torch.equal(result.generator.state_dict()[k], v) for k, v in G.state_dict().items())


def test_the_trained_generators_drift_is_read_only_beside_an_average(tiny):
    """Without an average the trained generator is the output, read once; with one, both are read and the
    guard names which of them went past the limit."""
    G, D, C, train, test = tiny
    make = lambda **kw: METHODS["cascaded"](G, D, ForgetRequest.for_items([1, 2, 3]), train, held_out=test,  # noqa: E731
                                            oracle=C, config=UnlearnConfig.of(**FAST, relative_drift=0.0, **kw))
    assert make(ema=0.0).trained_drift() is None
    m = make(ema=0.97)
    m.prepare_guard()
    m.G, m.G_ema = _Shift(m.G0, 0.2), _Shift(m.G0, 0.05)
    assert m.preservation_drift() == pytest.approx(0.05, rel=1e-4)
    assert m.trained_drift() == pytest.approx(0.2, rel=1e-4)
    problem = m.health_problem({"degenerate": None}, m.preservation_drift(), m.trained_drift())
    assert problem == "trained generator's drift 0.200 above 0.150"
    m.config.guard.watch_trained = False
    assert m.trained_drift() is None


class _Replay(torch.nn.Module):
    """A "generator" that ignores its latents and shows the given images in turn."""

    def __init__(self, images):
        super().__init__()
        self.images = images.float()

    def forward(self, z):
        return self.images[torch.arange(len(z)) % len(self.images)]


def test_the_generator_rule_reads_how_close_samples_come_to_the_items_against_held_out_images(tiny):
    """A generator that shows exactly the forgotten items is as close to them as can be (AUC 1); one that shows
    exactly the check's held-out images is closer to those (AUC 0)."""
    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_items([1, 2, 3]), train, held_out=test, oracle=C,
                            config=UnlearnConfig.of(**FAST, ema=0.0))
    m.G = _Replay(m.forget_images)
    assert m.generator_membership_auc(300) == 1.0
    m.G = _Replay(m.held_out_images[:150])
    assert 0.0 < m.generator_membership_auc(300) <= 0.25  # the items can beat only the 50 images never shown
    m.G = _Replay(m.held_out_images)
    assert m.generator_membership_auc(400) == 0.0


def _d_rule_always_holds(m) -> list:
    """Replace the method's reading by one where D's rule holds and the whole rule does not; returns D's weights
    at each reading ([0] before the rounds, then one per check)."""
    at_check = []

    def reading(samples=None, generator=True):
        at_check.append({k: v.clone() for k, v in m.D.state_dict().items()})
        return {"degenerate": None, "d_reached": True, "satisfied": False, "d_real_accuracy": 1.0}

    m.forget_metric = reading
    return at_check


@pytest.mark.parametrize("rule", [True, False])
def test_with_the_generator_rule_ds_stage_pauses_once_its_own_rule_holds(tiny, rule):
    """Readings say D's rule holds from the first check on and the whole rule never does: with the generator rule
    D's weights stay exactly as they were at that check to the end of the budget; without it D trains on. (D
    is handed back raw: its threshold reset would change the output bias at the end, tests/test_d_threshold.py.)"""
    G, D, C, train, test = tiny
    config = UnlearnConfig.of(**FAST, min_rounds=1, check_every=1, max_rounds=4, max_drift=10.0,
                              item_generator_rule=rule, calibrate_d=False, item_d_finish=0)  # the rounds' D only
    m = METHODS["cascaded"](G, D, ForgetRequest.for_items([1, 2, 3]), train, held_out=test, oracle=C, config=config)
    at_check = _d_rule_always_holds(m)
    result = m.run()
    assert result.summary["rounds"] == 4
    assert result.summary["d_steps"] == (1 if rule else 4)  # one D step per round while D's stage runs
    assert [h["loss_d"] is None for h in result.summary["history"]] == [False] + [rule] * 3  # no D step: no loss
    first_check = at_check[1]  # [0] is the reading before the rounds
    same = all(torch.equal(result.discriminator.state_dict()[k], v) for k, v in first_check.items())
    assert same is rule
    assert any(not torch.equal(at_check[0][k], v) for k, v in first_check.items())  # D did train before


def test_a_step_back_to_a_state_whose_d_had_met_its_rule_keeps_d_paused(tiny):
    """Check 1 is healthy and D's rule holds there (D pauses, the state is kept); check 2 drifts past the limit and
    steps back to check 1's state. D must stay paused: the D restored had met its rule, and training it on would
    push the items below held-out images. So D ends exactly as it was at check 1 (handed back raw, as above)."""
    G, D, C, train, test = tiny
    config = UnlearnConfig.of(**FAST, min_rounds=1, check_every=1, max_rounds=3, max_backoffs=1, max_drift=0.5,
                              relative_drift=0.0, item_generator_rule=True, calibrate_d=False,
                              item_d_finish=0)  # the rounds' D only: the finish trains it after them
    m = METHODS["cascaded"](G, D, ForgetRequest.for_items([1, 2, 3]), train, held_out=test, oracle=C, config=config)
    at_check, drifts = _d_rule_always_holds(m), iter([0.0, 0.9, 0.0, 0.0])  # checks 1, 2 (past 0.5), 3, the end
    m.preservation_drift = lambda generator=None: next(drifts)
    m.trained_drift = lambda: None
    result = m.run()
    assert result.summary["backoffs"] == 1 and "backoff_lr_g" in result.summary["history"][1]
    assert result.summary["d_steps"] == 1  # round 1 only
    for k, v in at_check[1].items():
        torch.testing.assert_close(result.discriminator.state_dict()[k], v, rtol=0, atol=0, msg=k)


def _readings(m, share: float, degenerate=None, satisfied=False):
    """Replace the method's reading by a constructed one; returns the sample counts it was asked for."""
    asked = []

    def reading(samples=None, generator=True):
        asked.append(samples)
        return {"class_share": share, "degenerate": degenerate, "satisfied": satisfied}

    m.forget_metric = reading
    return asked


@pytest.mark.parametrize("share,degenerate,satisfied,expect", [
    (0.05, None, False, [500]),  # 0.05 - 3 * sqrt(0.05 * 0.95 / 500) = 0.021 > 0.01: clearly short, keep it
    (0.02, None, False, [500, None]),  # 0.02 - 3 * 0.0063 = 0.001 < 0.01: within reach, read in full
    (0.05, "classes [2] below 0.5x their original share", False, [500, None]),  # a lost class is confirmed
    (0.005, None, True, [500, None]),  # reached on the small reading: confirmed on the full one
])
def test_a_quick_check_is_kept_only_when_the_target_is_clearly_out_of_reach(tiny, share, degenerate, satisfied,
                                                                            expect):
    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_class(3), train,
                            UnlearnConfig.of(**dict(FAST, check_samples=2000), quick_check=500), oracle=C)
    asked = _readings(m, share, degenerate, satisfied)
    metric = m.checked_metric()
    assert asked == expect
    assert metric.get("quick", False) == (len(expect) == 1)
    m.config.stopping.quick_check = 0  # off: always the full reading
    asked.clear()
    m.checked_metric()
    assert asked == [None]


class _Shift(torch.nn.Module):
    """The wrapped generator's images, shifted by a constant: a drift (mean absolute change) of exactly
    ``shift``, though the images may leave [-1, 1]."""

    def __init__(self, G, shift):
        super().__init__()
        self.G, self.shift = G, shift

    def forward(self, z):
        return self.G(z) - self.shift


@pytest.mark.parametrize("relative, max_drift, shift, steps_back", [
    (0.0, 0.15, 0.10, False), (0.0, 0.15, 0.20, True),  # the absolute limit alone
    (0.75, 0.15, 0.20, False),  # 0.75 x 0.33 = 0.25 allows 0.2
    (0.45, 0.15, 0.20, True),  # the default: 0.45 x 0.33 = 0.15 on MNIST, as the absolute limit was
    (0.45, 0.30, 0.20, False),  # raising max_drift loosens the guard whatever the relative limit
    (0.45, 0.01, 0.10, False),  # a smaller max_drift leaves the relative limit (0.15) in charge
    (0.45, 0.01, 0.20, True)])
def test_the_drift_limit_is_the_larger_of_the_absolute_and_the_relative_one(tiny, relative, max_drift, shift,
                                                                          steps_back):
    """Two MNIST digits lie about 0.33 apart (mean pixel distance): a relative limit of 0.75 allows a drift of
    0.2, where the absolute 0.15 and the default 0.45 (0.15 on MNIST) do not."""
    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_items([1, 2, 3]), train, held_out=test, oracle=C,
                            config=UnlearnConfig.of(**FAST, relative_drift=relative, max_drift=max_drift))
    m.prepare_guard()
    g = torch.Generator().manual_seed(0)
    a, b = (train.batch(torch.randint(len(train), (4000,), generator=g)).float() for _ in range(2))
    assert m.guard["spread"] == pytest.approx((a - b).abs().mean().item(), rel=0.05)  # brute force, other pairs
    assert 0.25 < m.guard["spread"] < 0.42
    assert m.guard["limit"] == pytest.approx(max(max_drift, relative * m.guard["spread"]))
    m.G_ema = m.G = _Shift(m.G0, shift)
    drift = m.preservation_drift()
    assert drift == pytest.approx(shift, rel=1e-4)
    assert (m.health_problem({"degenerate": None}, drift) is not None) is steps_back


def test_the_spread_never_pairs_an_image_with_itself_and_needs_two_retained_images(tiny):
    """Two retained images: every pair is the two of them, so the spread is exactly their distance (pairs drawn
    with replacement would average in zeros and halve it). One retained image: no spread, max_drift alone."""
    G, D, C, train, test = tiny
    n = len(train)
    two = METHODS["cascaded"](G, D, ForgetRequest.for_items(range(2, n)), train, held_out=test, oracle=C,
                              config=UnlearnConfig.of(**FAST))
    a, b = train.batch(torch.tensor([0])).float(), train.batch(torch.tensor([1])).float()
    assert two.data_spread() == pytest.approx((a - b).abs().mean().item(), rel=1e-6)
    one = METHODS["cascaded"](G, D, ForgetRequest.for_items(range(1, n)), train, held_out=test, oracle=C,
                              config=UnlearnConfig.of(**FAST, max_drift=0.2))
    assert one.data_spread() is None and one.drift_limit(None) == 0.2


def test_the_data_spread_of_cifar_images_is_larger_than_mnists(cifar_npz, data_root):
    """The reason for a relative limit: colour images lie further apart than digits, so CIFAR-10's limit is
    larger than MNIST's at the same share."""
    from gan_unlearn.models import Generator

    spreads = {}
    for name in ("mnist", "cifar"):
        data = load_dataset("mnist[:2000]" if name == "mnist" else cifar_npz, "train", data_root)
        size, channels = data.images.shape[-1], data.images.shape[1]
        G = Generator(image_size=size, channels=channels, width=8)
        D = Discriminator(image_size=size, channels=channels, width=8)
        m = METHODS["finetune"](G, D, ForgetRequest.for_items([0, 1]), data, held_out=data, config=UnlearnConfig.of(**FAST))
        spreads[name] = m.data_spread(1000)
    assert 0.25 < spreads["mnist"] < 0.42 and spreads["cifar"] > 1.3 * spreads["mnist"]


@pytest.mark.parametrize("readings, checks, plateaued", [
    ([(0.09, 2000), (0.07, 2000), (0.05, 2000), (0.04, 2000), (0.035, 2000)], 4, False),  # 5.5 points: 7 se
    ([(0.03, 2000)] * 5, 4, True),  # flat
    ([(0.03, 2000), (0.03, 2000), (0.035, 2000), (0.04, 2000), (0.045, 2000)], 4, True),  # rising
    ([(0.03, 2000)] * 4, 4, False),  # too few readings to tell
    ([(0.03, 2000)] * 5, 0, False),  # off
    ([(0.05, 200)] + [(0.04, 200)] * 3 + [(0.03, 200)], 4, True),  # 2 points, 2 se = 3.9 points on 200 samples
    ([(0.05, 2000)] + [(0.04, 2000)] * 3 + [(0.03, 2000)], 4, False),  # the same fall, 2 se = 1.2 points on 2,000
])
def test_the_class_share_plateaus_when_it_has_not_fallen_by_two_standard_errors(readings, checks, plateaued):
    """Oracle: the binomial standard error of the difference of the two readings, computed by hand in the
    comments."""
    from trainers.unlearning.base import share_plateaued

    assert share_plateaued(readings, checks, 2.0) is plateaued


@pytest.mark.parametrize("left, entered, plateaued", [
    (30, 5, False),  # 25 > 2 x sqrt(35) = 11.8: a fall of 1.25 points on 2,000 latents (independent: none)
    (20, 20, True),  # 40 switched, as many each way: no fall
    (0, 0, True),  # nothing switched
    (6, 0, False),  # 6 > 2 x sqrt(6) = 4.9
    (4, 0, True),  # 4 = 2 x sqrt(4): not more
    (5, 30, True),  # rising
])
def test_the_paired_plateau_test_counts_latents_that_left_the_class_against_those_that_entered(
        left, entered, plateaued):
    """Oracle: the sign test by hand (comments). The first reading has 100 of 2,000 latents in the class; the
    last has ``left`` of them out and ``entered`` others in; three readings between do not count."""
    from trainers.unlearning.base import class_plateaued, share_plateaued

    then = torch.zeros(2000, dtype=torch.bool)
    then[:100] = True
    now = then.clone()
    now[:left] = False
    now[100:100 + entered] = True
    assert class_plateaued([then, now, now, now, now], 4, 2.0) is plateaued
    assert class_plateaued([then, now, now, now], 4, 2.0) is False  # too few readings to tell
    if (left, entered) == (30, 5):  # the share fell 5.00% -> 3.75%, under the independent test's 1.29 points
        assert share_plateaued([(0.05, 2000), (0.0375, 2000)], 1, 2.0) is True


def test_a_check_reads_the_class_latent_by_latent_on_the_same_latents(tiny):
    """The check's per-latent class flags are the oracle's verdicts on the check's own latent stream: their mean
    is the share, which equals the class histogram of that stream, and two checks of the same generator agree
    latent for latent."""
    from metrics.forgetting import class_histogram

    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_class(3), train, oracle=C, show_progress=False,
                            config=UnlearnConfig.of(**dict(FAST, check_samples=600)))
    first, second = m.forget_metric(), m.forget_metric()
    hist = class_histogram(m.output_generator, C, 600, seed=m.config.seed, stream="unlearn.check")
    assert first["in_class"].shape == (600,) and first["in_class"].dtype == torch.bool
    assert int(first["in_class"].sum()) == int(hist[3]) and first["class_share"] == pytest.approx(hist[3].item() / 600)
    assert torch.equal(first["in_class"], second["in_class"])
    assert "in_class" not in m.reported(first)


def _scripted_shares(m, shares, unhealthy_at=(), quick=False):
    """The method's checks read ``shares`` in turn (2,000 samples each, or quick readings, nothing degenerate),
    the latents in the class nested (the first ``share`` x 2,000), so a fall is latents leaving and none
    entering; the guard finds the state unhealthy at the checks numbered in ``unhealthy_at`` (1-based) and
    nowhere else."""
    readings, verdicts = iter(shares), iter(range(1, 10**6))

    def reading():
        share = next(readings)
        return {"class_share": share, "in_class": torch.arange(2000) < round(share * 2000), "degenerate": None,
                "satisfied": False, **({"quick": True} if quick else {})}

    m.checked_metric = reading
    m.health_problem = lambda metric, drift, trained=None: "scripted" if next(verdicts) in unhealthy_at else None


@pytest.mark.parametrize("plateau_checks, test, unhealthy_at, rounds, reason", [
    (4, "independent", (), 8, "class share stopped falling: 4.00% 4 checks before, 3.00% now"),  # 1 point < 2 se = 1.16
    # the same 1 point is 20 latents that left and none that entered: 20 > 2 x sqrt(20) = 8.9, a fall; round 9
    # reads 3.00% against round 5's 3.00%
    (4, "paired", (), 9, "class share stopped falling: 3.00% 4 checks before, 3.00% now"),
    (0, "independent", (), 20, "step budget"),
    (0, "paired", (), 20, "step budget"),
    # check 6 steps back: the window starts again at round 7 and holds five readings at round 11 (kept across
    # the step back, the 4.00% of round 4 against round 9's 3.00% would stop it at round 9)
    (4, "independent", (6,), 11, "class share stopped falling: 3.00% 4 checks before, 3.00% now"),
    (4, "paired", (6,), 11, "class share stopped falling: 3.00% 4 checks before, 3.00% now"),
])
def test_a_class_request_stops_once_its_share_stops_falling(tiny, plateau_checks, test, unhealthy_at, rounds, reason):
    G, D, C, train, _ = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_class(3), train, oracle=C, show_progress=False,
                            config=UnlearnConfig.of(**dict(FAST, check_samples=2000), ema=0.0, min_rounds=1,
                                                    check_every=1, max_rounds=20, plateau_checks=plateau_checks,
                                                    plateau_test=test))
    _scripted_shares(m, [0.09, 0.07, 0.05, 0.04] + [0.03] * 30, unhealthy_at)
    s = m.run().summary
    assert s["rounds"] == rounds and s["stopping_reason"] == reason and s["plateaued"] == (reason != "step budget")


@pytest.mark.parametrize("items, neighbours, pool", [(8, 4, 256), (32, 4, 512), (32, 2, 256), (40, 4, 640)])
def test_an_item_pool_holds_at_least_four_times_the_forgotten_latents(tiny, items, neighbours, pool):
    """pool_size 256; an item request draws max(256, 4 x neighbours x items) latents, so its forgotten latents
    (neighbours per item, some shared between items) leave at least three quarters of the pool retained."""
    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_items(range(items)), train, oracle=C, held_out=test,
                            config=UnlearnConfig.of(**FAST, item_neighbours=neighbours))
    counts = m.prepare()
    assert counts["pool_size"] == pool and counts["forgotten_latents"] == neighbours * items
    assert pool - neighbours * items <= counts["kept_latents"] < pool and counts["kept_latents"] >= 0.75 * pool


@pytest.mark.parametrize("plateau", ["independent", "paired"])
def test_quick_readings_never_make_a_plateau(tiny, plateau):
    """A quick reading (a few hundred samples) is kept only far above the target; its wide error would let a
    falling share pass for a plateau, so the plateau stop reads full readings only: flat quick readings run
    the whole budget."""
    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_class(3), train, oracle=C, show_progress=False,
                            config=UnlearnConfig.of(**dict(FAST, check_samples=2000), ema=0.0, min_rounds=1,
                                                    check_every=1, max_rounds=8, quick_check=500,
                                                    plateau_test=plateau))
    _scripted_shares(m, [0.05] * 8, quick=True)
    s = m.run().summary
    assert s["rounds"] == 8 and s["stopping_reason"] == "step budget" and not s["plateaued"]


class _NaNDiscriminator(torch.nn.Module):
    """A D whose every score is NaN: any loss that reads it is NaN."""

    def forward(self, x):
        return torch.full((len(x), 1), float("nan"))


def test_without_the_adversarial_losses_the_generator_loss_never_reads_d(tiny):
    """After ``drop_adversarial`` the generator loss is the one of a run configured without adversarial weights
    (substitution and preservation), read through a D that scores everything NaN; before it, that D poisons it."""
    G, D, C, train, test = tiny
    methods = [METHODS["cascaded"](G, D, ForgetRequest.for_items(range(0, 64, 4)), train, oracle=C, held_out=test,
                                   config=UnlearnConfig.of(**FAST, **options))
               for options in ({}, {"lambda_adv": 0.0, "lambda_adv_forget": 0.0})]
    z = G.sample_latents(16, torch.Generator().manual_seed(0))
    for m in methods:
        m.prepare()
        m.D = _NaNDiscriminator()
        with torch.no_grad():  # move G off G0 the same way in both, so that preservation has work to do
            for p, noise in zip(m.G.parameters(), _noise_like(m.G)):
                p.add_(noise)
    adversarial, without = methods
    assert adversarial.targets["substitutes"] is not None
    state = adversarial.rng.get_state()
    assert torch.isnan(adversarial.generator_loss(z))
    adversarial.rng.set_state(state)
    assert adversarial.drop_adversarial()
    loss = adversarial.generator_loss(z)
    assert torch.isfinite(loss) and loss > 0
    assert loss.item() == pytest.approx(without.generator_loss(z).item(), rel=1e-6)


def _noise_like(model):
    g = torch.Generator().manual_seed(1)
    return [0.05 * torch.randn(p.shape, generator=g) for p in model.parameters()]


def _scripted_losses(m, lost_at, drifted_at=()):
    """Checks read a 5% share; the ones numbered in ``lost_at`` (1-based) find a class lost, those in
    ``drifted_at`` only a drift past the guard's limit."""
    verdicts, drifts = iter(range(1, 10**6)), iter(range(1, 10**6))

    def reading(samples=None, generator=True):
        lost = next(verdicts) in lost_at
        return {"class_share": 0.05, "degenerate": "classes [1] below 0.5x their original share" if lost else None,
                "satisfied": False}
    m.checked_metric = reading
    m.forget_metric = lambda samples=None, generator=True: {"class_share": 0.05, "degenerate": None, "satisfied": False}
    m.preservation_drift = lambda generator=None: 1.0 if next(drifts) in drifted_at else 0.0
    m.trained_drift = lambda: None


@pytest.mark.parametrize("after, lost_at, drifted_at, off_at", [
    (2, (1, 3), (), 3), (2, (2,), (), None), (0, (1, 2, 3), (), None), (1, (2,), (), 2),
    (2, (1,), (2,), None),  # a step back for drift alone is not a lost class
])
def test_the_adversarial_losses_go_after_the_set_number_of_step_backs_for_lost_classes(tiny, after, lost_at,
                                                                                        drifted_at, off_at):
    """Each check that finds a class lost steps back; at the ``adversarial_off_after``-th such step back the
    generator stage goes on without its adversarial losses and D's stage stops (no D step after it), for the rest
    of the run."""
    G, D, C, train, test = tiny
    m = METHODS["cascaded"](G, D, ForgetRequest.for_class(3), train, oracle=C, show_progress=False,
                            config=UnlearnConfig.of(**FAST, ema=0.0, min_rounds=1, check_every=1, max_rounds=6,
                                                    plateau_checks=0, adversarial_off_after=after))
    _scripted_losses(m, lost_at, drifted_at)
    s = m.run().summary
    marked = [h["round"] for h in s["history"] if h.get("adversarial_off")]
    assert marked == ([off_at] if off_at else []) and s["adversarial_off"] is bool(off_at)
    assert s["d_steps"] == (off_at if off_at else 6)


def test_fine_tuning_cannot_drop_its_adversarial_loss(tiny):
    G, D, C, train, test = tiny
    m = METHODS["finetune"](G, D, ForgetRequest.for_class(3), train, oracle=C, config=UnlearnConfig.of(**FAST))
    assert m.drop_adversarial() is False and m.adversarial


def test_auto_learning_rates_are_the_request_kinds_and_explicit_ones_are_kept(tiny, tiny_gan_top_class):
    G, D, C, train, test = tiny
    by_class = ForgetRequest.for_class(tiny_gan_top_class)
    by_items = ForgetRequest.for_items([1, 2, 3])

    def rates(request, **options):
        m = METHODS["cascaded"](G, D, request, train, UnlearnConfig.of(**FAST, **options), oracle=C, held_out=test)
        return m, m.opt_g.param_groups[0]["lr"], m.opt_d.param_groups[0]["lr"]

    m, lr_g, lr_d = rates(by_class)
    assert (lr_g, lr_d) == (1e-3, 1e-3)
    assert m._back_off(m._snapshot(), 1) == 5e-4 and m.opt_d.param_groups[0]["lr"] == 5e-4  # halved from the kind's
    assert rates(by_items)[1:] == (2e-3, 5e-4)
    assert rates(by_class, lr_g=3e-3)[1:] == (3e-3, 1e-3)  # a rate given is kept, the other stays the kind's
    assert rates(by_items, lr_d=1e-3)[1:] == (2e-3, 1e-3)


def test_learning_rates_take_auto_on_the_command_line():
    from gan_unlearn.errors import UserError
    from gan_unlearn.workflows.cli import _unlearn_epilog, parse_assignments

    types = {k: v[1] for k, v in UnlearnConfig.parameters().items()}
    assert parse_assignments(["lr_g=auto", "lr-d=2e-4"], types) == {"lr_g": None, "lr_d": 2e-4}
    with pytest.raises(UserError, match="not a valid number or auto"):
        parse_assignments(["lr_g=fast"], types)
    with pytest.raises(UserError, match="not a valid float"):  # auto only where a parameter has it
        parse_assignments(["lambda_keep=auto"], types)
    assert "lr_g = auto: > 0 or auto" in _unlearn_epilog()
