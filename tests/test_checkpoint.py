import os
import pickle

import pytest
import torch

from gan_unlearn.checkpoint import (check_dataset_matches, check_output_path, load_checkpoint, model_entry,
                                    restore_model, save_checkpoint)
from gan_unlearn.data import load_dataset
from gan_unlearn.errors import UserError
from gan_unlearn.models import Generator


class _RunsCode:
    """A pickle payload that would create a marker file if it were ever unpickled unsafely."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _gan_checkpoint():
    G = Generator(28, 1, latent_dim=8, width=4)
    return G, {"kind": "gan", "models": {"generator": model_entry(G)},
               "dataset": {"name": "mnist", "image_shape": [1, 28, 28], "num_classes": 10, "size": 1}}


def test_round_trip_restores_identical_weights(tmp_path):
    G, ckpt = _gan_checkpoint()
    save_checkpoint(tmp_path / "g.pt", ckpt)
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]  # no temporary left behind
    loaded = load_checkpoint(tmp_path / "g.pt", kind="gan")
    H = restore_model(loaded, "generator")
    for a, b in zip(G.state_dict().values(), H.state_dict().values()):
        assert torch.equal(a, b)


def test_corrupt_and_truncated_files(tmp_path):
    _, ckpt = _gan_checkpoint()
    save_checkpoint(tmp_path / "g.pt", ckpt)
    data = (tmp_path / "g.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 10)
    for name in ("trunc.pt", "junk.pt"):
        with pytest.raises(UserError, match="corrupt or truncated"):
            load_checkpoint(tmp_path / name)


def test_code_carrying_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "gan-unlearn/1", "payload": _RunsCode(marker)}, tmp_path / "evil.pt")
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(_RunsCode(marker), f, protocol=4)
    with pytest.raises(UserError, match="possibly code\\); refusing to load it"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(UserError, match="refusing to load it"):
        load_checkpoint(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_foreign_and_wrong_kind(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a gan-unlearn checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    _, ckpt = _gan_checkpoint()
    save_checkpoint(tmp_path / "g.pt", ckpt)
    with pytest.raises(UserError, match="holds a gan checkpoint, but a classifier"):
        load_checkpoint(tmp_path / "g.pt", kind="classifier")
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_wrong_dataset_is_a_clear_error(cifar_npz, data_root):
    _, ckpt = _gan_checkpoint()
    cifar = load_dataset(cifar_npz, "test", data_root)
    with pytest.raises(UserError, match=r"trained on mnist \(1x28x28, 10 classes\), not on npz:.*3x32x32"):
        check_dataset_matches(ckpt, cifar)


def test_weights_that_do_not_fit_the_architecture(tmp_path):
    _, ckpt = _gan_checkpoint()
    ckpt["models"]["generator"]["spec"]["width"] = 8
    with pytest.raises(UserError, match="do not fit"):
        restore_model(ckpt, "generator")


def test_output_path_checks(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "x.pt")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(UserError, match="read-only"):
            check_output_path(ro / "x.pt")
    finally:
        ro.chmod(0o755)
    with pytest.raises(UserError, match="is a folder"):
        check_output_path(tmp_path)
    (tmp_path / "in.pt").write_bytes(b"x")
    with pytest.raises(UserError, match="is the input"):
        check_output_path(tmp_path / "in.pt", inputs=(tmp_path / "in.pt",))
    with pytest.raises(UserError, match="is the input"):  # another spelling, or a link, of the same file
        check_output_path(tmp_path / "." / "in.pt", inputs=(tmp_path / "in.pt",))
    (tmp_path / "link.pt").symlink_to(tmp_path / "in.pt")
    with pytest.raises(UserError, match="is the input"):
        check_output_path(tmp_path / "link.pt", inputs=(tmp_path / "in.pt",))
    assert check_output_path(tmp_path / "new.pt") == tmp_path / "new.pt"


def test_outputs_checked_against_each_other(tmp_path):
    from gan_unlearn.checkpoint import check_outputs

    with pytest.raises(UserError, match="would be the same file"):
        check_outputs([tmp_path / "a.json", tmp_path / "." / "a.json"])
    assert check_outputs([tmp_path / "a.pt", None, tmp_path / "a.pt.json"]) == [tmp_path / "a.pt", tmp_path / "a.pt.json"]


def test_nan_weights_refused_on_load_and_save(tmp_path):
    G, ckpt = _gan_checkpoint()
    save_checkpoint(tmp_path / "g.pt", ckpt)
    raw = torch.load(tmp_path / "g.pt", weights_only=True)
    raw["models"]["generator"]["state"]["net.1.weight"][2] = float("inf")
    torch.save(raw, tmp_path / "inf.pt")
    with pytest.raises(UserError, match="generator tensor net.1.weight holds NaN or Inf"):
        load_checkpoint(tmp_path / "inf.pt")
    assert load_checkpoint(tmp_path / "inf.pt", allow_nonfinite=True)["kind"] == "gan"  # for 'info'
    with pytest.raises(UserError, match="refusing to write"):
        save_checkpoint(tmp_path / "again.pt", raw)
    assert not (tmp_path / "again.pt").exists()


def test_spec_shape_mismatch_is_found_before_allocation(tmp_path):
    _, ckpt = _gan_checkpoint()
    ckpt["models"]["generator"]["spec"]["latent_dim"] = 4000  # in bounds, but not what the weights are
    with pytest.raises(UserError, match="net.0.weight is \\(8, 16, 7, 7\\), the architecture needs \\(4000"):
        restore_model(ckpt, "generator")
