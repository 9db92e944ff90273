#!/usr/bin/env python
"""Downstream augmentation after class unlearning: a classifier trained on scarce real retained data plus
oracle-labelled synthetic images from the original, unlearned and retrained generators, tested on the real
test split (retained classes), against real data alone.

    python scripts/augmentation_pipeline.py --data-root ../shared/datasets --oracle runs/bench_gan/oracle.pt \
        --original runs/bench_gan/original.pt --unlearned runs/bench_gan/class3_cascaded.pt \
        --retrained runs/bench_gan/class3_retrain.pt --forget-class 3

The forgotten class is left out of every synthetic set (the downstream task is the retained classes); the
oracle's share of that class among all of a generator's draws is reported, which is what unlearning removes.
"""

from __future__ import annotations

import argparse
import sys

import torch

from benchlib import table, write_json

from gan_unlearn.checkpoint import load_checkpoint, restore_model
from gan_unlearn.data import ImageDataset, load_dataset
from gan_unlearn.workflows.downstream import downstream_accuracy, per_class_synthetic


def concat(a: ImageDataset, b: ImageDataset) -> ImageDataset:
    return ImageDataset(f"{a.name}+{b.name}", "train", torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]),
                        a.num_classes)


def downstream(train: ImageDataset, test: ImageDataset, classes, epochs: int, seed: int) -> float:
    return downstream_accuracy(train, test, classes=classes, epochs=epochs, seed=seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--oracle", required=True)
    p.add_argument("--original", required=True)
    p.add_argument("--unlearned", required=True)
    p.add_argument("--retrained", required=True)
    p.add_argument("--forget-class", type=int, required=True)
    p.add_argument("--real-per-class", type=int, default=50, help="scarce real retained images per class")
    p.add_argument("--per-class", type=int, default=500, help="synthetic images per retained class")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="scripts/results/augmentation.json")
    args = p.parse_args()
    gan_ckpt = load_checkpoint(args.original, kind="gan")
    name = gan_ckpt["dataset"]["name"]
    train, test = load_dataset(name, "train", args.data_root), load_dataset(name, "test", args.data_root)
    oracle = restore_model(load_checkpoint(args.oracle, kind="classifier"), "classifier").eval()
    c = args.forget_class
    retained = [k for k in range(train.num_classes) if k != c]
    g = torch.Generator().manual_seed(args.seed)
    real_idx = torch.cat([(train.labels == k).nonzero().flatten()[torch.randperm(int((train.labels == k).sum()),
                                                                                  generator=g)[:args.real_per_class]]
                          for k in retained])
    real = train.subset(real_idx)
    rows = {"real only": {"accuracy": downstream(real, test, retained, args.epochs, args.seed), "train_images": len(real)}}
    print(f"real only: {100 * rows['real only']['accuracy']:.2f}%", flush=True)
    for label, path in (("original", args.original), ("unlearned", args.unlearned), ("retrained", args.retrained)):
        G = restore_model(load_checkpoint(path, kind="gan"), "generator").eval()
        synth, stats = per_class_synthetic(G, oracle, args.per_class, skip_classes=[c], seed=args.seed)
        acc = downstream(concat(real, synth), test, retained, args.epochs, args.seed)
        rows[label] = {"accuracy": acc, "train_images": len(real) + len(synth), "synthetic": stats["per_class"],
                       "forgotten_class_share_of_draws": stats["draw_share_per_class"][c], "draws": stats["draws"]}
        print(f"real + {label} synthetic: {100 * acc:.2f}% (oracle share of class {c} among draws: "
              f"{100 * stats['draw_share_per_class'][c]:.2f}%)", flush=True)
    result = {"command": " ".join(sys.argv), "dataset": name, "forget_class": c, "test": "real test split, retained classes",
              "real_per_class": args.real_per_class, "synthetic_per_class": args.per_class, "epochs": args.epochs,
              "rows": rows}
    write_json(args.out, result)
    print(table(["training data", "images", "test accuracy (retained classes)", "forgotten-class share of draws"],
                [["real only" if label == "real only" else f"real + {label} synthetic", r["train_images"],
                  f"{100 * r['accuracy']:.2f}%",
                  f"{100 * r['forgotten_class_share_of_draws']:.2f}%" if "forgotten_class_share_of_draws" in r else "-"]
                 for label, r in rows.items()]))


if __name__ == "__main__":
    main()
