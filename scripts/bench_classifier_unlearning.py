#!/usr/bin/env python
"""Classifier class unlearning: every registered method against retraining without the class.

    python scripts/bench_classifier_unlearning.py --data-root ../shared/datasets --out-dir runs/bench_clf

Trains (or reuses) the oracle and the retrained-without-the-class classifier (same recipe), runs each
method on a copy of the oracle, and reports accuracy on the forgotten class and on the rest (train sample
and test split, proxies excluded), the class membership AUC, and wall time. Writes results.json and
results.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_unlearn.checkpoint import atomic_write, load_checkpoint, restore_model  # noqa: E402
from gan_unlearn.data import load_dataset  # noqa: E402
from gan_unlearn.forget import ForgetRequest  # noqa: E402
from metrics.classifier_metrics import classifier_report, forgetting_rate, retention_rate  # noqa: E402
from trainers.classifier import ClassifierConfig, train_classifier  # noqa: E402
from trainers.classifier_unlearning import METHODS, _without_proxies, forget_data, get_method  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--out-dir", default="runs/bench_clf")
    p.add_argument("--forget-class", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--oracle", help="reuse this classifier checkpoint (otherwise trained or reused from --out-dir)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cpu")
    train, test = load_dataset(args.dataset, "train", args.data_root), load_dataset(args.dataset, "test", args.data_root)
    config = ClassifierConfig(epochs=args.epochs, seed=args.seed)
    oracle_path = Path(args.oracle) if args.oracle else out / "classifier.pt"
    if not oracle_path.exists() or args.fresh:
        train_classifier(train, config, dev, oracle_path, test_set=test, show_progress=False)
    retrain_path = out / f"retrain_without_{args.forget_class}.pt"
    _, retain = ForgetRequest.for_class(args.forget_class).split(train.labels, train.num_classes)
    if not retrain_path.exists() or args.fresh:
        train_classifier(train.subset(retain), config, dev, retrain_path, test_set=test, show_progress=False)
    retrain_seconds = load_checkpoint(retrain_path)["metrics"]["train_seconds"]
    model = restore_model(load_checkpoint(oracle_path, kind="classifier"), "classifier").eval()
    retrained = restore_model(load_checkpoint(retrain_path, kind="classifier"), "classifier").eval()
    data = forget_data(args.forget_class, train, test, args.seed)
    sample = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[:10000])
    c = args.forget_class
    rows = {}
    base_test = _without_proxies(test, data, get_method("path-perturbation"))  # one test set for every row
    rows["original"] = {**classifier_report(model, c, sample, base_test), "seconds": None}
    rows["retrain"] = {**classifier_report(retrained, c, sample, base_test), "seconds": retrain_seconds}
    for name in args.methods.split(","):
        method = get_method(name, seed=args.seed)
        t0 = time.perf_counter()
        new = method.apply(model, data, dev)
        seconds = time.perf_counter() - t0
        rows[name] = {**classifier_report(new, c, sample, base_test), "seconds": seconds,
                      "zero_shot": method.zero_shot, "parameters": method.params}
        print(f"{name}: {seconds:.2f} s", flush=True)
    o = rows["original"]
    for r in rows.values():
        r["forgetting_rate"] = forgetting_rate(o["acc_forget_test"], r["acc_forget_test"])
        r["retention_rate"] = retention_rate(o["acc_rest_test"], r["acc_rest_test"])
    pp = rows.get("path-perturbation")
    checks = None
    if pp:
        checks = {"forget_test_below_5pct": pp["acc_forget_test"] < 0.05,
                  "rest_keeps_95pct": pp["acc_rest_test"] >= 0.95 * o["acc_rest_test"],
                  "under_10_seconds": pp["seconds"] < 10}
    header = ("| model | zero-shot | acc class (test) | acc rest (test) | acc class (train) | acc rest (train) "
              "| forgetting rate | retention rate | membership AUC | time (s) |")
    lines = [header, "|" + "---|" * 10]
    for name, r in rows.items():
        secs = f"{r['seconds']:.2f}" if r["seconds"] is not None else "-"
        zs = {True: "yes", False: "no"}.get(r.get("zero_shot"), "-")
        lines.append(f"| {name} | {zs} | {100 * r['acc_forget_test']:.2f}% | {100 * r['acc_rest_test']:.2f}% | "
                     f"{100 * r['acc_forget_train']:.2f}% | {100 * r['acc_rest_train']:.2f}% | "
                     f"{r['forgetting_rate']:.3f} | {r['retention_rate']:.3f} | {r['mia_auc']:.3f} | {secs} |")
    table = "\n".join(lines)
    result = {"command": " ".join(sys.argv), "dataset": args.dataset, "forget_class": c, "rows": rows,
              "checks": checks, "eval": {"train_sample": len(sample), "test": len(base_test),
                                         "proxies_excluded": len(test) - len(base_test)}}
    atomic_write(out / "results.json", lambda f: f.write(json.dumps(result, indent=2).encode()))
    atomic_write(out / "results.md", lambda f: f.write((table + "\n").encode()))
    print(table)
    print(json.dumps(checks))


if __name__ == "__main__":
    main()
