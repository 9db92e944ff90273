#!/usr/bin/env python
"""GAN unlearning measured with the evaluation protocol: original, cascaded (and its variants), fine-tuned and
retrained models side by side, over several seeds, each number also read against retraining.

    python scripts/bench_gan_unlearning.py --data-root ../shared/datasets --out-dir runs/bench_gan
    python scripts/bench_gan_unlearning.py --setting memorising --requests item --out-dir runs/bench_mem

Settings: ``full`` trains the original GAN on the whole training set (the case where the original does
not memorise its items); ``memorising`` trains it long on a small subset (``--subset`` images,
``--epochs`` many), where the original measurably memorises its training items, and draws the forgotten
items from that subset. For every seed: the original GAN, the retrained GANs and the unlearning runs use
that seed; the oracle (which guides the method) and an independent judge (another seed and width, which
the method never sees) are trained once. Evaluation draws fresh latents (stream evaluate.latents) and
reads held-out images from the reporting half of the held-out split. Writes results.json and results.md
in --out-dir and prints the tables (mean +- sd over seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchlib import (ensure_gan, ensure_oracle, log, machine, mean_sd, random_items, run_request, table,
                      write_results)

from gan_unlearn.forget import ForgetRequest
from gan_unlearn.workflows.evaluate import EvalSettings, headline
from trainers.unlearning.options import RATES, UnlearnConfig

# The default cascade and the variants it is compared with (the default is the one that measured best).
VARIANTS = {
    "cascaded": {},
    "cascaded-nearest-real": {"substitution.kind": "nearest-real"},
    "cascaded-focus": {"focus_fraction": 0.25},
    "cascaded-quick-checks": {"quick_check": 500},
    "cascaded-fresh": {"substitution.fresh": True},
    "cascaded-guard-average-only": {"watch_trained": False},  # the guard before it watched the trained generator
    # learning rates: the trained generator drifts past the guard within 10 rounds at lr_g 2e-3 on a memorising GAN.
    # Each repeats the default on one request kind (RATES): equal rates are a class request's, the item rates an
    # item request's (and were every request's before 2026-12-04)
    "cascaded-equal-lr": {"lr_g": 1e-3, "lr_d": 1e-3},
    "cascaded-item-rates": {"lr_g": 2e-3, "lr_d": 5e-4},
    "cascaded-fast-d": {"lr_d": 2e-3},
    # item requests' generator, gentler: half the item rates, or a longer weight average (on 64 memorised MNIST
    # items the rounds at the item rates left FID at 1.11x/1.19x retrain's, fine-tuning alone at 1.07x/1.14x)
    "cascaded-half-lr": {"lr_g": 1e-3, "lr_d": 2.5e-4},
    "cascaded-ema-0.99": {"ema": 0.99},
    # item requests: stop when the generator's samples, too, come no closer to the items than to held-out images
    "cascaded-generator-rule": {"item_generator_rule": True},
    "cascaded-equal-lr-generator-rule": {"lr_g": 1e-3, "lr_d": 1e-3, "item_generator_rule": True},
    "cascaded-equal-lr-generator-auc-rules": {"lr_g": 1e-3, "lr_d": 1e-3, "item_generator_rule": True,
                                              "item_rule": "auc"},
    # item requests only (a class request runs them as the default): how D learns the items, when it stops
    "cascaded-auc-stop": {"item_rule": "auc"},
    "cascaded-matched-d": {"item_d_target": "held-out", "item_rule": "auc"},
    "cascaded-matched-d-mean-rule": {"item_d_target": "held-out"},
    # the matched target in logits: it keeps pulling where a memorising D scores every unseen image near 0
    "cascaded-matched-logits": {"item_d_target": "held-out-logits", "item_rule": "auc"},
    "cascaded-matched-logits-generator-rule": {"item_d_target": "held-out-logits", "item_rule": "auc",
                                               "item_generator_rule": True},
    "cascaded-equal-lr-matched-logits": {"lr_g": 1e-3, "lr_d": 1e-3, "item_d_target": "held-out-logits",
                                         "item_rule": "auc"},
    "cascaded-equal-lr-matched-logits-generator-rule": {"lr_g": 1e-3, "lr_d": 1e-3,
                                                        "item_d_target": "held-out-logits", "item_rule": "auc",
                                                        "item_generator_rule": True},
    # D's finish (the item default since 2026-12-05): the rounds as before (the generator moves under the
    # fake-label D), then D alone on the logit target until its rule holds: the D handed back forgets the items'
    # ranks, which the fake label leaves. "cascaded-d-finish" names it in the runs that measured it (it repeats
    # the default now and is skipped); "cascaded-no-d-finish" runs the rounds without it (the gate needs the
    # finish, so it does not apply there)
    "cascaded-d-finish": {"item_d_finish": 300},
    "cascaded-no-d-finish": {"item_d_finish": 0},
    # the generator gate (the item default since 2026-12-05): no rounds where the original generator comes no
    # closer to the items than to held-out images (its nearest-sample AUC in pixels at most 1/2 + auc_margin),
    # only D's finish. On 64 memorised CIFAR-10 items the generator shows none (NN AUC 0.51) and the rounds
    # raised FID to 1.24x retrain's. "cascaded-generator-gate" names it in the runs that measured it
    "cascaded-generator-gate": {"item_generator_gate": True},
    "cascaded-no-generator-gate": {"item_generator_gate": False},
    "cascaded-no-gate-no-d-finish": {"item_generator_gate": False, "item_d_finish": 0},  # items: before 2026-12-05
    # D read after every 2nd or 4th finish step: a reading costs about 2/3 of a step (64 memorised CIFAR-10 items,
    # where a gated run spent 0.97 s of 1.45 s in the finish), and the finish took 8-11 steps. Measured there (3
    # seeds, AMD EPYC): 1.72 s and 2.08 s against 1.64 s, the finish overshooting into more steps (11 -> 18, 40)
    "cascaded-finish-read-2": {"item_d_finish_every": 2, "item_d_finish_head": False},
    "cascaded-finish-read-4": {"item_d_finish_every": 4, "item_d_finish_head": False},
    # D's finish at twice or four times D's rate in the rounds: the finish's time is its steps (8-11 on 64
    # memorised CIFAR-10 items). Measured there (3 seeds, AMD EPYC): D never came back within the acceptance limits
    # (50-90% of held-out images accepted against 0-1%), spent its 300 steps in 37-41 s and was handed back as before
    "cascaded-finish-lr-2": {"item_d_finish_lr": 2.0, "item_d_finish_head": False},
    "cascaded-finish-lr-4": {"item_d_finish_lr": 4.0, "item_d_finish_head": False},
    # D's finish on its output layer alone (the item default since 2026-12-06), over inputs read once (the rest of
    # D frozen): a step or a reading is one small layer, where the whole D's were 70 ms and 45 ms on 64 memorised
    # CIFAR-10 items. Its rate is auto (16x D's); at 1x (D's own rate) it took 161-182 steps there, at 4x 39-53,
    # at 16x 11-14. "cascaded-finish-head" names it in the runs that measured it; "cascaded-whole-d-finish" is
    # the finish before (the whole D at D's rate)
    "cascaded-finish-head": {"item_d_finish_head": True},
    "cascaded-whole-d-finish": {"item_d_finish_head": False},
    "cascaded-finish-head-lr-1": {"item_d_finish_head": True, "item_d_finish_lr": 1.0},
    "cascaded-finish-head-lr-4": {"item_d_finish_head": True, "item_d_finish_lr": 4.0},
    # the output layer's finish with no whole D after it (the default from the morning of 2026-12-06 until the
    # hand-over): on 1,024 memorised MNIST items it spent its 300 steps outside the acceptance limits
    "cascaded-head-finish-only": {"item_d_finish_head": True, "item_d_finish_head_steps": 300},
    # the gate read on 1,000 samples (the default since 2026-12-06: scripts/bench_gate_samples.py found the draw of
    # latents moving its reading more than the count) and on 2,000, the default before (0.3 s of a 0.6 s gated run
    # on 64 memorised CIFAR-10 items)
    "cascaded-gate-1000": {"item_gate_samples": 1000},
    "cascaded-gate-2000": {"item_gate_samples": 2000},
    # D's threshold read and handed back raw (before calibrate_d): continued training moves it by itself
    "cascaded-uncalibrated-d": {"calibrate_d": False},
    "cascaded-equal-lr-matched-logits-uncalibrated-d": {"lr_g": 1e-3, "lr_d": 1e-3, "item_d_target": "held-out-logits",
                                                        "item_rule": "auc", "calibrate_d": False},
    # class requests: no stop once the class share stops falling (before plateau_checks): the target or the budget
    "cascaded-no-plateau": {"plateau_checks": 0},
    # class requests: the plateau read latent by latent (a sign test on the check's fixed latents): on the 25-epoch
    # MNIST GAN every run stopped on the independent test while the share still fell 0.1-1 point per check
    "cascaded-paired-plateau": {"plateau_test": "paired"},
    # class requests: which pool latents show the class. The default takes the oracle's probability above 0.5,
    # or its predicted class where 0.5 keeps fewer than half of those (an unsure oracle: on a CIFAR-10 GAN 0.5
    # found 1 of 4,096 latents where the oracle predicted the class for 4%). These are the two rules alone; which
    # of them repeats the default depends on the oracle (MNIST: 0.5, the CIFAR-10 subset: predicted class).
    "cascaded-probability-0.5": {"class_fallback": 0.0},
    "cascaded-predicted-class": {"class_threshold": 0.0},
    # substitution and preservation alone: on a 5-epoch CIFAR-10 GAN the adversarial loss against a D trained on
    # moved the generator past the drift guard within 10 rounds and raised the class's share
    "cascaded-no-adversarial": {"lambda_adv": 0.0, "lambda_adv_forget": 0.0},
    # without the adversarial losses, gentler: half the rates, or four times the preservation weight (on the
    # 25-epoch CIFAR-10 GAN the variant above forgets as retraining does but raises FID to 1.7x retrain's)
    "cascaded-no-adversarial-half-lr": {"lambda_adv": 0.0, "lambda_adv_forget": 0.0, "lr_g": 1e-3, "lr_d": 2.5e-4},
    "cascaded-no-adversarial-strong-keep": {"lambda_adv": 0.0, "lambda_adv_forget": 0.0, "lambda_keep": 200.0},
    # class requests: the adversarial losses go once a class is lost a second time (the first step back halved
    # the rates): on a 25-epoch CIFAR-10 GAN the adversarial pull of the D taught "cat is fake" cost classes 1, 5,
    # 7 and 9 at every rate, and every run returned the state of round 20
    "cascaded-adversarial-off-after-2": {"adversarial_off_after": 2},
}


# options that only a class request reads: a variant that sets nothing else is the default on an item request
CLASS_ONLY_OPTIONS = {"plateau_checks", "plateau_z", "plateau_test", "class_threshold", "class_fallback",
                      "adversarial_off_after"}
CLASS_ONLY_VARIANTS = tuple(name for name, options in VARIANTS.items()
                            if options and set(options) <= CLASS_ONLY_OPTIONS)
# options that only an item request reads: a variant that sets nothing else is the default on a class request
ITEM_ONLY_OPTIONS = {"item_d_target", "item_rule", "item_generator_rule", "calibrate_d", "item_d_finish",
                     "item_generator_gate", "item_d_finish_every", "item_d_finish_lr",
                     "item_gate_samples", "item_d_finish_head", "item_d_finish_head_steps"}
ITEM_ONLY_VARIANTS = tuple(name for name, options in VARIANTS.items()
                           if options and set(options) <= ITEM_ONLY_OPTIONS)


def aggregate(per_seed: list[dict]) -> dict:
    """Mean and sd over seeds of every model's headline numbers, time, speedup and its comparison with retrain."""
    out = {}
    for model in per_seed[0]["evaluation"]["models"]:
        name = model["label"].rsplit("_", 1)[-1] if model["method"] != "original" else "original"
        rows = [next(r for r in s["evaluation"]["models"] if r["label"] == model["label"]) for s in per_seed]
        entry = {"method": model["method"], "seconds": mean_sd([r["unlearning_seconds"] for r in rows]),
                 "speedup": mean_sd([r.get("speedup_vs_retrain") for r in rows])}
        for key in headline(rows[0]["metrics"]):
            entry[key] = mean_sd([headline(r["metrics"]).get(key) for r in rows])
        if "against_retrain" in rows[0]:
            entry["against_retrain"] = {k: {f: mean_sd([r["against_retrain"][k].get(f) for r in rows])
                                            for f in ("ratio", "difference", "gap_closed") if f in v}
                                        for k, v in rows[0]["against_retrain"].items()}
        out[name] = entry
    return out


