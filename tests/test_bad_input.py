"""Issue 13, the second round of bad input: nothing overwritten, nothing recoverable, nothing non-finite
passed off as success. Each case runs the command as a user would and checks the one-line error (non-zero
exit, no traceback) or the refusal, and that every input file is byte-identical afterwards."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from gan_unlearn.checkpoint import json_bytes, load_checkpoint, save_checkpoint, write_together
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest, read_secret

from .test_cli import assert_clean_failure, listing, run

# the smallest unlearning run that still does every phase once
QUICK = ["--max-rounds", 1, "--set", "pool_size=64", "--set", "check_samples=50", "--set", "held_out=50",
         "--set", "min_rounds=1", "--set", "check_every=1", "--set", "target_pool=100", "--precision", "fp32",
         "--quiet"]


def digests(*paths):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture
def gan(tmp_path, tiny_gan_ckpt):
    """A private copy of the tiny GAN, so a test may place files beside it."""
    p = tmp_path / "gan.pt"
    shutil.copyfile(tiny_gan_ckpt, p)
    return p


def _modified(src, dst, change):
    ckpt = torch.load(src, weights_only=True)
    change(ckpt)
    torch.save(ckpt, dst)
    return dst


# --- 1. inputs overwritten through side files -------------------------------------------------------------
def test_summary_beside_the_output_may_not_be_an_input(tmp_path, gan, data_root):
    victim = tmp_path / "victim.pt.json"  # a checkpoint named like the summary of --out victim.pt
    shutil.copyfile(gan, victim)
    before = digests(victim)
    result = run("unlearn", "--gan", victim, "--forget-items", "1,2", "--data-root", data_root, *QUICK,
                 "--out", tmp_path / "victim.pt")
    assert_clean_failure(result, "is the input")
    assert digests(victim) == before and not (tmp_path / "victim.pt").exists()


def test_summary_path_that_is_a_folder_is_refused_before_work(tmp_path, gan, data_root):
    (tmp_path / "out.pt.json").mkdir()
    before = digests(gan)
    result = run("unlearn", "--gan", gan, "--forget-items", "1,2", "--data-root", data_root, *QUICK,
                 "--out", tmp_path / "out.pt")
    assert_clean_failure(result, "out.pt.json is a folder")
    assert digests(gan) == before
    assert listing(tmp_path) == ["gan.pt", "out.pt.json"]  # no result without its summary


def test_outputs_may_not_overwrite_the_dataset_or_each_other(tmp_path, gan):
    x = np.zeros((40, 28, 28), np.uint8)
    with open(tmp_path / "g_samples.png", "wb") as f:  # a dataset where train-gan --out g.pt puts its grid
        np.savez(f, x_train=x, y_train=np.arange(40) % 2)
    data = f"npz:{tmp_path / 'g_samples.png'}"
    before = digests(tmp_path / "g_samples.png", gan)
    assert_clean_failure(run("train-gan", "--dataset", data, "--quiet", "--out", tmp_path / "g.pt"),
                         "g_samples.png is the input")
    assert_clean_failure(run("train-gan", "--dataset", data, "--quiet", "--out", tmp_path / "g_samples.png"),
                         "is the input")
    assert_clean_failure(run("sample", "--gan", gan, "--out", tmp_path / "." / "gan.pt"), "is the input")
    assert_clean_failure(run("relevance", "--model", gan, "--class", 1, "--plot", tmp_path / "r.png", "--json",
                             tmp_path / "r.png"), "would be the same file")
    assert digests(tmp_path / "g_samples.png", gan) == before
    assert listing(tmp_path) == ["g_samples.png", "gan.pt"]


def test_evaluate_checks_every_output_against_every_input(tmp_path, gan, tiny_oracle_ckpt, data_root):
    out = tmp_path / "ev"
    out.mkdir()
    shutil.copyfile(gan, out / "report.md")  # an input that is also where the report goes
    (tmp_path / "d1").mkdir(), (tmp_path / "d2").mkdir()
    shutil.copyfile(gan, tmp_path / "d1" / "m.pt"), shutil.copyfile(gan, tmp_path / "d2" / "m.pt")
    before = digests(out / "report.md", tmp_path / "d1" / "m.pt", tmp_path / "d2" / "m.pt", tiny_oracle_ckpt)
    common = ["--oracle", tiny_oracle_ckpt, "--samples", 100, "--data-root", data_root, "--quiet", "--out-dir", out]
    assert_clean_failure(run("evaluate", out / "report.md", *common), "is the input")
    assert_clean_failure(run("evaluate", gan, "--oracle", out / "report.md", "--samples", 100, "--data-root",
                             data_root, "--quiet", "--out-dir", out), "is the input")
    assert digests(out / "report.md", tmp_path / "d1" / "m.pt", tmp_path / "d2" / "m.pt", tiny_oracle_ckpt) == before
    assert listing(out) == ["report.md"]
    dups = tmp_path / "dups"
    dups.mkdir()
    dup = run("evaluate", tmp_path / "d1" / "m.pt", tmp_path / "d2" / "m.pt", *common[:-1], dups)
    if dup.exit_code == 0:  # labels made distinct: one grid per model, none overwritten
        assert len([p for p in listing(dups) if p.endswith(".png")]) == 2
    else:
        assert_clean_failure(dup, "same file")
        assert listing(dups) == []
    assert set(digests(tmp_path / "d1" / "m.pt", tmp_path / "d2" / "m.pt").values()) == set(digests(gan).values())


def test_files_written_together_land_together_or_not_at_all(tmp_path):
    def broken(f):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_together({tmp_path / "a.pt": lambda f: f.write(b"a"), tmp_path / "a.pt.json": broken})
    assert listing(tmp_path) == []  # neither file, no temporaries
    (tmp_path / "a.pt.json").mkdir()  # the rename of the second file fails after the first one landed
    with pytest.raises(OSError):
        write_together({tmp_path / "a.pt": lambda f: f.write(b"a"), tmp_path / "a.pt.json": lambda f: f.write(b"{}")})
    assert listing(tmp_path) == ["a.pt.json"]


# --- 2. non-finite weights ----------------------------------------------------------------------------------
@pytest.fixture
def nan_gan(tmp_path, tiny_gan_ckpt):
    def poison(c):
        c["models"]["generator"]["state"]["net.3.weight"][0] = float("nan")

    return _modified(tiny_gan_ckpt, tmp_path / "nan.pt", poison)


def test_non_finite_checkpoints_are_refused_by_every_command(tmp_path, nan_gan, tiny_oracle_ckpt, data_root):
    before = digests(nan_gan)
    out = tmp_path / "ev"
    out.mkdir()
    for args in (["sample", "--gan", nan_gan, "--out", tmp_path / "s.png"],
                 ["unlearn", "--gan", nan_gan, "--forget-class", 1, "--oracle", tiny_oracle_ckpt, "--data-root",
                  data_root, *QUICK, "--out", tmp_path / "u.pt"],
                 ["evaluate", nan_gan, "--oracle", tiny_oracle_ckpt, "--samples", 100, "--data-root", data_root,
                  "--quiet", "--out-dir", out]):
        assert_clean_failure(run(*args), "generator tensor net.3.weight holds NaN or Inf")
    info = run("info", nan_gan)  # shows the metadata, then says the weights are broken
    assert info.exit_code == 1 and "dcgan-generator" in info.output and "Traceback" not in info.output
    assert info.output.strip().splitlines()[-1].startswith("Error: ") and "net.3.weight" in info.output
    assert digests(nan_gan) == before and listing(out) == [] and sorted(listing(tmp_path)) == ["ev", "nan.pt"]


def test_a_diverged_model_is_never_written(tmp_path, data_root):
    from gan_unlearn.checkpoint import model_entry
    from gan_unlearn.models import Generator

    G = Generator(28, 1, latent_dim=8, width=4)
    with torch.no_grad():
        G.net[0].weight.fill_(float("inf"))
    ckpt = {"kind": "gan", "models": {"generator": model_entry(G)},
            "dataset": {"name": "mnist", "image_shape": [1, 28, 28], "num_classes": 10, "size": 1}}
    with pytest.raises(UserError, match="refusing to write .*generator tensor net.0.weight holds NaN or Inf"):
        save_checkpoint(tmp_path / "g.pt", ckpt, together={tmp_path / "g.pt.json": lambda f: f.write(b"{}")})
    assert listing(tmp_path) == []
    for lr in ("inf", "nan", "-1", "0"):
        assert_clean_failure(run("train-gan", "--dataset", "mnist", "--data-root", data_root, "--lr", lr,
                                 "--out", tmp_path / "g.pt"), "--lr")
    assert_clean_failure(run("unlearn", "--gan", tmp_path / "missing.pt", "--forget-class", 1,
                             "--set", "lambda_keep=inf", "--out", tmp_path / "u.pt"), "lambda-keep must be a finite number")
    assert listing(tmp_path) == []


def test_a_run_that_diverges_leaves_nothing(tmp_path, gan, data_root, monkeypatch):
    """Whatever makes a run diverge (a learning rate that is finite but far too large, a loss weight), the
    result is an error and no file: neither the checkpoint nor its grid, summary or secret."""
    from trainers.gan import GANTrainer

    from gan_unlearn.workflows import unlearning

    final = GANTrainer.final_checkpoint

    def diverged(self):
        ckpt = final(self)
        ckpt["models"]["generator"]["state"]["net.0.weight"].fill_(float("nan"))
        return ckpt

    monkeypatch.setattr(GANTrainer, "final_checkpoint", diverged)
    out = tmp_path / "out"
    out.mkdir()
    result = run("train-gan", "--dataset", "mnist", "--data-root", data_root, "--limit", 64, "--epochs", 1,
                 "--width", 4, "--batch-size", 32, "--quiet", "--out", out / "g.pt")
    assert_clean_failure(result, "generator tensor net.0.weight holds NaN or Inf")
    assert listing(out) == []  # no checkpoint, and the sample grid of the diverged run removed

    real_unlearn = unlearning.unlearn

    def unlearn_to_nan(*args, **kwargs):
        r = real_unlearn(*args, **kwargs)
        with torch.no_grad():
            next(r.generator.parameters()).fill_(float("inf"))
        return r

    monkeypatch.setattr(unlearning, "unlearn", unlearn_to_nan)
    before = digests(gan)
    result = run("unlearn", "--gan", gan, "--forget-items", "1,2", "--data-root", data_root, *QUICK,
                 "--out", out / "u.pt")
    assert_clean_failure(result, "produced NaN or Inf weights")
    assert listing(out) == [] and digests(gan) == before


def test_summaries_are_strict_json():
    text = json_bytes({"fid": float("nan"), "auc": [0.5, float("inf")], "n": 3}).decode()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {"fid": None, "auc": [0.5, None],
                                                                                    "n": 3}


# --- 4. the private request record --------------------------------------------------------------------------
def test_one_item_request_cannot_be_recovered_from_the_checkpoint(tmp_path, gan, tiny_oracle_ckpt, data_root):
    before = digests(gan)
    out = tmp_path / "u.pt"
    result = run("unlearn", "--gan", gan, "--forget-items", 321, "--data-root", data_root, *QUICK, "--out", out)
    assert result.exit_code == 0, result.output
    secret_file = tmp_path / "u.pt.secret"
    assert (secret_file.stat().st_mode & 0o777) == 0o600 and digests(gan) == before
    secret = read_secret(secret_file)
    record = load_checkpoint(out)["unlearning"]["request"]
    summary = json.loads((tmp_path / "u.pt.json").read_text())
    # the index appears nowhere but by chance inside the random hex digests (about 1 run in 70 has "321" there)
    digests_only = {"commitment", "secret_fingerprint"}
    plain = {k: v for k, v in record.items() if k not in digests_only}
    assert summary["request"] == record and record["num_items"] == 1 and "321" not in json.dumps(plain)
    assert all(isinstance(record[k], str) and int(record[k], 16) >= 0 for k in digests_only)
    stored = out.read_bytes() + (tmp_path / "u.pt.json").read_bytes()
    assert secret not in stored and secret.hex().encode() not in stored  # the key stays outside
    # brute force over every MNIST index: the unsalted hash of the old records finds nothing, and so does the
    # keyed commitment under any key but the secret (here a guessed one); with the secret exactly 321 matches
    values = {str(v) for v in record.values()}
    guessed = b"\0" * 32
    for i in range(60000):
        req = ForgetRequest.for_items([i])
        assert req.hash() not in values and req.commitment(guessed) not in values
    assert [i for i in range(60000) if ForgetRequest.for_items([i]).commitment(secret) == record["commitment"]] == [321]
    # evaluate verifies with the secret, refuses another request, and without the secret says it could not verify
    ev = tmp_path / "ev"
    ev.mkdir()
    common = ["--oracle", tiny_oracle_ckpt, "--samples", 100, "--data-root", data_root, "--quiet", "--out-dir", ev]
    assert_clean_failure(run("evaluate", out, "--forget-items", 322, "--request-secret", secret_file, *common),
                         "is not the one the checkpoint was unlearned with")
    ok = run("evaluate", out, "--forget-items", 321, "--request-secret", secret_file, *common)
    assert ok.exit_code == 0 and "could not verify" not in ok.output, ok.output
    unverified = run("evaluate", out, "--forget-items", 321, *common)
    assert unverified.exit_code == 0 and "could not verify" in unverified.output, unverified.output
    assert "could not verify" in " ".join(json.loads((ev / "report.json").read_text())["notes"])


def test_request_records_and_verification():
    secret = bytes(range(32))
    req = ForgetRequest.for_items([3, 5])
    rec = req.describe(secret)
    assert set(rec) == {"kind", "num_items", "commitment", "commitment_scheme", "secret_fingerprint"}
    assert req.verify(rec, secret) is True and req.verify(rec) is False  # no secret: cannot verify
    with pytest.raises(UserError, match="not the one"):
        ForgetRequest.for_items([3, 6]).verify(rec, secret)
    with pytest.raises(UserError, match="secret given is not the one"):
        req.verify(rec, bytes(32))
    cls = ForgetRequest.for_class(4).describe()
    assert cls["class_id"] == 4 and ForgetRequest.for_class(4).verify(cls)  # a class is public by design


# --- 5. one line instead of a traceback ---------------------------------------------------------------------
def _bad_checkpoints(src, folder):
    def set_(path, value):
        def change(c):
            node = c
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
        return change

    return {
        "models_list": (set_(["models"], [1, 2]), "'models' must be a non-empty dict"),
        "shape2": (set_(["dataset", "image_shape"], [28, 28]), "image_shape must be 3 positive integers"),
        "metrics": (set_(["metrics"], [1]), "'metrics' must be a dict"),
        "wide": (set_(["models", "generator", "spec", "width"], 10**6), "width must be in 1..1024"),
    }


@pytest.mark.parametrize("name", ["models_list", "shape2", "metrics", "wide"])
def test_malformed_checkpoints(tmp_path, tiny_gan_ckpt, name):
    change, message = _bad_checkpoints(tiny_gan_ckpt, tmp_path)[name]
    bad = _modified(tiny_gan_ckpt, tmp_path / f"{name}.pt", change)
    before = digests(bad)
    for args in (["info", bad], ["sample", "--gan", bad, "--out", tmp_path / "s.png"]):
        assert_clean_failure(run(*args), message)
    assert digests(bad) == before and listing(tmp_path) == [f"{name}.pt"]


def test_bad_options_and_item_files(tmp_path, gan, tiny_oracle_ckpt, data_root):
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    inputs = [gan, tiny_oracle_ckpt, tmp_path / "binary.txt", tmp_path / "deep.json"]
    before = digests(*inputs)
    out = tmp_path / "u.pt"
    unlearn = ["unlearn", "--gan", gan, "--oracle", tiny_oracle_ckpt, "--data-root", data_root, "--out", out]
    cases = [
        (["train-gan", "--dataset", "mnist", "--seed", "1e20", "--out", out], "--seed"),
        (["train-gan", "--dataset", "mnist", "--seed", 10**20, "--out", out], "--seed"),
        (["train-classifier", "--dataset", "mnist", "--lr", "nan", "--out", out], "--lr"),
        ([*unlearn, "--forget-class", 1, "--set", "lr_g=-1"], "lr-g must be > 0"),
        ([*unlearn, "--forget-class", 1, "--set", "lr_g=nan"], "lr-g must be a finite number > 0"),
        ([*unlearn, "--forget-class", 1, "--set", "beta1=2"], "beta1 must be in [0, 1)"),
        ([*unlearn, "--forget-class", 1, "--set", "held_out=0"], "held-out must be >= 1"),
        ([*unlearn, "--forget-class", 1, "--set", "focus_fraction=2"], "focus-fraction must be in [0, 1]"),
        ([*unlearn, "--forget-class", 1, "--set", "max_rounds=2", "--max-rounds", 3], "repeats an option"),
        ([*unlearn, "--forget-items", tmp_path / "binary.txt"], "is not a text file"),
        ([*unlearn, "--forget-items", tmp_path / "deep.json"], "flat list of integers"),
        (["unlearn-classifier", "--model", tiny_oracle_ckpt, "--forget-class", 1, "--set", "top_h=-1",
          "--data-root", data_root, "--out", out], "top_h must be a finite number >= 1"),
        (["unlearn-classifier", "--model", tiny_oracle_ckpt, "--forget-class", 1, "--set", "top_h=abc",
          "--data-root", data_root, "--out", out], "'abc' is not a valid int"),
        (["unlearn-classifier", "--model", tiny_oracle_ckpt, "--forget-class", 1, "--method", "jit", "--set",
          "lr=inf", "--data-root", data_root, "--out", out], "lr must be a finite number > 0"),
    ]
    for args, message in cases:
        assert_clean_failure(run(*args), message)
    assert digests(*inputs) == before and not out.exists()


def _npz(path, x, y, **more):
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y, **more)
    return f"npz:{path}"


@pytest.mark.parametrize("make,message", [
    (lambda p: _npz(p, np.zeros((4, 2, 2), np.uint8), np.arange(4) % 2), "must be square, 8x8 to 512x512"),
    (lambda p: _npz(p, np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 200, 1])), "classes 2..199 have no images"),
    (lambda p: _npz(p, np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 10**9, 1])), "label 1000000000 is out of range"),
    (lambda p: _npz(p, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)), "holds no images"),
    (lambda p: _npz(p, np.zeros((4, 28, 28), np.uint8), np.arange(4), num_classes=np.int64(3)),
     "num_classes 3 must be in 1..1000 and above every label"),
])
def test_bad_npz_data(tmp_path, make, message):
    name = make(tmp_path / "d.npz")
    before = digests(tmp_path / "d.npz")
    assert_clean_failure(run("train-classifier", "--dataset", name, "--epochs", 1, "--quiet",
                             "--out", tmp_path / "c.pt"), message)
    assert digests(tmp_path / "d.npz") == before and listing(tmp_path) == ["d.npz"]


def test_npz_may_declare_classes_without_images(tmp_path):
    from gan_unlearn.data import load_dataset

    name = _npz(tmp_path / "d.npz", np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 3, 1]), num_classes=np.int64(10))
    assert load_dataset(name, "train").num_classes == 10  # augment's synthetic.npz leaves the forgotten class out


def _mnist_copy(data_root, root, change_file=None, change=None):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        src = data_root / "MNIST" / "raw" / f
        if f == change_file:
            (raw / f).write_bytes(change(src.read_bytes()))
        else:
            (raw / f).symlink_to(src)
    return raw


@pytest.mark.parametrize("change_file,change,message", [
    ("train-images-idx3-ubyte", lambda b: b[:100000], "is corrupt or truncated"),
    ("train-labels-idx1-ubyte", lambda b: b[:8] + bytes([200]) + b[9:], "labels 0..200 (expected 0..9)"),
])
def test_corrupt_mnist_files(tmp_path, data_root, change_file, change, message):
    root = tmp_path / "root"
    raw = _mnist_copy(data_root, root, change_file, change)
    before = digests(raw / change_file)
    assert_clean_failure(run("train-gan", "--dataset", "mnist", "--data-root", root, "--out", tmp_path / "g.pt"),
                         message)
    assert digests(raw / change_file) == before and not (tmp_path / "g.pt").exists()


# --- 6. accepted silently before ----------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--set", "ema=2"], "ema must be in [0, 1)"),
    (["--set", "ema=-1"], "ema must be in [0, 1)"),
    (["--set", "min_rounds=-1"], "min-rounds must be >= 0"),
    (["--set", "d_steps=0"], "d-steps must be >= 1"),
    (["--set", "item_neighbours=0"], "item-neighbours must be >= 1"),
    (["--forget-target", "nan"], "is not a finite number"),
    (["--forget-target", "-1"], "is not in the range 0<=x<=1"),
    (["--set", "keep_fresh=maybe"], "'maybe' is not a valid bool"),
])
def test_out_of_range_parameters_are_refused(tmp_path, gan, tiny_oracle_ckpt, data_root, args, message):
    before = digests(gan, tiny_oracle_ckpt)
    result = run("unlearn", "--gan", gan, "--forget-class", 1, "--oracle", tiny_oracle_ckpt, "--data-root", data_root,
                 *args, "--out", tmp_path / "u.pt")
    assert_clean_failure(result, message)
    assert digests(gan, tiny_oracle_ckpt) == before and listing(tmp_path) == ["gan.pt"]


def test_every_unlearning_parameter_declares_its_range_and_help():
    from trainers.unlearning import UnlearnConfig

    ranges, params = UnlearnConfig.ranges(), UnlearnConfig.parameters()
    assert set(ranges) == {k for k in params if "." not in k}
    for name, (valid, text) in ranges.items():
        assert text and valid.contains(params[name][2]), name  # every default lies in its own range
    help_text = run("unlearn", "--help").output
    assert "lr_g = auto: > 0 or auto" in help_text and "ema = 0.97: in [0, 1)" in help_text


def test_size_options_stop_where_the_checkpoint_bounds_do():
    """train-gan --width 10^6 would build a 78 GB generator: the options end where a checkpoint spec's bounds end."""
    from gan_unlearn.models import SPEC_BOUNDS
    from gan_unlearn.workflows.cli import main

    def upper(command, option):
        return next(p for p in main.commands[command].params if p.name == option).type.max

    assert upper("train-gan", "width") == SPEC_BOUNDS["dcgan-generator"]["width"][2]
    assert upper("train-gan", "latent_dim") == SPEC_BOUNDS["dcgan-generator"]["latent_dim"][2]
    assert upper("train-classifier", "hidden") == SPEC_BOUNDS["cnn-classifier"]["hidden"][2]
    assert_clean_failure(run("train-gan", "--dataset", "mnist", "--width", 10**6, "--out", "g.pt"), "--width")
