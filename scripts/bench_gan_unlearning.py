#!/usr/bin/env python
"""End-to-end GAN unlearning benchmark on MNIST: original, cascaded (and its variants), fine-tuned and
retrained models side by side, for one class request and one 64-item request, with the targets checked.

    python scripts/bench_gan_unlearning.py --data-root ../shared/datasets --out-dir runs/bench_gan

Trains (or reuses, from --out-dir) the oracle and the original GAN; retraining from scratch continues from
its resume file if interrupted. Unlearning always runs again, since its time is what is measured.
Writes results.json and results.md in --out-dir and prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchlib import ensure_gan, ensure_oracle, log, machine, random_items, run_request, write_results

from gan_unlearn.forget import ForgetRequest
from gan_unlearn.workflows.evaluate import EvalSettings

# The default cascade and the variants it is compared with (the default is the one that measured best).
VARIANTS = {
    "cascaded": {},
    "cascaded-nearest-real": {"substitution.kind": "nearest-real"},
    "cascaded-focus": {"focus_fraction": 0.25},
}


def targets(report: dict, runs: dict, request: ForgetRequest) -> dict:
    """The issue's targets on this run's numbers."""
    models = {r["label"].split("_", 1)[1] if "_" in r["label"] else "original": r for r in report["models"]}
    original, cascaded = report["models"][0], models["cascaded"]
    retrain_s = runs["retrain"]["seconds"]
    fid0, fid1 = original["metrics"]["fid"]["value"], cascaded["metrics"]["fid"]["value"]
    checks = {"fid_original": fid0, "fid_cascaded": fid1, "fid_rise": fid1 / fid0 - 1,
              "fid_rise_at_most_25pct": fid1 <= 1.25 * fid0, "seconds_cascaded": runs["cascaded"]["seconds"],
              "seconds_retrain": retrain_s, "time_share_of_retrain": runs["cascaded"]["seconds"] / retrain_s,
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
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--requests", default="class,item")
    p.add_argument("--samples", type=int, default=10000, help="generated samples per model for the metrics")
    p.add_argument("--downstream-samples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda; every timed run of one benchmark uses the same device")
    p.add_argument("--fresh", action="store_true", help="recompute everything, reuse nothing")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    oracle = ensure_oracle(args.dataset, args.data_root, out / "oracle.pt", args.oracle_epochs, args.seed, args.fresh,
                           args.quiet, args.device)
    gan = ensure_gan(args.dataset, args.data_root, out / "original.pt", args.epochs, args.seed, args.fresh, args.quiet,
                     args.device)
    variants = {k: VARIANTS[k] for k in args.variants.split(",") if k}
    if "cascaded" not in variants:
        variants = {"cascaded": {}, **variants}
    settings = EvalSettings(samples=args.samples, seed=args.seed, downstream_samples=args.downstream_samples)
    items = random_items(gan["path"], args.data_root, args.num_items, args.seed)
    (out / "forget_items.json").write_text(json.dumps(items))
    requests = {"class": (f"class{args.forget_class}", ForgetRequest.for_class(args.forget_class)),
                "item": (f"items{args.num_items}", ForgetRequest.for_items(items))}
    results = {"command": " ".join(sys.argv), "machine": machine(args.device), "recipe_epochs": args.epochs,
               "one_off": {"oracle": oracle, "original_gan": gan}, "requests": {}}
    md = [f"# GAN unlearning benchmark ({args.dataset})\n", f"`{results['command']}`\n"]
    for kind in args.requests.split(","):
        name, request = requests[kind]
        r = run_request(out, name, request, gan["path"], oracle["path"], args.data_root, variants=variants,
                        settings=settings, seed=args.seed, fresh=args.fresh, quiet=args.quiet, device=args.device)
        r["checks"] = targets(r["evaluation"], r["runs"], request)
        results["requests"][kind] = r
        md += [f"## {kind} request: {request}\n", r["table"], "", "```json", json.dumps(r["checks"], indent=1),
               "```", ""]
        write_results(out, results, "\n".join(md))
        log(f"{kind} request done")
    print("\n".join(md))


if __name__ == "__main__":
    main()
