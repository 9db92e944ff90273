#!/usr/bin/env python
"""Classifier class unlearning as the papers measure it: every registered class-level method against
retraining without the class, for every class, several seeds, MNIST and the CIFAR-10 subset; L2UL
instance-wise with 8, 32 and 128 instances (the paper's and a variant anchored on retained images of the class).

    python scripts/bench_classifier_unlearning.py --data-root ../shared/datasets            # full
    python scripts/bench_classifier_unlearning.py --quick                                   # smoke run
    python scripts/bench_classifier_unlearning.py --datasets mnist --classes 0,3 --seeds 0,1

Per (dataset, seed): one oracle. Per (dataset, seed, class): one retrain without the class (same recipe),
shared by every method; both cached under --out-dir and reused. Per dataset: an independent judge
classifier (seed 1000, never given to a method) and one SPD-GAN (seed 0) whose in-band samples of a fixed
training sample serve every class and seed. Each row reports: accuracy on the forgotten class and the rest
(test split without the proxies, and a seeded training sample), Fr, Fs (|acc - 0.5|, retrain's beside it),
the SPD-GAN forgetting rate and memory retention, wall time. Summaries: mean +- sd over seeds of the
class-averaged value, and over classes (seed-averaged) the worst class and the range.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from benchlib import write_json

from gan_unlearn.checkpoint import atomic_write, load_checkpoint, restore_model
from gan_unlearn.data import load_dataset
from metrics.attacks import FrAttack, softmax_and_loss
from metrics.classifier_metrics import classifier_report, forgetting_rate, instance_report, retention_rate
from trainers.classifier import ClassifierConfig, predict, train_classifier
from trainers.classifier_unlearning import METHODS, _without_proxies, forget_data, get_method
from trainers.spd_gan import PerturbationGenerator, SPDBand, SPDConfig, spd_samples, train_spd_gan

DEFAULT_EPOCHS = {"mnist": 1, "npz:cifar10_subset.npz": 5}
# what the rows mean; results of another definition are not merged (2: path-perturbation cuts only the
# weights to the class, path-perturbation-full is the paper's cut, L2UL's rest of the class leaves out the
# anchored variant's images)
DEFINITIONS = 2
CLASS_METHODS = [m for m in METHODS if not getattr(METHODS[m], "instance_wise", False)]
L2UL_ANCHORS = 256  # retained training images of the class the anchored variant fits
# the paper's L2UL, and the variant that keeps the rest of the class (see trainers.classifier_unlearning.L2UL)
L2UL_VARIANTS = {"l2ul": {}, "l2ul+anchors": {"ascent": "correct", "class_anchors": L2UL_ANCHORS}}
# (metric, label, higher is worse?) for the worst-class summary
COLUMNS = [("acc_forget_test", "class acc test", True), ("acc_rest_test", "rest acc test", False),
           ("acc_forget_train", "class acc train", True), ("acc_rest_train", "rest acc train", False),
           ("fr", "Fr", False), ("fs_gap", "Fs gap", True), ("spd_fr", "SPD FR", False),
           ("spd_retention", "SPD retention", False), ("seconds", "time (s)", True)]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def tag(dataset: str) -> str:
    return dataset.replace("npz:", "").replace(".npz", "").replace("/", "_")


def ensure_classifier(train, test, epochs: int, seed: int, path: Path) -> tuple[torch.nn.Module, float]:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        train_classifier(train, ClassifierConfig(epochs=epochs, seed=seed), torch.device("cpu"), path, test_set=test,
                         show_progress=False)
    ckpt = load_checkpoint(path, kind="classifier")
    return restore_model(ckpt, "classifier").eval(), ckpt["metrics"].get("train_seconds", float("nan"))


def ensure_spd(train, path: Path, config: SPDConfig) -> PerturbationGenerator:
    c = train.image_shape[0]
    G = PerturbationGenerator(c, config.width, config.noise_dim, config.eps)
    if path.exists():
        G.load_state_dict(torch.load(path, weights_only=True))
        return G.eval()
    G = train_spd_gan(train, config)
    atomic_write(path, lambda f: torch.save(G.state_dict(), f))
    return G


@torch.no_grad()
def accuracy_on(model, ds) -> float:
    return (predict(model, ds.images, "cpu").argmax(1) == ds.labels).float().mean().item() if len(ds) else float("nan")


def summarise(values: dict[tuple[int, int], float], higher_is_worse: bool) -> dict:
    """values keyed (seed, class) -> mean +- sd over seeds of the class mean; worst class and range of the
    seed-averaged class values."""
    values = {k: v for k, v in values.items() if v == v}  # NaN: undefined there (e.g. no SPD sample of a class)
    seeds = sorted({s for s, _ in values})
    classes = sorted({c for _, c in values})
    per_seed = [statistics.fmean(values[s, c] for c in classes if (s, c) in values) for s in seeds]
    per_class = {c: statistics.fmean(values[s, c] for s in seeds if (s, c) in values) for c in classes}
    worst = (max if higher_is_worse else min)(per_class, key=per_class.get)
    return {"mean": statistics.fmean(per_seed), "sd": statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0,
            "worst_class": worst, "worst": per_class[worst], "min": min(per_class.values()),
            "max": max(per_class.values()), "per_class": per_class, "n_seeds": len(seeds),
            "n_classes": len(classes)}


def path_summary(checks: list[dict]) -> dict:
    """Path perturbation's targets over every (seed, class): each class under 5%, the rest kept at 95%."""
    return {"all_classes_below_5pct": all(ch["acc_forget_test"] < 0.05 for ch in checks),
            "all_rest_keeps_95pct": all(ch["rest_ratio"] >= 0.95 for ch in checks),
            "worst_forget_test": max(ch["acc_forget_test"] for ch in checks),
            "worst_rest_ratio": min(ch["rest_ratio"] for ch in checks)}