def fmt(stat: dict, scale: float = 1.0, digits: int = 2, suffix: str = "") -> str:
    if stat is None or stat.get("mean") is None:
        return "-"
    return f"{scale * stat['mean']:.{digits}f} ± {scale * stat['sd']:.{digits}f}{suffix}"


def summary_table(agg: dict, kind: str) -> str:
    """Mean ± sd over seeds; each unlearned row beside retrain's."""
    judge = "fid_judge" in agg["original"]
    header = ["model", "time (s)", "speedup", "FID (oracle)", "FID / retrain's"]
    if judge:
        header += ["FID (judge)", "FID (judge) / retrain's"]
    beyond = [k for k in ("beyond_pool interpolated (judge)", "beyond_pool scaled (judge)") if k in agg["original"]]
    if kind == "class":
        header += ["forget rate, oracle", "forget rate, judge", "judge − retrain (points)"]
        header += [f"beyond the pool, {k.split()[1]} (judge)" for k in beyond]
    else:
        header += ["D AUC, distance from 0.5", "D acc. on held-out real", "NN AUC pixels vs test",
                   "NN AUC pixels vs unseen train", "NN AUC judge vs test"]
    rows = []
    for name, e in agg.items():
        vs = e.get("against_retrain", {})
        row = [name, fmt(e["seconds"]), fmt(e["speedup"], digits=0, suffix="x"), fmt(e["fid"]),
               fmt(vs.get("fid", {}).get("ratio"))]
        if judge:
            row += [fmt(e["fid_judge"]), fmt(vs.get("fid_judge", {}).get("ratio"))]
        if kind == "class":
            row += [fmt(e.get("forget_rate"), 100, suffix="%"), fmt(e.get("forget_rate_judge"), 100, suffix="%"),
                    fmt(vs.get("forget_rate_judge", {}).get("difference"), 100)]
            row += [fmt(e.get(k), 100, suffix="%") for k in beyond]
        else:
            row += [fmt(e.get("membership_distance"), digits=3), fmt(e.get("d_real_accuracy"), 100, 0, "%"),
                    fmt(e.get("nn_auc pixels vs test"), digits=3), fmt(e.get("nn_auc pixels vs unseen_train"), digits=3),
                    fmt(e.get("nn_auc judge features vs test"), digits=3)]
        rows.append(row)
    return table(header, rows)


