#!/usr/bin/env python
"""Training throughput of the project's GAN trainer against a plain PyTorch DCGAN loop, plus sampling and
feature-extraction throughput, with the GAN's quality after one epoch as the check that speed cost nothing.

    python scripts/bench_throughput.py --data-root ../shared/datasets --oracle runs/mnist_oracle.pt

The plain loop is the textbook one (torchvision dataset, ToTensor/Normalize transforms, DataLoader, fp32,
the same generator, discriminator, optimiser and batch size), measured twice: with the project's layers (its
generator's first layer is the matrix product a 1x1-input transposed convolution equals) and with stock
layers only (``nn.ConvTranspose2d`` there), which is what a user without this project runs. The trainer runs in fp32 (what ``auto``
picks on a CPU without native bf16) and, where this CPU computes bf16 natively, in bf16. The CPU's model,
its relevant features and what ``auto`` picks here are part of the result. Every timed run has a fresh
process of its own, and the settings take turns seed by seed. Writes JSON (--out) and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from gan_unlearn.checkpoint import load_checkpoint, restore_model
from gan_unlearn.data import load_dataset
from gan_unlearn.models import Discriminator, Generator
from gan_unlearn.runtime import batched, cpu_capabilities, native_cpu_bf16, resolve_precision
from metrics.extractors import ClassifierFeatures
from metrics.fid import fid, reference_statistics
from trainers.gan import GANConfig, GANTrainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ensure_oracle, log, table, write_json  # noqa: E402


def stock_layers(G: Generator) -> Generator:
    """The generator as stock PyTorch builds it: its first layer an ``nn.ConvTranspose2d`` (same weights) instead of
    the project's ``LatentProjection``, which computes the same function as a matrix product."""
    first = G.net[0]
    stock = nn.ConvTranspose2d(first.in_channels, first.out_channels, first.kernel_size, first.stride, first.padding,
                               bias=first.bias is not None)
    stock.load_state_dict(first.state_dict())
    G.net[0] = stock
    return G


def plain_dcgan_epoch(data_root: str, steps: int | None, seed: int, batch_size: int = 64, layers: str = "project"):
    """The reference: a plain DCGAN loop as in the PyTorch examples, fp32, DataLoader with transforms. ``layers``
    ``stock``: the networks built from stock layers only, as a user without this project would have them."""
    import torchvision
    import torchvision.transforms as T

    torch.manual_seed(seed)
    ds = torchvision.datasets.MNIST(data_root, train=True, download=False,
                                    transform=T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0)
    G, D = Generator(28, 1), Discriminator(28, 1)
    if layers == "stock":
        G = stock_layers(G)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCEWithLogitsLoss()
    n = 0
    t0 = time.perf_counter()
    for i, (real, _) in enumerate(loader):
        if steps is not None and i >= steps:
            break
        b = real.size(0)
        z = torch.randn(b, 100)
        fake = G(z)
        opt_d.zero_grad()
        loss_d = criterion(D(real), torch.ones(b)) + criterion(D(fake.detach()), torch.zeros(b))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = criterion(D(fake), torch.ones(b))
        loss_g.backward()
        opt_g.step()
        n += b
    return G, n / (time.perf_counter() - t0)


def trainer_epoch(data, steps: int | None, seed: int, settings: dict):
    with tempfile.TemporaryDirectory() as tmp:
        config = GANConfig(epochs=1, seed=seed, **settings)
        trainer = GANTrainer(data, config, torch.device("cpu"), Path(tmp) / "g.pt", show_progress=False,
                             checkpoint_every=0)
        t0 = time.perf_counter()
        if steps is None:
            trainer.fit()
            images = trainer.global_step * config.batch_size
        else:
            perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
            for s in range(steps):
                trainer.train_step(perm[s * config.batch_size:(s + 1) * config.batch_size])
            images = steps * config.batch_size
        rate = images / (time.perf_counter() - t0)
        chosen = {"precision": trainer.precision, "channels_last": trainer.channels_last}
        return trainer.G.to(memory_format=torch.contiguous_format).eval(), rate, chosen


PLAIN = "plain loop (fp32)"
PLAIN_STOCK = "plain loop (fp32), stock layers"


def runs_for(caps: dict) -> dict:
    """name -> the trainer's settings (``{"plain": layers}``: the plain loop). fp32 in both layouts
    (``channels_last=auto`` follows what this table measured); bf16 only where this CPU runs it natively:
    emulated bf16 is many times slower than fp32 and no setting anyone would choose."""
    runs = {PLAIN: {"plain": "project"}, PLAIN_STOCK: {"plain": "stock"},
            "trainer fp32": {"precision": "fp32", "channels_last": False},
            "trainer fp32+channels_last": {"precision": "fp32", "channels_last": True}}
    if native_cpu_bf16(caps) and not caps.get("kernel_limit"):
        runs["trainer bf16+channels_last"] = {"precision": "bf16", "channels_last": True}
    return runs


def _run(name: str, settings: dict | None, data_root: str, steps: int | None, seed: int):
    if "plain" in settings:  # stock layers keep the state dict keys: the caller loads it into Generator
        G, rate = plain_dcgan_epoch(data_root, steps, seed, layers=settings["plain"])
        chosen = {"precision": "fp32", "channels_last": False}
    else:
        G, rate, chosen = trainer_epoch(load_dataset("mnist", "train", data_root), steps, seed, settings)
    return G.state_dict(), rate, chosen