def resummarise(result: dict) -> None:
    """Recompute every summary of a dataset's result from its raw per-(seed, class) values."""
    higher_worse = {k: hw for k, _, hw in COLUMNS}
    for group in ("rows", "instance_rows"):
        for name, row in result[group].items():
            for k, raw in row.get("raw", {}).items():
                vals = {tuple(int(i) for i in key.split(",")): float(v) for key, v in raw.items()}
                if any(v == v for v in vals.values()):
                    row[k] = summarise(vals, higher_worse.get(k, False) if group == "rows" else False)


def merge(results: dict, other: dict) -> None:
    """Add another run's raw per-(seed, class) values (other seeds or classes, same recipe) to ``results``."""
    for ds, r in other["datasets"].items():
        mine_version = results["datasets"].get(ds, r).get("definitions", 1)
        if r.get("definitions", 1) != DEFINITIONS or mine_version != DEFINITIONS:
            sys.exit(f"error: {ds}: results of another definition of the rows (version {r.get('definitions', 1)} "
                     f"/ {mine_version}, this script writes {DEFINITIONS}) are not merged; rerun them")
        if ds not in results["datasets"]:
            results["datasets"][ds] = r
            continue
        mine = results["datasets"][ds]
        mine["seeds"] = sorted(set(mine["seeds"]) | set(r["seeds"]))
        mine["classes"] = sorted(set(mine["classes"]) | set(r["classes"]))
        mine["oracle_test_accuracy"].update(r["oracle_test_accuracy"])
        mine["path_perturbation_checks"] += r["path_perturbation_checks"]
        for group in ("rows", "instance_rows"):
            for name, row in r[group].items():
                for k, raw in row.get("raw", {}).items():
                    mine[group].setdefault(name, {"raw": {}}).setdefault("raw", {}).setdefault(k, {}).update(raw)
        checks = mine["path_perturbation_checks"]
        if checks:
            mine["path_perturbation_summary"] = path_summary(checks)
    results["command"] += " + " + other["command"]


