#!/usr/bin/env python
"""Throughput of the Inception FID extractor on this machine, fp32 against the fast settings, and how far
FID moves under them.

    python scripts/bench_inception.py --data-root ../shared/datasets [--inception-weights PATH]

Without real weights it uses stand-in weights of the real shapes (random, seeded, BatchNorm statistics
set on 64 other real images): the cost is the same, and the FID shift between settings is indicative
only. Writes JSON (--out) and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchlib import table, write_json

from gan_unlearn.data import load_dataset
from metrics.extractors import InceptionFeatures, fid_inception_skeleton
from metrics.frechet import frechet_distance, stats_of

SETTINGS = {"fp32": dict(precision="fp32", channels_last=False),
            "fp32+channels_last": dict(precision="fp32", channels_last=True),
            "bf16": dict(precision="bf16", channels_last=False),
            "bf16+channels_last": dict(precision="bf16", channels_last=True)}


def features(ext, images, batch):
    out = []
    for i in range(0, len(images), batch):
        out.append(ext(images[i:i + batch]))
    return torch.cat(out)


def calibrated_standin(images: torch.Tensor) -> torch.nn.Module:
    """Random Inception weights with BatchNorm statistics set from real images (not those measured).

    Uncalibrated random weights shrink activations layer by layer until pool3 features are nearly constant
    (FID ~1e-13), which hides any numeric drift; calibrated random features spread like real ones.
    """
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = fid_inception_skeleton()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    net.train()
    with torch.no_grad():
        net(F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False))
    return net.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--inception-weights", help="real FID weights; stand-in weights when omitted")
    p.add_argument("--images", type=int, default=400, help="images per set (two sets per setting)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--out", default="scripts/results/bench_inception.json")
    args = p.parse_args()
    weights = args.inception_weights
    data = load_dataset("npz:cifar10_subset.npz", "test", args.data_root)
    n = args.images
    if weights is None:
        weights = Path(tempfile.mkdtemp()) / "standin_inception.pth"
        torch.save(calibrated_standin(data.batch(torch.arange(2 * n, 2 * n + 64))).state_dict(), weights)
    a = data.batch(torch.arange(n))
    b = (data.batch(torch.arange(n, 2 * n)) + 0.3 * torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    rows, feats = {}, {}
    for name, kw in SETTINGS.items():
        ext = InceptionFeatures(weights, precision=kw["precision"], channels_last=kw["channels_last"])
        features(ext, a[: args.batch_size], args.batch_size)  # warm-up
        t0 = time.perf_counter()
        fa, fb = features(ext, a, args.batch_size), features(ext, b, args.batch_size)
        seconds = time.perf_counter() - t0
        feats[name] = (fa, fb)
        rows[name] = {"images_per_second": 2 * n / seconds, "seconds": seconds, "fid": frechet_distance(stats_of(fa), stats_of(fb))}
        print(f"{name}: {rows[name]['images_per_second']:.1f} images/s", flush=True)
    ref = rows["fp32"]
    for name, r in rows.items():
        r["speedup"] = r["images_per_second"] / ref["images_per_second"]
        r["fid_relative_change"] = r["fid"] / ref["fid"] - 1
        r["feature_max_abs_diff_vs_fp32"] = (feats[name][0] - feats["fp32"][0]).abs().max().item()
    result = {"command": " ".join(sys.argv), "weights": "real" if args.inception_weights else "stand-in (random, seeded, BatchNorm calibrated on 64 other test images)",
              "images_per_set": n, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
              "input": "CIFAR-10 subset test images 32x32 (resized to 299 by pytorch-fid)", "settings": rows}
    write_json(args.out, result)
    print(table(["setting", "images/s", "speedup", "FID", "FID change vs fp32"],
                [[name, f"{r['images_per_second']:.1f}", f"{r['speedup']:.2f}x", f"{r['fid']:.3f}",
                  f"{100 * r['fid_relative_change']:+.2f}%"] for name, r in rows.items()]))


if __name__ == "__main__":
    main()