def measure_in_fresh_process(name: str, settings: dict | None, data_root: str, steps: int | None, seed: int):
    """One timed run in its own process, returning the trained generator, images/s and the resolved settings.

    In one long process the later runs were measured slower (a fresh process trained the same epoch at
    801 images/s, the third run of a shared one at ~700): allocator and kernel-cache state carried over.
    Fresh processes, interleaved by seed, give every setting the same start.
    """
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        state, rate, chosen = pool.apply(_run, (name, settings, data_root, steps, seed))
    finally:
        pool.close()
        pool.join()
    G = Generator(28, 1)
    G.load_state_dict(state)
    return G.eval(), rate, chosen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--oracle", required=True, help="MNIST oracle checkpoint (classifier FID); trained there if missing")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--quick", action="store_true", help="200 steps per run instead of a full epoch, one seed")
    p.add_argument("--fid-samples", type=int, default=10000)
    p.add_argument("--out", default="scripts/results/bench_throughput.json")
    args = p.parse_args()
    steps = 200 if args.quick else None
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if args.quick else None]
    caps = cpu_capabilities()
    auto, reason = resolve_precision("auto", "cpu")
    log(f"CPU {caps['model']}: " + ", ".join(f"{k} {'yes' if caps[k] else 'no'}" for k in
                                             ("avx2", "avx512_f", "avx512_bf16", "amx_tile", "amx_bf16")))
    log(f"precision auto -> {auto} ({reason})")
    runs = runs_for(caps)
    stand_in = ("this CPU has native bf16, so auto picks bf16 here; 'trainer fp32' is what auto picks on a CPU "
                "without native bf16, measured here as its stand-in") if auto == "bf16" else None
    ensure_oracle("mnist", args.data_root, Path(args.oracle), epochs=2, seed=0, fresh=False, quiet=True,
                  strict=False)
    data = load_dataset("mnist", "train", args.data_root)
    oracle = restore_model(load_checkpoint(args.oracle, kind="classifier"), "classifier").eval()
    ext = ClassifierFeatures(oracle)
    ref, _ = reference_statistics(data, ext)
    rows = {name: {"settings": settings, "per_seed": [], "fid_after": []} for name, settings in runs.items()}
    for seed in seeds:  # interleaved, each run in a fresh process (see measure_in_fresh_process)
        for name, settings in runs.items():
            G, rate, chosen = measure_in_fresh_process(name, settings, args.data_root, steps, seed)
            rows[name]["resolved"] = chosen
            rows[name]["per_seed"].append(rate)
            rows[name]["fid_after"].append(fid(G, ext, ref, args.fid_samples, seed=123))
            log(f"{name} seed {seed}: {rate:.0f} images/s, classifier FID {rows[name]['fid_after'][-1]:.2f}")
    base, stock = rows[PLAIN], rows[PLAIN_STOCK]
    for r in rows.values():
        r["images_per_second"] = sum(r["per_seed"]) / len(r["per_seed"])
        r["speedup_vs_plain"] = r["images_per_second"] / base["images_per_second"]
        r["speedup_vs_plain_per_seed"] = [a / b for a, b in zip(r["per_seed"], base["per_seed"])]
        r["speedup_vs_stock_plain_per_seed"] = [a / b for a, b in zip(r["per_seed"], stock["per_seed"])]
    G = Generator(28, 1).eval()
    z = torch.randn(5000, 100)
    sampling = {}
    for prec in ("fp32", "bf16") if native_cpu_bf16(caps) and not caps.get("kernel_limit") else ("fp32",):
        batched(G, z[:500], 500, "cpu", prec)
        t0 = time.perf_counter()
        batched(G, z, 500, "cpu", prec)
        sampling[prec] = 5000 / (time.perf_counter() - t0)
    x = data.batch(torch.arange(10000))
    t0 = time.perf_counter()
    batched(ext.features, x, 1000, "cpu")
    feature_rate = 10000 / (time.perf_counter() - t0)
    result = {"command": " ".join(sys.argv), "cpu": caps, "threads": torch.get_num_threads(),
              "torch": str(torch.__version__), "auto_precision": {"precision": auto, "reason": reason},
              "stand_in": stand_in, "steps": steps or "one epoch", "seeds": seeds, "training": rows,
              "sampling_images_per_second": sampling, "classifier_features_images_per_second": feature_rate}
    write_json(args.out, result)
    print(table(["run", "settings", "images/s (per seed)", "speedup vs plain (per seed)",
                 "speedup vs plain, stock layers (per seed)", "classifier FID after (per seed)"],
                [[name, f"{r['resolved']['precision']}{'+channels_last' if r['resolved']['channels_last'] else ''}",
                  ", ".join(f"{v:.0f}" for v in r["per_seed"]),
                  ", ".join(f"{v:.2f}x" for v in r["speedup_vs_plain_per_seed"]),
                  ", ".join(f"{v:.2f}x" for v in r["speedup_vs_stock_plain_per_seed"]),
                  ", ".join(f"{v:.2f}" for v in r["fid_after"])] for name, r in rows.items()]))
    print("sampling: " + ", ".join(f"{v:.0f} images/s {k}" for k, v in sampling.items())
          + f"; oracle features: {feature_rate:.0f} images/s")
    if stand_in:
        print(f"note: {stand_in}")


if __name__ == "__main__":
    main()
