#!/usr/bin/env python
"""Speedup of cascaded unlearning over retraining from scratch, with the quality columns, for MNIST and the
CIFAR-10 data at hand, for a class request and item requests of 64, 256 and 1024 images.

    python scripts/bench_speedup.py --data-root ../shared/datasets            # the full run
    python scripts/bench_speedup.py --data-root ../shared/datasets --quick    # under 10 minutes on 2 CPU cores

CIFAR-10 is torchvision's full set when --cifar cifar10 finds it (or --download fetches it), otherwise the
offline subset npz:cifar10_subset.npz. Retraining and unlearning are timed in the same run; one-off costs
(oracle and original GAN training) are reported separately. Writes results.json / results.md in --out-dir.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchlib import ensure_gan, ensure_oracle, log, machine, random_items, run_request, write_results

from gan_unlearn.data import load_dataset
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.workflows.evaluate import EvalSettings

PAPER = {"mnist": 185, "cifar10": 284}


def pick_cifar(choice: str, data_root, download: bool) -> str:
    if choice != "auto":
        return choice
    try:
        load_dataset("cifar10", "test", data_root, download)
        return "cifar10"
    except UserError:
        return "npz:cifar10_subset.npz"


def speedup_rows(name: str, result: dict) -> list[str]:
    """One Markdown row per model of a request: time, speedup against retraining, quality columns."""
    rows = []
    retrain = result["runs"]["retrain"]["seconds"]
    for m in result["evaluation"]["models"]:
        metrics = m["metrics"]
        if "forget_rate" in metrics:
            forget = f"{100 * metrics['forget_rate']['value']:.2f}% of samples"
        else:
            forget = f"D {metrics['d_score']['forgotten']:.3f} vs {metrics['d_score']['held_out']:.3f}"
        secs = m["unlearning_seconds"]
        time_cell = f"{secs:.1f}" if secs else "-"
        speed = f"{retrain / secs:.0f}x" if secs and m["method"] != "retrain" else "-"
        down = f"{100 * metrics['downstream_accuracy']['value']:.1f}%" if "downstream_accuracy" in metrics else "-"
        rows.append(f"| {name} | {m['method']} | {time_cell} | {speed} | {forget} | {metrics['fid']['value']:.2f} | {down} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--out-dir", default=None, help="default runs/bench_speedup (or runs/bench_speedup_quick)")
    p.add_argument("--quick", action="store_true", help="small data and recipe: the pipeline in under 10 minutes")
    p.add_argument("--datasets", default="mnist,cifar")
    p.add_argument("--cifar", default="auto", help="cifar10, npz:PATH, or auto (full set if present, else the subset)")
    p.add_argument("--download", action="store_true")
    p.add_argument("--mnist-epochs", type=int, default=25)
    p.add_argument("--cifar-epochs", type=int, default=25)
    p.add_argument("--item-sizes", default="64,256,1024")
    p.add_argument("--forget-class", type=int, default=3)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--downstream-samples", type=int, default=10000)
    p.add_argument("--reuse-retrain-from", type=Path, default=None,
                   help="folder whose retrained checkpoints (same names) may be reused; marked as reused")
    p.add_argument("--mnist-gan", type=Path, default=None, help="reuse this original MNIST GAN")
    p.add_argument("--mnist-oracle", type=Path, default=None, help="reuse this MNIST oracle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda; every timed run of one benchmark uses the same device")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.mnist_epochs, args.cifar_epochs, args.samples, args.downstream_samples = 2, 3, 2000, 0
        args.item_sizes = "64,256,1024"
    out = Path(args.out_dir or ("runs/bench_speedup_quick" if args.quick else "runs/bench_speedup"))
    out.mkdir(parents=True, exist_ok=True)
    datasets = {}
    for d in args.datasets.split(","):
        if d == "mnist":
            datasets["mnist"] = ("mnist[:6000]" if args.quick else "mnist", args.mnist_epochs)
        elif d == "cifar":
            name = pick_cifar(args.cifar, args.data_root, args.download)
            datasets["cifar10"] = (f"{name}[:3000]" if args.quick else name, args.cifar_epochs)
    results = {"command": " ".join(sys.argv), "machine": machine(args.device), "quick": args.quick, "paper_speedups": PAPER,
               "datasets": {}}
    table = ["| dataset / request | model | time (s) | speedup | forget metric | FID (classifier) | downstream acc |",
             "|---|---|---|---|---|---|---|"]
    settings = EvalSettings(samples=args.samples, seed=args.seed, downstream_samples=args.downstream_samples)
    for key, (dataset, epochs) in datasets.items():
        d_out = out / key
        d_out.mkdir(exist_ok=True)
        oracle_path = args.mnist_oracle if key == "mnist" and args.mnist_oracle else d_out / "oracle.pt"
        gan_path = args.mnist_gan if key == "mnist" and args.mnist_gan else d_out / "original.pt"
        oracle = ensure_oracle(dataset, args.data_root, oracle_path, 1 if args.quick else 2 if key == "mnist" else 10,
                               args.seed, args.fresh, args.quiet, args.device)
        gan = ensure_gan(dataset, args.data_root, gan_path, epochs, args.seed, args.fresh, args.quiet, args.device)
        entry = {"dataset": dataset, "recipe_epochs": epochs, "one_off": {"oracle": oracle, "original_gan": gan},
                 "requests": {}}
        requests = [(f"class{args.forget_class}", ForgetRequest.for_class(args.forget_class))]
        for size in (int(s) for s in args.item_sizes.split(",") if s):
            requests.append((f"items{size}", ForgetRequest.for_items(random_items(gan["path"], args.data_root, size,
                                                                                  args.seed))))
        for name, request in requests:
            r = run_request(d_out, name, request, gan["path"], oracle["path"], args.data_root,
                            variants={"cascaded": {}}, settings=settings, seed=args.seed, fresh=args.fresh,
                            quiet=args.quiet, reuse_retrain_from=args.reuse_retrain_from,
                            device=args.device)
            entry["requests"][name] = r
            table += speedup_rows(f"{key} / {name}", r)
            results["datasets"][key] = entry
            write_results(out, results, "\n".join(table) + "\n")
            log(f"{key} {name} done")
    table.append("")
    table.append(f"Paper (Sun et al.): up to {PAPER['mnist']}x less time than retraining on MNIST, "
                 f"{PAPER['cifar10']}x on CIFAR-10.")
    write_results(out, results, "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