def same_as_default(kind: str) -> tuple:
    """The variants that run as the default on a ``kind`` request: they set only the other kind's options, only
    the learning rates to the ``kind``'s own, or only options to their defaults (a variant that became the
    default keeps its name for the commands of the runs that measured it)."""
    own_rates = dict(zip(("lr_g", "lr_d"), RATES[kind]))
    rates_only = tuple(name for name, options in VARIANTS.items() if options == own_rates)
    defaults = tuple(name for name, options in VARIANTS.items()
                     if options and UnlearnConfig.of(**options) == UnlearnConfig.of())
    return (CLASS_ONLY_VARIANTS if kind == "item" else ITEM_ONLY_VARIANTS) + rates_only + defaults


def variants_for(variants: dict, kind: str) -> dict:
    """The variants that differ from the default on a ``kind`` request (the others would repeat its run)."""
    return {name: options for name, options in variants.items() if name not in same_as_default(kind)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--setting", choices=("full", "memorising"), default="full")
    p.add_argument("--subset", type=int, default=256, help="memorising setting: training images of the GAN")
    p.add_argument("--out-dir", default="runs/bench_gan")
    p.add_argument("--epochs", type=int, default=None,
                   help="recipe of the original and retrained GANs (default 25, memorising 1200)")
    p.add_argument("--oracle-epochs", type=int, default=None,
                   help="epochs of the oracle and the judge (default: 2 on MNIST; 15 on "
                        "CIFAR-10, where 2 epochs on the 8,068-image subset gave 47%% and 43%% test accuracy and "
                        "15 gave 65%% and 61%%)")
    p.add_argument("--forget-class", type=int, default=3)
    p.add_argument("--num-items", type=int, default=64)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--requests", default="class,item")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--samples", type=int, default=10000, help="generated samples per model for the metrics")
    p.add_argument("--downstream-samples", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda; every timed run of one benchmark uses the same device")
    p.add_argument("--fresh", action="store_true", help="recompute everything, reuse nothing")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    names = [k for k in args.variants.split(",") if k]
    unknown = [k for k in names if k not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; choose from: {', '.join(VARIANTS)}")
    epochs = args.epochs or (1200 if args.setting == "memorising" else 25)
    oracle_epochs = args.oracle_epochs or (15 if "cifar" in args.dataset.lower() else 2)
    dataset = f"{args.dataset}[:{args.subset}]" if args.setting == "memorising" else args.dataset
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    oracle = ensure_oracle(args.dataset, args.data_root, out / "oracle.pt", oracle_epochs, 0, args.fresh,
                           args.quiet, args.device)
    judge = ensure_oracle(args.dataset, args.data_root, out / "judge.pt", oracle_epochs, 1000, args.fresh,
                          args.quiet, args.device, hidden=128)
    variants = {k: VARIANTS[k] for k in names}
    if "cascaded" not in variants:
        variants = {"cascaded": {}, **variants}
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {"command": " ".join(sys.argv), "machine": machine(args.device), "setting": args.setting,
               "dataset": dataset, "recipe_epochs": epochs, "seeds": seeds, "samples": args.samples,
               "one_off": {"oracle": oracle, "judge": judge}, "requests": {}}
    md = [f"# GAN unlearning benchmark ({dataset}, {args.setting} setting, seeds {args.seeds})\n",
          f"`{results['command']}`\n"]
    for kind in args.requests.split(","):
        per_seed = []
        for seed in seeds:
            sdir = out / f"seed{seed}"
            sdir.mkdir(exist_ok=True)
            gan = ensure_gan(dataset, args.data_root, sdir / "original.pt", epochs, seed, args.fresh, args.quiet,
                             args.device)
            if kind == "class":
                name, request = f"class{args.forget_class}", ForgetRequest.for_class(args.forget_class)
            else:
                items = random_items(gan["path"], args.data_root, args.num_items, seed)
                (sdir / "forget_items.json").write_text(json.dumps(items))
                name, request = f"items{args.num_items}", ForgetRequest.for_items(items)
            settings = EvalSettings(samples=args.samples, seed=seed, judge=str(judge["path"]),
                                    downstream_samples=args.downstream_samples)
            r = run_request(sdir, name, request, gan["path"], oracle["path"], args.data_root,
                            variants=variants_for(variants, kind),
                            settings=settings, seed=seed, fresh=args.fresh, quiet=args.quiet, device=args.device)
            r["original_gan"] = gan
            per_seed.append(r)
            log(f"{kind} request, seed {seed} done")
        agg = aggregate(per_seed)
        results["requests"][kind] = {"per_seed": per_seed, "aggregate": agg, "table": summary_table(agg, kind)}
        md += [f"## {kind} request ({per_seed[0]['request']}), mean ± sd over {len(seeds)} seeds\n",
               results["requests"][kind]["table"], ""]
        write_results(out, results, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