def run_dataset(args, dataset: str) -> dict:
    root = args.data_root
    name = f"{dataset}[:{args.train_limit}]" if args.train_limit else dataset
    train, test = load_dataset(name, "train", root), load_dataset(dataset, "test", root)
    out = Path(args.out_dir) / (tag(dataset) + (f"_first{args.train_limit}" if args.train_limit else ""))
    epochs = args.epochs or DEFAULT_EPOCHS.get(dataset, 2)
    classes = [int(c) for c in args.classes.split(",")] if args.classes else list(range(train.num_classes))
    seeds = [int(s) for s in args.seeds.split(",")]
    log(f"{dataset}: epochs {epochs}, classes {classes}, seeds {seeds}")
    judge, _ = ensure_classifier(train, test, epochs, 1000, out / f"e{epochs}_judge_seed1000.pt")
    # SPD-GAN: one per dataset; its in-band samples of a fixed training sample serve every class and seed
    spd_config = SPDConfig(steps=args.spd_steps)
    t0 = time.perf_counter()
    G = ensure_spd(train, out / f"spd_gan_steps{args.spd_steps}.pt", spd_config)
    spd_seconds = time.perf_counter() - t0
    spd_source = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(123))[:args.spd_samples])
    spd, spd_record = spd_samples(G, spd_source, judge, SPDBand(eps=spd_config.eps))
    spd_record = {k: v for k, v in spd_record.items() if k != "source_index"}
    spd_record["feature_scale"] = {str(k): v for k, v in spd_record["feature_scale"].items()}
    log(f"SPD-GAN: {spd_record['accepted']}/{spd_record['candidates']} samples in band")
    values: dict[str, dict[str, dict]] = {}  # row -> metric -> {(seed, class): value}
    instance_rows: dict[str, dict[str, dict]] = {}
    checks = []
    methods = args.methods.split(",") if args.methods else CLASS_METHODS
    for seed in seeds:
        oracle, oracle_seconds = ensure_classifier(train, test, epochs, seed, out / f"e{epochs}_seed{seed}" / "oracle.pt")
        sample = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:args.eval_train])
        for c in classes:
            retrained, retrain_seconds = ensure_classifier(train.subset((train.labels != c).nonzero().flatten()), test,
                                                           epochs, seed, out / f"e{epochs}_seed{seed}" / f"retrain_{c}.pt")
            data = forget_data(c, train, test, seed)
            base_test = _without_proxies(test, data, get_method("path-perturbation"))
            members = sample.subset((sample.labels == c).nonzero().flatten())
            non_members = base_test.subset((base_test.labels == c).nonzero().flatten())
            attack = FrAttack(softmax_and_loss(oracle, members.images, members.labels)[0],
                              softmax_and_loss(oracle, non_members.images, non_members.labels)[0], seed)
            spd_f, spd_r = spd.subset((spd.labels == c).nonzero().flatten()), spd.subset((spd.labels != c).nonzero().flatten())
            o_spd = (accuracy_on(oracle, spd_f), accuracy_on(oracle, spd_r))
            rows = {"original": (oracle, None, None), "retrain": (retrained, retrain_seconds, None)}
            for name in methods:
                method = get_method(name, seed=seed)
                t0 = time.perf_counter()
                new = method.apply(oracle, data, "cpu")
                rows[name] = (new, time.perf_counter() - t0, method)
            line = []
            for name, (model, seconds, method) in rows.items():
                r = classifier_report(model, c, sample, base_test, "cpu", seed=seed, fr_attack=attack)
                r["spd_fr"] = forgetting_rate(o_spd[0], accuracy_on(model, spd_f))
                r["spd_retention"] = retention_rate(o_spd[1], accuracy_on(model, spd_r))
                r["seconds"] = seconds if seconds is not None else float("nan")
                if method is not None and hasattr(method, "top_h_used"):
                    r["top_h_used"] = method.top_h_used
                for k, v in r.items():
                    values.setdefault(name, {}).setdefault(k, {})[seed, c] = v
                line.append(f"{name} {100 * r['acc_forget_test']:.1f}/{100 * r['acc_rest_test']:.1f}")
            if "path-perturbation" in rows:
                pp, o = values["path-perturbation"], values["original"]
                checks.append({"seed": seed, "class": c, "acc_forget_test": pp["acc_forget_test"][seed, c],
                               "rest_ratio": pp["acc_rest_test"][seed, c] / o["acc_rest_test"][seed, c],
                               "top_h_used": pp.get("top_h_used", {}).get((seed, c))})
            log(f"seed {seed} class {c}: " + ", ".join(line))
            # L2UL, instance-wise
            if not args.no_l2ul and (args.l2ul_classes is None or c in args.l2ul_classes):
                for n in args.instances:
                    models = {f"original n={n}": (oracle, None, float("nan"))}
                    for variant, params in L2UL_VARIANTS.items():
                        method = get_method("l2ul", seed=seed, num_instances=n, **params)
                        t0 = time.perf_counter()
                        new = method.apply(oracle, data, "cpu")
                        models[f"{variant} n={n}"] = (new, method, time.perf_counter() - t0)
                    for row, (model, method, secs) in models.items():
                        # every row's "rest of the class" leaves out the images the anchored variant fitted
                        r = instance_report(model, data, n, base_test, "cpu", L2UL_ANCHORS)
                        r["seconds"] = secs
                        r["steps"] = method.steps if method else 0
                        for k, v in r.items():
                            instance_rows.setdefault(row, {}).setdefault(k, {})[seed, c] = v
    result = {"definitions": DEFINITIONS, "l2ul_anchors": L2UL_ANCHORS, "dataset": dataset, "epochs": epochs,
              "classes": classes, "seeds": seeds,
              "eval": {"train_sample": len(sample), "test": len(base_test)},
              "spd_gan": {"config": spd_config.__dict__, "train_seconds": spd_seconds, **spd_record},
              "oracle_test_accuracy": {s: load_checkpoint(out / f"e{epochs}_seed{s}" / "oracle.pt")["metrics"]
                                       .get("test_accuracy") for s in seeds},
              "rows": {}, "instance_rows": {}, "path_perturbation_checks": checks}
    higher_worse = {k: hw for k, _, hw in COLUMNS}
    for name, metrics in values.items():
        result["rows"][name] = {k: summarise(v, higher_worse.get(k, False)) for k, v in metrics.items()
                                if any(x == x for x in v.values())}
        result["rows"][name]["zero_shot"] = getattr(METHODS.get(name), "zero_shot", None)
        result["rows"][name]["raw"] = {k: {f"{s},{c}": x for (s, c), x in v.items()} for k, v in metrics.items()}
    for name, metrics in instance_rows.items():
        result["instance_rows"][name] = {k: summarise(v, False) for k, v in metrics.items()
                                         if any(x == x for x in v.values())}
        result["instance_rows"][name]["raw"] = {k: {f"{s},{c}": x for (s, c), x in v.items()} for k, v in metrics.items()}
    if checks:
        result["path_perturbation_summary"] = path_summary(checks)
    return result


