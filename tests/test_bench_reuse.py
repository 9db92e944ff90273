"""Benchmarks resume by reusing an unlearning checkpoint: only one made by the same method, parameters, code and
oracle from the same original for the same request on the same hardware may stand in for a new run."""

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import benchlib  # noqa: E402

from gan_unlearn.checkpoint import file_sha256  # noqa: E402
from gan_unlearn.forget import ForgetRequest  # noqa: E402
from gan_unlearn.workflows.unlearning import unlearn_checkpoint  # noqa: E402
from trainers.unlearning import UnlearnConfig  # noqa: E402

from .test_cascaded import FAST as CASCADE_FAST  # noqa: E402  (gate off)

FAST = {**CASCADE_FAST, "max_rounds": 2}


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_gan_ckpt, tiny_oracle_ckpt, data_root):
    """One class and one item unlearning run of the tiny GAN, as a benchmark leaves them in its folder."""
    out = tmp_path_factory.mktemp("bench")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))  # as the conftest sets it for every test: the
    # thread count is part of the hardware a timing is reused on, and a module fixture runs before the conftest's
    config = UnlearnConfig.of(seed=0, **FAST)
    runs = {}
    for name, request in (("class", ForgetRequest.for_class(1)), ("item", ForgetRequest.for_items(range(0, 64, 4)))):
        path = out / f"{name}.pt"
        unlearn_checkpoint(tiny_gan_ckpt, request, path, oracle_path=tiny_oracle_ckpt, config=config,
                           data_root=data_root, device="cpu", show_progress=False)
        runs[name] = (path, request)
    return runs, config


def record(made, tiny_gan_ckpt, tiny_oracle_ckpt, which="class", **changes):
    runs, config = made
    path, request = runs[which]
    args = dict(gan_sha256=file_sha256(tiny_gan_ckpt), request=request, method="cascaded", device="cpu",
                config=config, oracle_sha256=file_sha256(tiny_oracle_ckpt))
    args.update(changes)
    return benchlib.unlearning_record(path, **args)


def test_the_same_run_is_reused_and_reports_what_it_recorded(made, tiny_gan_ckpt, tiny_oracle_ckpt):
    for which in ("class", "item"):
        u = record(made, tiny_gan_ckpt, tiny_oracle_ckpt, which)
        assert u is not None and u["method"] == "cascaded"
        r = benchlib.reused(made[0][which][0], u)
        assert r["seconds"] == u["seconds"] > 0 and r["reused_from"] == str(made[0][which][0])
        assert r["drift_limit"] == pytest.approx(max(0.15, 0.45 * r["guard_spread"]))
        assert r["device"].startswith("cpu: ") and r["runtime"]["precision"] == "fp32"


def test_any_difference_in_how_it_was_made_means_a_new_run(made, tiny_gan_ckpt, tiny_oracle_ckpt, tiny_judge_ckpt,
                                                           monkeypatch):
    base = dict(made=made, tiny_gan_ckpt=tiny_gan_ckpt, tiny_oracle_ckpt=tiny_oracle_ckpt)
    assert record(**base, config=UnlearnConfig.of(seed=1, **FAST)) is None  # another seed
    assert record(**base, config=UnlearnConfig.of(seed=0, **dict(FAST, max_rounds=3))) is None  # parameters
    assert record(**base, oracle_sha256=file_sha256(tiny_judge_ckpt)) is None  # another oracle picks other latents
    assert record(**base, request=ForgetRequest.for_class(2)) is None  # another request
    assert record(**base, gan_sha256="0" * 64) is None  # another original
    assert record(**base, method="finetune") is None
    with monkeypatch.context() as m:  # another machine: its seconds would be another machine's
        m.setattr(benchlib, "device_description", lambda device: "cuda: some GPU")
        assert record(**base) is None
    with monkeypatch.context() as m:  # the method's code changed since
        m.setattr(benchlib, "code_sha256", lambda: "f" * 64)
        assert record(**base) is None
    assert record(**base) is not None  # and unchanged, the same run again


def test_an_item_run_is_reused_only_with_its_secret(made, tiny_gan_ckpt, tiny_oracle_ckpt):
    path, request = made[0]["item"]
    other = ForgetRequest.for_items(range(1, 64, 4))  # as many items, others
    assert record(made, tiny_gan_ckpt, tiny_oracle_ckpt, "item", request=other) is None
    secret = path.with_name(path.name + ".secret")
    kept = secret.read_bytes()
    secret.unlink()
    try:
        assert record(made, tiny_gan_ckpt, tiny_oracle_ckpt, "item") is None
    finally:
        secret.write_bytes(kept)
    assert record(made, tiny_gan_ckpt, tiny_oracle_ckpt, "item") is not None


def test_an_oracle_is_reused_only_with_the_epochs_seed_and_width_it_was_trained_with(tmp_path, tiny_oracle_ckpt,
                                                                                      data_root):
    """The tiny oracle was trained 2 epochs, seed 0, width 128: asked for exactly that, the benchmark reuses it;
    asked for other epochs (or width), it stops with a one-line error and leaves the file as it was."""
    path = tmp_path / "oracle.pt"
    path.write_bytes(Path(tiny_oracle_ckpt).read_bytes())
    before = file_sha256(path)
    same = benchlib.ensure_oracle("mnist", data_root, path, 2, 0, False, True, hidden=128)
    assert same["reused"] and same["test_accuracy"] > 0.5
    for epochs, hidden in ((15, 128), (2, 512)):
        with pytest.raises(SystemExit, match="was trained with"):
            benchlib.ensure_oracle("mnist", data_root, path, epochs, 0, False, True, hidden=hidden)
    assert file_sha256(path) == before


def test_a_result_file_names_the_commit_that_made_it():
    """machine() records the checkout's commit (as git names it, "+changes" when tracked files differ), so a
    result file says which code made it."""
    import subprocess

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(benchlib.__file__).parent,
                          capture_output=True, text=True, check=True).stdout.strip()
    code = benchlib.machine()["code"]
    assert code.split("+")[0] == head and code in (head, head + "+changes")
