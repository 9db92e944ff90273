"""Forgetting beyond the pool: probe latents off the prior's shell, where the original shows the class,
catch a generator that only rewired the region its method sampled."""

import json

import torch
from torch import nn

from gan_unlearn.checkpoint import load_checkpoint, save_checkpoint
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.streams import generator as stream
from metrics.forgetting import beyond_pool_probes, class_share

LATENT = 100  # the prior's norm sits at about 10 +- 0.7 here


class ToyGenerator(nn.Module):
    """Shows z's first coordinate; class 1 when it is positive. ``shell_only`` flips it (forgets class 1)
    only for latents of the prior's typical norm, the only ones an unlearning pool ever draws."""

    latent_dim = LATENT

    def __init__(self, forget: str = "none"):
        super().__init__()
        self.forget = forget

    def sample_latents(self, n, generator=None, device="cpu"):
        return torch.randn(n, LATENT, generator=generator)

    def forward(self, z):
        x = z[:, :1].clone()
        norm = z.norm(dim=1, keepdim=True)
        if self.forget == "everywhere":
            x = -x.abs()
        elif self.forget == "shell_only":
            x = torch.where((norm > 8.5) & (norm < 11.5), -x.abs(), x)
        return x.view(-1, 1, 1, 1)


class SignReader(nn.Module):
    def forward(self, x):
        v = x.flatten(1)[:, :1]
        return torch.cat([-v, v], 1)


def test_probes_find_the_class_off_the_shell_where_a_pool_never_looked():
    reader, original = SignReader(), ToyGenerator()
    probes = beyond_pool_probes(original, reader, 1, candidates=4000, seed=0)
    assert set(probes) == {"interpolated", "scaled"}
    assert 900 < len(probes["interpolated"]) < 1100 and len(probes["scaled"]) == 2 * len(probes["interpolated"])
    norms = {k: z.norm(dim=1).mean().item() for k, z in probes.items()}
    assert 6 < norms["interpolated"] < 8 and 14 < norms["scaled"] < 16  # off the prior's shell (about 10)
    prior = original.sample_latents(2000, stream(1, "evaluate.latents"))
    everywhere, shell = ToyGenerator("everywhere"), ToyGenerator("shell_only")
    for probe, z in probes.items():
        assert class_share(original, reader, z, 1) == 1.0  # chosen where the original shows the class
        assert class_share(everywhere, reader, z, 1) == 0.0
        assert class_share(shell, reader, z, 1) > 0.95, probe  # the class comes back off the shell
    assert class_share(shell, reader, prior, 1) < 0.05  # ... while on prior latents it looks forgotten (measured 0.019)
    assert class_share(shell, reader, prior[:0], 1) is None


def test_evaluate_reports_forgetting_beyond_the_pool(tmp_path, tiny_gan_ckpt, tiny_oracle_ckpt, tiny_gan_top_class,
                                                     data_root):
    from gan_unlearn.workflows.evaluate import EvalSettings, evaluate_checkpoints, markdown_table

    from gan_unlearn.checkpoint import file_sha256

    c = tiny_gan_top_class
    ckpt = load_checkpoint(tiny_gan_ckpt)
    for name, source in (("twin", file_sha256(tiny_gan_ckpt)), ("stranger", "0" * 64)):
        ckpt["unlearning"] = {"request": ForgetRequest.for_class(c).describe(), "method": "cascaded", "seconds": 1.0,
                              "source_sha256": source}
        save_checkpoint(tmp_path / f"{name}.pt", ckpt)
    notes = []
    kwargs = dict(settings=EvalSettings(samples=1000), data_root=data_root, device="cpu", show_progress=False)
    report = evaluate_checkpoints([tiny_gan_ckpt, tmp_path / "twin.pt", tmp_path / "stranger.pt"], tiny_oracle_ckpt,
                                  log=notes.append, **kwargs)
    original, twin = (r["metrics"]["forget_rate_beyond_pool"] for r in report["models"][:2])
    assert original["value"] == twin["value"]  # the same weights: the same probes read the same
    assert original["chosen_by"] == "oracle" and original["latents"]["interpolated"] > 10
    assert original["value"]["scaled"]["oracle"] > 0.5  # the original still shows the class off the shell
    # a checkpoint made from another original is not read on this original's probes
    assert "forget_rate_beyond_pool" not in report["models"][2]["metrics"]
    assert any("stranger is not made from the original" in n for n in notes)
    table = markdown_table(report)
    assert "beyond the pool" in table and table.splitlines()[4].endswith("| - / - |")
    json.dumps(report, allow_nan=False)
    alone = evaluate_checkpoints([tmp_path / "twin.pt"], tiny_oracle_ckpt, log=notes.append, **kwargs)
    assert "forget_rate_beyond_pool" not in alone["models"][0]["metrics"]
    assert any("beyond the pool" in n for n in notes)
