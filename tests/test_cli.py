"""The command line on real data at small scale, and every bad input: one-line error, non-zero exit,
nothing written."""

import contextlib
import io
import os
import pickle
from dataclasses import dataclass

import pytest
import torch
from gan_unlearn.workflows.cli import entry_point


@dataclass
class Result:
    exit_code: int
    output: str
    exception: BaseException | None = None


def run(*args) -> Result:
    """Run the console entry point in-process (stdout and stderr captured together), as a user would."""
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            entry_point([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Result(code, out.getvalue())


def assert_clean_failure(result, message):
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_help_explains_each_command():
    for cmd in ("train-gan", "train-classifier", "sample", "info"):
        result = run(cmd, "--help")
        assert result.exit_code == 0 and "--help" in result.output
    assert "--data-root" in run("train-gan", "--help").output


def test_train_sample_info_on_mnist(tmp_path, data_root):
    out = tmp_path / "gan.pt"
    result = run("train-gan", "--dataset", "mnist", "--data-root", data_root, "--limit", 256, "--epochs", 1,
                 "--width", 8, "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.exists() and (tmp_path / "gan_samples.png").exists()
    result = run("sample", "--gan", out, "--num", 16, "--out", tmp_path / "grid.png")
    assert result.exit_code == 0 and (tmp_path / "grid.png").stat().st_size > 0
    result = run("info", out)
    assert result.exit_code == 0 and "dcgan-generator" in result.output and "mnist[:256]" in result.output


def test_train_classifier_on_cifar_subset_npz(tmp_path, data_root, cifar_npz):
    out = tmp_path / "clf.pt"
    result = run("train-classifier", "--dataset", cifar_npz, "--data-root", data_root, "--limit", 2048,
                 "--epochs", 2, "--hidden", 64, "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "1017" in result.output
    ckpt = torch.load(out, weights_only=True)
    assert 0.15 < ckpt["metrics"]["test_accuracy"] <= 1 and ckpt["dataset"]["image_shape"] == [3, 32, 32]


def test_train_gan_on_cifar_subset_npz(tmp_path, data_root, cifar_npz):
    out = tmp_path / "gan.pt"
    result = run("train-gan", "--dataset", cifar_npz, "--data-root", data_root, "--limit", 128, "--epochs", 1,
                 "--width", 4, "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    result = run("sample", "--gan", out, "--num", 4, "--out", tmp_path / "s.npz")
    import numpy as np

    assert np.load(tmp_path / "s.npz")["x"].shape == (4, 32, 32, 3)


BAD_TRAIN = [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--dataset", "cifar10"], "cifar10 not found under"),  # offline, not in the data root
    (["--dataset", "npz:missing.npz"], "npz file not found"),
]


@pytest.mark.parametrize("args,message", BAD_TRAIN)
def test_bad_datasets(tmp_path, data_root, args, message):
    out = tmp_path / "out"
    out.mkdir()
    result = run("train-gan", *args, "--data-root", data_root, "--out", out / "g.pt")
    assert_clean_failure(result, message)
    assert listing(out) == []


def test_missing_data_files_offline(tmp_path):
    empty = tmp_path / "empty_root"
    empty.mkdir()
    result = run("train-classifier", "--dataset", "mnist", "--data-root", empty, "--out", tmp_path / "c.pt")
    assert_clean_failure(result, "mnist not found under")
    assert listing(tmp_path) == ["empty_root"]


def test_class_out_of_range(tmp_path, data_root):
    result = run("train-classifier", "--dataset", "mnist", "--data-root", data_root, "--exclude-class", 10,
                 "--out", tmp_path / "c.pt")
    assert_clean_failure(result, "class 10 is out of range")
    assert listing(tmp_path) == []


def test_output_in_missing_or_read_only_folder(tmp_path, data_root, tiny_gan_ckpt):
    result = run("sample", "--gan", tiny_gan_ckpt, "--out", tmp_path / "nope" / "s.png")
    assert_clean_failure(result, "does not exist")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        result = run("train-gan", "--dataset", "mnist", "--data-root", data_root, "--out", ro / "g.pt")
        assert_clean_failure(result, "read-only")
        assert listing(ro) == []
    finally:
        ro.chmod(0o755)


def test_corrupt_truncated_and_code_carrying_checkpoints(tmp_path, tiny_gan_ckpt):
    data = tiny_gan_ckpt.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 3])
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": "gan-unlearn/1", "x": Evil()}, f, protocol=2)
    before = listing(tmp_path)
    assert_clean_failure(run("info", tmp_path / "trunc.pt"), "corrupt or truncated")
    assert_clean_failure(run("sample", "--gan", tmp_path / "evil.pt", "--out", tmp_path / "s.png"),
                         "possibly code); refusing to load it")
    assert not marker.exists()
    assert listing(tmp_path) == before


def test_wrong_checkpoint_kind(tmp_path, tiny_oracle_ckpt):
    result = run("sample", "--gan", tiny_oracle_ckpt, "--out", tmp_path / "s.png")
    assert_clean_failure(result, "holds a classifier checkpoint, but a gan checkpoint is needed")
    assert listing(tmp_path) == []