def fmt(s: dict, key: str, pct: bool) -> str:
    if key not in s:
        return "-"
    m = s[key]
    k = 100 if pct else 1
    d = 1 if pct else 3
    return f"{k * m['mean']:.{d}f} ± {k * m['sd']:.{d}f}"


def tables(result: dict) -> str:
    rows = result["rows"]
    pct = {"acc_forget_test", "acc_rest_test", "acc_forget_train", "acc_rest_train"}
    head = "| model | zero-shot | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    lines = [f"**{result['dataset']}** ({len(result['classes'])} classes x {len(result['seeds'])} seeds, "
             f"{result['epochs']}-epoch recipe; mean ± sd over seeds of the class mean; accuracies in %)", "",
             head, "|" + "---|" * (len(COLUMNS) + 2)]
    retrain_gap = rows.get("retrain", {}).get("fs_gap", {}).get("mean")
    for name, s in rows.items():
        zs = {True: "yes", False: "no"}.get(s.get("zero_shot"), "-")
        cells = []
        for key, _, _ in COLUMNS:
            cell = fmt(s, key, key in pct)
            if key == "fs_gap" and retrain_gap is not None and name != "retrain" and cell != "-":
                cell += f" ({retrain_gap:.3f})"
            cells.append(cell)
        lines.append(f"| {name} | {zs} | " + " | ".join(cells) + " |")
    lines += ["", "Per class (seed-averaged): worst class and range", "",
              "| model | class acc test: worst (class) | range | rest acc test: worst (class) | range | Fr: worst (class) |",
              "|---|---|---|---|---|---|"]
    for name, s in rows.items():
        a, r, f = s["acc_forget_test"], s["acc_rest_test"], s.get("fr")
        fr_cell = f"{f['worst']:.3f} ({f['worst_class']})" if f else "-"
        lines.append(f"| {name} | {100 * a['worst']:.2f}% ({a['worst_class']}) | {100 * a['min']:.2f}..{100 * a['max']:.2f}% "
                     f"| {100 * r['worst']:.2f}% ({r['worst_class']}) | {100 * r['min']:.2f}..{100 * r['max']:.2f}% | {fr_cell} |")
    if result["instance_rows"]:
        first = next(iter(result["instance_rows"].values()))["raw"]["acc_instances"]
        l2ul_classes = sorted({int(k.split(",")[1]) for k in first})
        lines += ["", f"L2UL, instance-wise, classes {', '.join(map(str, l2ul_classes))} (accuracy in %, mean ± sd over "
                  "seeds of the class mean). l2ul is the paper's "
                  "method; l2ul+anchors also fits the next "
                  f"{L2UL_ANCHORS} training images of the class (bounded ascent), and every row's 'rest of their class' "
                  "leaves those out. A model retrained without the instances would recognise them about as well as "
                  "its class's test images", "",
                  "| model | forgotten instances | rest of their class (train) | their class (test) | other classes (test) "
                  "| steps | time (s) |", "|---|---|---|---|---|---|---|"]
        for name, s in result["instance_rows"].items():
            lines.append(f"| {name} | {fmt(s, 'acc_instances', True)} | {fmt(s, 'acc_class_rest_train', True)} | "
                         f"{fmt(s, 'acc_class_test', True)} | {fmt(s, 'acc_other_test', True)} | "
                         f"{fmt(s, 'steps', False) if name.startswith('l2ul') else '-'} | {fmt(s, 'seconds', False)} |")
    sp = result["spd_gan"]
    spd_cov = rows.get("original", {}).get("spd_fr", {}).get("n_classes")
    lines += ["", f"SPD-GAN: {sp['accepted']}/{sp['candidates']} perturbed training images in band "
                  f"(max pixel change {sp['band']['eps']}, RMS >= {sp['band']['min_rms']}, judge-feature distance <= "
                  f"{sp['band']['feature_ratio']} x the class's median nearest-neighbour distance, judge keeps the label); "
                  f"pass rates {', '.join(f'{k} {100 * v:.0f}%' for k, v in sp.get('pass_rates', {}).items())}; SPD FR "
                  f"averages the {spd_cov} classes with in-band samples"]
    if "path_perturbation_summary" in result:
        p = result["path_perturbation_summary"]
        lines.append(f"Path perturbation over every (seed, class): worst forgotten-class test accuracy "
                     f"{100 * p['worst_forget_test']:.2f}%, worst rest / original {p['worst_rest_ratio']:.3f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--datasets", default="mnist,npz:cifar10_subset.npz")
    p.add_argument("--classes", help="comma-separated class ids (default: all)")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=int, help="training epochs for oracle, judge and retrains (default per dataset: "
                                              + ", ".join(f"{k} {v}" for k, v in DEFAULT_EPOCHS.items()) + ")")
    p.add_argument("--methods", help="comma-separated class-level methods (default: all but l2ul)")
    p.add_argument("--instances", default="8,32,128", help="L2UL instance counts")
    p.add_argument("--no-l2ul", action="store_true")
    p.add_argument("--l2ul-classes", type=lambda v: {int(c) for c in v.split(",")},
                   help="comma-separated classes L2UL runs on (default: every class run; the anchored variant "
                        "takes ~10-20 s per class and instance count on 2 CPU cores)")
    p.add_argument("--eval-train", type=int, default=5000, help="size of the seeded training sample scored")
    p.add_argument("--spd-steps", type=int, default=200)
    p.add_argument("--train-limit", type=int, help="train on the first N training images only (smoke tests)")
    p.add_argument("--spd-samples", type=int, default=3000)
    p.add_argument("--out-dir", default="runs/bench_clf")
    p.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "bench_classifier_unlearning.json"))
    p.add_argument("--quick", action="store_true", help="MNIST, classes 0 and 1, seed 0, 8 and 32 instances")
    p.add_argument("--retable", action="store_true",
                   help="recompute the summaries and tables of the --json file from its raw values; run nothing")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="with --retable: first add these runs' raw values (other seeds or classes) to --json")
    args = p.parse_args()
    if args.retable:
        out = Path(args.json)
        results = json.loads(out.read_text())
        for extra in args.merge or []:
            merge(results, json.loads(Path(extra).read_text()))
        for r in results["datasets"].values():
            resummarise(r)
        md = "\n\n".join(tables(r) for r in results["datasets"].values())
        write_json(out, results)
        atomic_write(out.with_suffix(".md"), lambda f: f.write((md + "\n").encode()))
        print(md)
        return
    if args.quick:
        args.datasets, args.classes, args.seeds, args.instances = "mnist", args.classes or "0,1", "0", "8,32"
        args.json = args.json.replace(".json", "_quick.json")
    args.instances = [int(n) for n in args.instances.split(",")]
    torch.set_num_threads(2)
    results = {"command": " ".join(sys.argv), "datasets": {}}
    t0 = time.perf_counter()
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets.split(","):  # written after each dataset, so a cut-off run keeps what finished
        results["datasets"][dataset] = run_dataset(args, dataset)
        print(tables(results["datasets"][dataset]), flush=True)
        results["seconds"] = time.perf_counter() - t0
        md = "\n\n".join(tables(r) for r in results["datasets"].values())
        write_json(out, results)
        atomic_write(out.with_suffix(".md"), lambda f: f.write((md + "\n").encode()))
        log(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
