#!/usr/bin/env python
"""Training throughput of the project's GAN trainer against a plain PyTorch DCGAN loop, plus sampling and
feature-extraction throughput, with the GAN's quality after one epoch as the check that speed cost nothing.

    python scripts/bench_throughput.py --data-root ../shared/datasets --oracle runs/mnist_oracle.pt

The plain loop is the textbook one (torchvision dataset, ToTensor/Normalize transforms, DataLoader, fp32,
the same generator, discriminator, optimiser and batch size). Every timed run has a fresh process of its
own, and the settings take turns seed by seed. Writes JSON (--out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_unlearn.checkpoint import atomic_write, load_checkpoint, restore_model  # noqa: E402
from gan_unlearn.data import load_dataset  # noqa: E402
from gan_unlearn.models import Discriminator, Generator  # noqa: E402
from gan_unlearn.runtime import batched  # noqa: E402
from metrics.extractors import ClassifierFeatures  # noqa: E402
from metrics.fid import fid, reference_statistics  # noqa: E402
from trainers.gan import GANConfig, GANTrainer  # noqa: E402


def plain_dcgan_epoch(data_root: str, steps: int | None, seed: int, batch_size: int = 64):
    """The reference: a plain DCGAN loop as in the PyTorch examples, fp32, DataLoader with transforms."""
    import torchvision
    import torchvision.transforms as T

    torch.manual_seed(seed)
    ds = torchvision.datasets.MNIST(data_root, train=True, download=False,
                                    transform=T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0)
    G, D = Generator(28, 1), Discriminator(28, 1)
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


def trainer_epoch(data, steps: int | None, seed: int, precision: str, channels_last: bool):
    with tempfile.TemporaryDirectory() as tmp:
        config = GANConfig(epochs=1, seed=seed, precision=precision, channels_last=channels_last)
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
        return trainer.G.to(memory_format=torch.contiguous_format).eval(), rate


# name -> the trainer's (precision, channels_last), or None for the plain loop
RUNS = {"plain loop (fp32)": None, "trainer fp32": ("fp32", False), "trainer bf16+channels_last": ("bf16", True)}


def _run(name: str, data_root: str, steps: int | None, seed: int):
    if RUNS[name] is None:
        G, rate = plain_dcgan_epoch(data_root, steps, seed)
    else:
        G, rate = trainer_epoch(load_dataset("mnist", "train", data_root), steps, seed, *RUNS[name])
    return G.state_dict(), rate


def measure_in_fresh_process(name: str, data_root: str, steps: int | None, seed: int):
    """One timed run in its own process, returning the trained generator and images/s.

    In one long process the later runs were measured slower (a fresh process trained the same epoch at
    801 images/s, the third run of a shared one at ~700): allocator and kernel-cache state carried over.
    Fresh processes, interleaved by seed, give every setting the same start.
    """
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        state, rate = pool.apply(_run, (name, data_root, steps, seed))
    finally:
        pool.close()
        pool.join()
    G = Generator(28, 1)
    G.load_state_dict(state)
    return G.eval(), rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--oracle", required=True, help="MNIST oracle checkpoint (classifier FID)")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--quick", action="store_true", help="200 steps per run instead of a full epoch, one seed")
    p.add_argument("--fid-samples", type=int, default=10000)
    p.add_argument("--out", default="scripts/results/bench_throughput.json")
    args = p.parse_args()
    steps = 200 if args.quick else None
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if args.quick else None]
    data = load_dataset("mnist", "train", args.data_root)
    oracle = restore_model(load_checkpoint(args.oracle, kind="classifier"), "classifier").eval()
    ext = ClassifierFeatures(oracle)
    ref, _ = reference_statistics(data, ext)
    rows = {name: {"per_seed": [], "fid_after": []} for name in RUNS}
    for seed in seeds:  # interleaved, each run in a fresh process (see measure_in_fresh_process)
        for name in RUNS:
            G, rate = measure_in_fresh_process(name, args.data_root, steps, seed)
            rows[name]["per_seed"].append(rate)
            rows[name]["fid_after"].append(fid(G, ext, ref, args.fid_samples, seed=123))
            print(f"{name} seed {seed}: {rate:.0f} images/s, classifier FID {rows[name]['fid_after'][-1]:.2f}", flush=True)
    for r in rows.values():
        r["images_per_second"] = sum(r["per_seed"]) / len(r["per_seed"])
    base = rows["plain loop (fp32)"]["images_per_second"]
    for r in rows.values():
        r["speedup_vs_plain"] = r["images_per_second"] / base
    G = Generator(28, 1).eval()
    z = torch.randn(5000, 100)
    sampling = {}
    for prec in ("fp32", "bf16"):
        batched(G, z[:500], 500, "cpu", prec)
        t0 = time.perf_counter()
        batched(G, z, 500, "cpu", prec)
        sampling[prec] = 5000 / (time.perf_counter() - t0)
    x = data.batch(torch.arange(10000))
    t0 = time.perf_counter()
    batched(ext.features, x, 1000, "cpu")
    feature_rate = 10000 / (time.perf_counter() - t0)
    result = {"command": " ".join(sys.argv), "threads": torch.get_num_threads(), "steps": steps or "one epoch",
              "seeds": seeds, "training": rows, "sampling_images_per_second": sampling,
              "classifier_features_images_per_second": feature_rate}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda f: f.write(json.dumps(result, indent=2).encode()))
    print("| run | images/s | speedup vs plain | classifier FID after (per seed) |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['images_per_second']:.0f} | {r['speedup_vs_plain']:.2f}x | "
              f"{', '.join(f'{v:.2f}' for v in r['fid_after'])} |")
    print(f"sampling: {sampling['fp32']:.0f} images/s fp32, {sampling['bf16']:.0f} images/s bf16; "
          f"oracle features: {feature_rate:.0f} images/s")


if __name__ == "__main__":
    main()
