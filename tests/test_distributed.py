"""Data-parallel training under torchrun: 2 CPU processes (gloo) train the weights that 1 process trains with
the same global batch, also across an interrupt and resume; only rank 0 writes.

The oracle is a single-process run of the same trainer: DistributedDataParallel averages the gradients
of the two half-batches and the synced BatchNorm normalises with the global batch's statistics, so the
two computations differ only in float summation order. Plain per-process BatchNorm would not pass (see
``test_unsynced_batchnorm_would_differ``).
"""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from gan_unlearn import distributed
from gan_unlearn.checkpoint import load_checkpoint
from gan_unlearn.data import load_dataset
from trainers.classifier import ClassifierConfig, train_classifier
from trainers.gan import GANConfig, train_gan
from trainers.loop import resume_path

CPU = torch.device("cpu")
GAN = dict(epochs=2, batch_size=32, width=8, precision="fp32", channels_last=False, seed=3)

RUNNER = textwrap.dedent("""
    import json, os, sys
    from gan_unlearn.data import load_dataset
    from trainers.classifier import ClassifierConfig, train_classifier
    from trainers.gan import GANConfig, train_gan
    from trainers.loop import TrainingInterrupted

    a = json.loads(sys.argv[1])
    if a["unsynced"]:  # the counterfactual: each process's BatchNorm sees only its half-batch
        import gan_unlearn.distributed as d
        d.sync_batchnorm = lambda module, group=None: module
    data = load_dataset(a["data"], "train", a["root"])
    train, Config = (train_gan, GANConfig) if a["what"] == "gan" else (train_classifier, ClassifierConfig)
    try:
        ckpt = train(data, Config(**a["config"]), "cpu", a["out"], show_progress=False, resume=a["resume"],
                     stop_after_steps=a["stop"], checkpoint_every=a["every"])
        print(f"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}: steps {ckpt['metrics']['steps']}")
    except TrainingInterrupted:
        print(f"rank {os.environ['RANK']}: interrupted")
""")


def torchrun(tmp_path, what: str, data: str, root, config: dict, out, *, resume=False, stop=None, every=0,
             nproc: int = 2, unsynced: bool = False) -> str:
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    args = json.dumps({"what": what, "data": data, "root": str(root), "config": config, "out": str(out),
                       "resume": resume, "stop": stop, "every": every, "unsynced": unsynced})
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), str(script), args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def assert_same_weights(a: dict, b: dict, rel_norm: float = 0.02):
    """Every tensor within ``rel_norm`` of the reference in relative norm (integers exactly equal).

    Not elementwise: Adam normalises each update, so a summation-order difference in a gradient (a half-batch
    per process, another CPU's kernels) can move an element whose gradient is near zero by up to about the
    learning rate per step. Elementwise tolerances that held on an AMD EPYC failed on an Intel Xeon (largest
    difference 3.2e-4 after 16 steps); in relative norm the worst tensor differed by 0.55% there, while the
    unsynced-BatchNorm counterfactual below differs by 97%."""
    assert a["models"].keys() == b["models"].keys()
    for role in a["models"]:
        sa, sb = a["models"][role]["state"], b["models"][role]["state"]
        assert sa.keys() == sb.keys()
        for k in sa:
            if not sa[k].is_floating_point():
                assert torch.equal(sa[k], sb[k]), f"{role}.{k}"
                continue
            rel = ((sb[k] - sa[k]).norm() / sa[k].norm().clamp_min(1e-12)).item()
            assert rel <= rel_norm, f"{role}.{k}: relative difference {rel:.4f} > {rel_norm}"


@pytest.fixture(scope="module")
def single_gan(tmp_path_factory, data_root):
    """The reference, one thread like each torchrun worker (OMP_NUM_THREADS=1): no thread-count-dependent
    summation order on top of the half-batch one."""
    out = tmp_path_factory.mktemp("one") / "gan.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_gan(load_dataset("mnist[:256]", "train", data_root), GANConfig(**GAN), CPU, out,
                         show_progress=False)
    finally:
        torch.set_num_threads(threads)


