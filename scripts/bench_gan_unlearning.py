#!/usr/bin/env python
"""End-to-end GAN unlearning benchmark: original, cascaded, fine-tuned and retrained models side by side.

For one class request and one item request it trains (or reuses) the oracle and the original GAN, runs
cascaded unlearning (and its variants), the fine-tuning baseline and retraining from scratch with the
original recipe, evaluates all of them in one run, checks the targets, and writes JSON and Markdown:

    python scripts/bench_gan_unlearning.py --data-root ../shared/datasets --out-dir runs/bench_gan

Existing checkpoints in --out-dir (oracle, original, retrained) are reused unless --fresh; an interrupted
retraining continues from its resume file. Unlearning itself always runs again, since its time is measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_unlearn.checkpoint import atomic_write, load_checkpoint  # noqa: E402
from gan_unlearn.data import load_dataset  # noqa: E402
from gan_unlearn.forget import ForgetRequest  # noqa: E402
from metrics.evaluate import EvalSettings, evaluate_checkpoints, markdown_table  # noqa: E402
from trainers.cascaded import UnlearnConfig  # noqa: E402
from trainers.checkpoints import retrain_checkpoint, unlearn_checkpoint  # noqa: E402
from trainers.classifier import ClassifierConfig, train_classifier  # noqa: E402
from trainers.gan import GANConfig, train_gan  # noqa: E402

# Variants of the cascade compared against the default (the default is the one that measured best).
VARIANTS = {
    "cascaded": {},
    "cascaded-nearest-real": {"substitution": "nearest-real"},
    "cascaded-focus": {"focus_fraction": 0.25},
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_oracle(args, out: Path, timings: dict) -> Path:
    path = Path(args.oracle) if args.oracle else out / "oracle.pt"
    if path.exists() and not args.fresh:
        log(f"oracle: reusing {path}")
        return path
    log("oracle: training")
    train = load_dataset(args.dataset, "train", args.data_root)
    test = load_dataset(args.dataset, "test", args.data_root)
    ckpt = train_classifier(train, ClassifierConfig(epochs=args.oracle_epochs, seed=args.seed), torch.device(args.device),
                            path, test_set=test, show_progress=not args.quiet)
    timings["oracle_training_seconds"] = ckpt["metrics"]["train_seconds"]
    return path


def ensure_gan(args, out: Path, timings: dict) -> Path:
    path = Path(args.gan) if args.gan else out / "original.pt"
    if path.exists() and not args.fresh:
        log(f"original GAN: reusing {path}")
        return path
    log(f"original GAN: training {args.epochs} epochs")
    train = load_dataset(args.dataset, "train", args.data_root)
    ckpt = train_gan(train, GANConfig(epochs=args.epochs, seed=args.seed), torch.device(args.device), path,
                     resume=True, show_progress=not args.quiet,
                     samples_path=path.with_name(path.stem + "_samples.png"))
    timings["original_training_seconds"] = ckpt["metrics"]["train_seconds"]
    return path


def run_request(args, out: Path, name: str, request: ForgetRequest, gan: Path, oracle: Path) -> dict:
    results = {"request": request.describe(), "runs": {}}
    paths = [gan]
    for variant, overrides in VARIANTS.items():
        if variant != "cascaded" and variant not in args.variants:
            continue
        path = out / f"{name}_{variant}.pt"
        log(f"{name}: {variant}")
        config = UnlearnConfig(seed=args.seed, **overrides)
        results["runs"][variant] = unlearn_checkpoint(gan, request, path, oracle_path=oracle, config=config,
                                                      data_root=args.data_root, device=args.device,
                                                      show_progress=not args.quiet)
        paths.append(path)
    log(f"{name}: finetune")
    path = out / f"{name}_finetune.pt"
    results["runs"]["finetune"] = unlearn_checkpoint(gan, request, path, oracle_path=oracle, method="finetune",
                                                     config=UnlearnConfig(seed=args.seed), data_root=args.data_root,
                                                     device=args.device, show_progress=not args.quiet)
    paths.append(path)
    path = out / f"{name}_retrain.pt"
    if path.exists() and not args.fresh:
        log(f"{name}: reusing retrained model {path}")
        u = load_checkpoint(path, kind="gan")["unlearning"]
        results["runs"]["retrain"] = {"method": "retrain", "seconds": u["seconds"], "reused": True}
    else:
        log(f"{name}: retraining from scratch (the gold standard; long)")
        results["runs"]["retrain"] = retrain_checkpoint(gan, request, path, data_root=args.data_root,
                                                        device=args.device, show_progress=not args.quiet, resume=True)
    paths.append(path)
    log(f"{name}: evaluating {len(paths)} models")
    settings = EvalSettings(samples=args.samples, seed=args.seed, downstream_samples=args.downstream_samples)
    report = evaluate_checkpoints(paths, oracle, request=request, settings=settings, data_root=args.data_root,
                                  device=args.device, out_dir=out / f"{name}_grids", show_progress=not args.quiet,
                                  log=log)
    results["evaluation"] = report
    results["table"] = markdown_table(report)
    results["checks"] = targets(report, results["runs"], request)
    return results


def targets(report: dict, runs: dict, request: ForgetRequest) -> dict:
    """The issue's targets, evaluated on this run's numbers."""
    original = report["models"][0]
    cascaded = next(r for r in report["models"] if r["label"].endswith("_cascaded"))
    retrain_s = runs["retrain"]["seconds"]
    fid0, fid1 = original["metrics"]["fid"]["value"], cascaded["metrics"]["fid"]["value"]
    checks = {"fid_original": fid0, "fid_cascaded": fid1, "fid_rise": fid1 / fid0 - 1,
              "fid_rise_at_most_25pct": fid1 <= 1.25 * fid0,
              "time_share_of_retrain": runs["cascaded"]["seconds"] / retrain_s,
              "under_2pct_of_retrain": runs["cascaded"]["seconds"] < 0.02 * retrain_s}
    if request.kind == "class":
        f0, f1 = original["metrics"]["forget_rate"]["value"], cascaded["metrics"]["forget_rate"]["value"]
        checks.update(forget_rate_original=f0, forget_rate_cascaded=f1, forget_rate_at_most_1pct=f1 <= 0.01)
    else:
        d0, d1 = original["metrics"]["d_score"], cascaded["metrics"]["d_score"]
        checks.update(d_score_before=d0, d_score_after=d1, before_higher=d0["forgotten"] > d0["held_out"],
                      after_not_higher=d1["forgotten"] <= d1["held_out"])
    return checks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--out-dir", default="runs/bench_gan")
    p.add_argument("--epochs", type=int, default=25, help="recipe of the original and retrained GANs")
    p.add_argument("--oracle-epochs", type=int, default=2)
    p.add_argument("--forget-class", type=int, default=3)
    p.add_argument("--num-items", type=int, default=64)
    p.add_argument("--gan", help="reuse this original GAN checkpoint")
    p.add_argument("--oracle", help="reuse this oracle checkpoint")
    p.add_argument("--variants", default="cascaded-nearest-real,cascaded-focus",
                   help="comma-separated variants to compare with the default cascade")
    p.add_argument("--requests", default="class,item")
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--downstream-samples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--fresh", action="store_true", help="recompute everything, reuse nothing")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    args.variants = [v for v in args.variants.split(",") if v]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    oracle = ensure_oracle(args, out, timings)
    gan = ensure_gan(args, out, timings)
    n = len(load_dataset(load_checkpoint(gan, kind="gan")["dataset"]["name"], "train", args.data_root))
    items = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))[: args.num_items].tolist()
    (out / "forget_items.json").write_text(json.dumps(items))
    results = {"command": " ".join(sys.argv), "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads(),
                                                            "torch": torch.__version__, "device": args.device},
               "one_off": timings, "requests": {}}
    requested = args.requests.split(",")
    if "class" in requested:
        results["requests"]["class"] = run_request(args, out, f"class{args.forget_class}",
                                                   ForgetRequest.for_class(args.forget_class), gan, oracle)
    if "item" in requested:
        results["requests"]["item"] = run_request(args, out, f"items{args.num_items}", ForgetRequest.for_items(items),
                                                  gan, oracle)
    atomic_write(out / "results.json", lambda f: f.write(json.dumps(results, indent=2, default=str).encode()))
    md = [f"# GAN unlearning benchmark\n\n`{results['command']}`\n"]
    for kind, r in results["requests"].items():
        md += [f"## {kind} request ({r['request']})\n", r["table"], "", "```", json.dumps(r["checks"], indent=1,
                                                                                           default=str), "```", ""]
    atomic_write(out / "results.md", lambda f: f.write("\n".join(md).encode()))
    print("\n".join(md))


if __name__ == "__main__":
    main()
