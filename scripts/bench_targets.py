#!/usr/bin/env python
"""The unlearning targets end to end: run bench_gan_unlearning.py for every setting the targets name, then
read each target off the results (scripts/targets.py) and write targets.json and targets.md.

    python scripts/bench_targets.py --out-dir runs/targets                  # the issue's recipes (hours on a GPU)
    python scripts/bench_targets.py --mnist-epochs 5 --cifar-epochs 5 --item-sizes 64 --samples 5000
    python scripts/bench_targets.py --only-read runs/a/results.json runs/b/results.json   # no runs, just read

Settings run (each in its own folder under --out-dir, resumable: finished checkpoints are reused):
  mnist-class      MNIST, class --forget-class, full setting, --mnist-epochs
  mnist-items-N    MNIST memorising setting: N items from a subset of max(--subset, 4N) images (a quarter, as 64 of
                   256), trained --memorising-epochs x --subset / subset epochs, so that every request size's
                   original costs the same training steps (memorisation weakens as the subset grows; the
                   original's nearest-neighbour AUC shows how much there is to undo)
  cifar-class      --cifar dataset, class request, full setting, --cifar-epochs
  cifar-items-N    --cifar dataset, memorising setting as for MNIST
--skip leaves settings out (e.g. --skip cifar-items). Every setting uses the same --seeds, --variants and
--samples. The cascade's default is what every target is judged on; its variants appear as "best variant".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchlib import log, write_json
from targets import evaluate, table

from gan_unlearn.checkpoint import atomic_write

HERE = Path(__file__).resolve().parent


def settings(args) -> dict[str, list[str]]:
    """Name -> bench_gan_unlearning.py arguments of every setting the targets need."""
    common = ["--data-root", args.data_root, "--seeds", args.seeds, "--variants", args.variants,
              "--samples", str(args.samples), "--device", args.device] + (["--quiet"] if args.quiet else [])
    out = {"mnist-class": ["--dataset", "mnist", "--setting", "full", "--epochs", str(args.mnist_epochs),
                           "--requests", "class", "--forget-class", str(args.forget_class)]}
    sizes = [int(n) for n in args.item_sizes.split(",") if n]
    for n in sizes:
        out[f"mnist-items-{n}"] = _items("mnist", n, args)
    out["cifar-class"] = ["--dataset", args.cifar, "--setting", "full", "--epochs", str(args.cifar_epochs),
                          "--requests", "class", "--forget-class", str(args.forget_class)]
    for n in sizes:
        out[f"cifar-items-{n}"] = _items(args.cifar, n, args)
    skip = [s for s in args.skip.split(",") if s]
    return {name: a + common for name, a in out.items() if not any(name.startswith(s) for s in skip)}


def item_recipe(n: int, base_subset: int, base_epochs: int) -> tuple[int, int]:
    """(subset, epochs) of the memorising setting for n items: the items are at most a quarter of the subset,
    and the epochs shrink as the subset grows so the original's training steps stay those of the base recipe
    (on a 2-core CPU, 1,024 items at 1,200 epochs would take 16x the 64-item setting's 8 minutes per GAN)."""
    subset = max(base_subset, 4 * n)
    return subset, max(1, round(base_epochs * base_subset / subset))


def _items(dataset: str, n: int, args) -> list[str]:
    subset, epochs = item_recipe(n, args.subset, args.memorising_epochs)
    return ["--dataset", dataset, "--setting", "memorising", "--subset", str(subset),
            "--epochs", str(epochs), "--requests", "item", "--num-items", str(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--out-dir", default="runs/targets")
    p.add_argument("--cifar", default="npz:cifar10_subset.npz", help="cifar10 (full, torchvision) or an npz subset")
    p.add_argument("--mnist-epochs", type=int, default=25, help="recipe of the class settings' GANs on MNIST")
    p.add_argument("--cifar-epochs", type=int, default=25, help="recipe of the class settings' GANs on CIFAR-10")
    p.add_argument("--memorising-epochs", type=int, default=1200, help="epochs of the smallest memorising subset")
    p.add_argument("--subset", type=int, default=256, help="smallest training subset of the memorising settings")
    p.add_argument("--item-sizes", default="64,256,1024")
    p.add_argument("--forget-class", type=int, default=3)
    p.add_argument("--variants", default="cascaded", help="as bench_gan_unlearning.py --variants")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip", default="", help="comma-separated setting names (or prefixes) not to run")
    p.add_argument("--only-read", nargs="*", metavar="RESULTS_JSON",
                   help="read these bench_gan_unlearning results instead of running anything")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    out = Path(args.out_dir)
    if args.only_read:
        sources = {}
        for f in map(Path, args.only_read):  # a run folder's results.json is named by its folder
            name = f.parent.name if f.name == "results.json" else f.stem
            if name in sources:
                sys.exit(f"error: two results are both named {name!r}: {sources[name]} and {f}")
            sources[name] = f
    else:
        sources = {}
        for name, bench_args in settings(args).items():
            folder = out / name
            cmd = [sys.executable, str(HERE / "bench_gan_unlearning.py"), "--out-dir", str(folder), *bench_args]
            log(f"{name}: {' '.join(cmd[1:])}")
            subprocess.run(cmd, check=True)
            sources[name] = folder / "results.json"
    rows, runs = [], {}
    for name, path in sources.items():
        result = json.loads(path.read_text())
        runs[name] = {"results": str(path), "command": result["command"], "machine": result["machine"]}
        rows += evaluate(result, name)
    md = table(rows)
    write_json(out / "targets.json", {"command": " ".join(sys.argv), "runs": runs, "rows": rows, "table": md})
    atomic_write(out / "targets.md", lambda f: f.write((md + "\n").encode()))
    print(md)


if __name__ == "__main__":
    main()