def test_two_processes_train_the_gan_one_process_trains(tmp_path, data_root, single_gan):
    out = tmp_path / "gan.pt"
    log = torchrun(tmp_path, "gan", "mnist[:256]", data_root, GAN, out)
    assert "rank 0 of 2: steps 16" in log and "rank 1 of 2: steps 16" in log
    two = load_checkpoint(out, kind="gan")
    assert two["runtime"]["processes"] == 2 and single_gan["runtime"]["processes"] == 1
    assert two["metrics"]["steps"] == single_gan["metrics"]["steps"] == 16
    assert_same_weights(single_gan, two)  # running statistics included: BatchNorm saw the global batch
    assert two["history"][-1]["loss_d"] == pytest.approx(single_gan["history"][-1]["loss_d"], rel=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gan.pt", "runner.py"]  # one writer, no resume file left


def test_two_processes_resume_an_interrupted_run(tmp_path, data_root, single_gan):
    out = tmp_path / "gan.pt"
    log = torchrun(tmp_path, "gan", "mnist[:256]", data_root, GAN, out, stop=11, every=4)
    assert log.count("interrupted") == 2 and resume_path(out).exists() and not out.exists()
    torchrun(tmp_path, "gan", "mnist[:256]", data_root, GAN, out, resume=True)
    resumed = load_checkpoint(out, kind="gan")
    assert resumed["metrics"]["resumed"] and not resume_path(out).exists()
    assert_same_weights(single_gan, resumed)


def test_unsynced_batchnorm_would_differ(tmp_path, data_root, single_gan):
    """The equivalence above is not vacuous: per-process BatchNorm statistics give other weights."""
    torchrun(tmp_path, "gan", "mnist[:256]", data_root, GAN, tmp_path / "gan.pt", unsynced=True)
    with pytest.raises(AssertionError):
        assert_same_weights(single_gan, load_checkpoint(tmp_path / "gan.pt", kind="gan"))


def test_two_processes_train_the_classifier_one_process_trains(tmp_path, data_root):
    config = dict(epochs=1, batch_size=50, hidden=32, dropout=0.0, seed=2)  # dropout masks are per process
    data = load_dataset("mnist[:500]", "train", data_root)
    torch.set_num_threads(1)  # like each worker (the conftest restores the count after every test)
    one = train_classifier(data, ClassifierConfig(**config), CPU, tmp_path / "one.pt", show_progress=False)
    torchrun(tmp_path, "classifier", "mnist[:500]", data_root, config, tmp_path / "two.pt")
    assert_same_weights(one, load_checkpoint(tmp_path / "two.pt", kind="classifier"))


def test_a_batch_that_does_not_split_evenly_is_refused():
    session = distributed.Session(rank=1, world_size=2)
    assert session.shard(64) == slice(32, 64)
    with pytest.raises(Exception, match="multiple of 2"):
        session.shard(63)


def test_one_process_is_a_session_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    session = distributed.start("cpu")
    assert (session.rank, session.world_size, session.distributed) == (0, 1, False)
    model = nn.BatchNorm2d(3)
    assert distributed.wrap(model, session) is model and type(model) is nn.BatchNorm2d
    assert distributed.is_main_process()


def test_synced_batchnorm_swaps_forward_only():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    keys = list(model.state_dict())
    distributed.sync_batchnorm(model)
    assert type(model[1]) is distributed.SyncedBatchNorm2d and list(model.state_dict()) == keys
    x = torch.randn(8, 1, 6, 6)
    torch.testing.assert_close(model(x), nn.functional.batch_norm(model[0](x), None, None, model[1].weight,
                                                                  model[1].bias, training=True))  # one process
    distributed.unsync_batchnorm(model)
    assert type(model[1]) is nn.BatchNorm2d and list(model.state_dict()) == keys
