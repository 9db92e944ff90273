#!/usr/bin/env python
"""How many samples the cascade's generator gate needs: its reading (the original generator's nearest-sample
membership AUC in pixels, items against the check's held-out images) at several sample counts, over several
latent streams, on the originals of bench_gan_unlearning.py item runs; with the generator's time per count.

    python scripts/bench_gate_samples.py runs/targets/cifar64 runs/targets/mnist64 --data-root ../shared/datasets

A run folder holds seed<N>/original.pt and seed<N>/forget_items.json (what bench_gan_unlearning.py writes).
The streams are this script's own, never the run's: the question is how much the reading moves with the draw of
latents, against how much it moves with the sample count. Writes JSON (--out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from benchlib import log, machine, table, write_json

from gan_unlearn.data import load_dataset
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.runtime import batched, resolve_device
from gan_unlearn.workflows.unlearning import load_gan_and_data, restore_model
from metrics.membership import auc, nearest_sample_distances
from trainers.unlearning import METHODS, UnlearnConfig


def gate_readings(folder: Path, seed: int, counts: list[int], streams: int, data_root: str, device) -> dict:
    """The gate's AUC at each count for each stream (the counts are prefixes of one draw per stream), and the
    seconds the generator took for the largest count."""
    ckpt, train = load_gan_and_data(folder / f"seed{seed}" / "original.pt", data_root, False)
    held = load_dataset(ckpt["dataset"]["name"], "test", data_root, False)
    items = json.loads((folder / f"seed{seed}" / "forget_items.json").read_text())
    method = METHODS["cascaded"](restore_model(ckpt, "generator", device), restore_model(ckpt, "discriminator", device),
                                 ForgetRequest.for_items(items), train, UnlearnConfig.of(seed=seed), device=device,
                                 held_out=held, show_progress=False)
    items_px, held_px = method.forget_images.flatten(1).float(), method.held_out_images.flatten(1).float()
    readings, seconds = {n: [] for n in counts}, []
    for s in range(streams):
        z = method.G0.sample_latents(max(counts), torch.Generator().manual_seed(10_000 + s))
        start = time.perf_counter()
        samples = batched(method.G0, z, 500, device, method.precision).flatten(1)
        seconds.append(time.perf_counter() - start)
        for n in counts:
            readings[n].append(auc(-nearest_sample_distances(items_px, samples[:n]),
                                   -nearest_sample_distances(held_px, samples[:n])))
    return {"readings": readings, "generator_seconds_at_max": statistics.median(seconds),
            "precision": method.precision, "margin": method.config.stopping.auc_margin}


def summarise(readings: dict, margin: float) -> dict:
    largest = max(readings)
    reference = statistics.mean(readings[largest])
    out = {}
    for n, values in readings.items():
        out[n] = {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                  "shift_from_largest": statistics.mean(values) - reference,
                  "rounds_share": sum(v > 0.5 + margin for v in values) / len(values)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, help="bench_gan_unlearning.py item run folders")
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--counts", default="500,1000,2000,4000", help="sample counts (prefixes of one draw)")
    p.add_argument("--streams", type=int, default=6, help="latent draws per original")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("scripts/results/bench_gate_samples.json"))
    args = p.parse_args()
    counts = sorted(int(n) for n in args.counts.split(","))
    device = resolve_device(args.device)
    rows = []
    for folder in args.folders:
        for seed in (int(s) for s in args.seeds.split(",")):
            log(f"{folder.name} seed {seed}")
            got = gate_readings(folder, seed, counts, args.streams, args.data_root, device)
            rows.append({"run": folder.name, "seed": seed, "precision": got["precision"],
                         "generator_seconds_at_max": round(got["generator_seconds_at_max"], 3),
                         "by_count": summarise(got["readings"], got["margin"]), "readings": got["readings"],
                         "margin": got["margin"]})
    write_json(args.out, {"command": " ".join(sys.argv),
                          "machine": machine(str(device)), "counts": counts, "streams": args.streams, "rows": rows})
    print(table(["run", "seed"] + [f"{n} samples" for n in counts] + [f"generator s at {max(counts)}"],
                [[r["run"], r["seed"]] + [f"{c['mean']:.3f} ± {c['sd']:.3f} (rounds {100 * c['rounds_share']:.0f}%)"
                                          for c in r["by_count"].values()] + [f"{r['generator_seconds_at_max']:.2f}"]
                 for r in rows]))
    print(f"(AUC mean ± sd over {args.streams} latent streams; rounds: the share of streams whose reading is above "
          f"1/2 + margin)")


if __name__ == "__main__":
    main()
