#!/usr/bin/env python
"""Regenerate the README's Results section from the benchmark JSON in scripts/results/.

    python scripts/update_readme.py

Copy a benchmark's results.json into scripts/results/ under the names below first; missing ones are
listed as not yet run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "scripts" / "results"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def load(name: str):
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else None


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def device_words(m: dict) -> str:
    return f"GPU ({m['gpu']})" if m.get("gpu") else f"CPU, {m['threads']} threads"


def gan_section(r: dict) -> list[str]:
    m = r["machine"]
    title = "### GAN unlearning on MNIST (issue targets)" if not m.get("gpu") else f"### The same on a GPU ({m['gpu']})"
    out = [title, "",
           f"Command: `{r['command']}`  ", f"Machine: {m['platform']}, {device_words(m)}, torch {m['torch']}. "
           f"Recipe of the original and retrained GANs: DCGAN, {r['recipe_epochs']} epochs, Adam 2e-4, batch 64, "
           "bf16 autocast + channels_last.", ""]
    for kind, req in r["requests"].items():
        c = req["checks"]
        out += [f"**{kind} request** ({req['request']['kind']}, "
                f"{'class ' + str(req['request'].get('class_id')) if kind == 'class' else str(req['request'].get('num_items')) + ' items'}):",
                "", req["table"], ""]
        line = (f"Cascaded unlearning took {c['seconds_cascaded']:.1f} s, {pct(c['time_share_of_retrain'])} of retraining "
                f"({c['seconds_retrain']:.0f} s, {c['seconds_retrain'] / c['seconds_cascaded']:.0f}x faster); FID "
                f"{c['fid_original']:.2f} -> {c['fid_cascaded']:.2f} ({100 * c['fid_rise']:+.1f}%).")
        if kind == "class":
            line += (f" Share of samples the oracle assigns to the class: {pct(c['forget_rate_original'])} -> "
                     f"{pct(c['forget_rate_cascaded'])}.")
        else:
            b, a = c["d_score_before"], c["d_score_after"]
            line += (f" D's mean score on the forgotten items vs held-out test images: before {b['forgotten']:.4f} vs "
                     f"{b['held_out']:.4f}, after {a['forgotten']:.4f} vs {a['held_out']:.4f}.")
        out += [line, ""]
    return out


def speedup_section(r: dict) -> list[str]:
    out = ["### Speedup against retraining" + (" (quick setting)" if r.get("quick") else ""), "",
           f"Command: `{r['command']}`", ""]
    md = (RESULTS / ("bench_speedup_quick.md" if r.get("quick") else "bench_speedup.md"))
    if md.exists():
        out += [md.read_text().strip(), ""]
    out += [f"Machine: {device_words(r['machine'])}, torch {r['machine']['torch']}. The rows are this machine's, "
            "measured in one run, beside the paper's reported speedups (last line of the table)."]
    if r.get("quick"):
        out += ["The quick setting checks the pipeline, not the method: 6,000 MNIST / 3,000 CIFAR images, 2- and "
                "3-epoch GANs, 1-epoch oracles, 2,000 samples, no downstream column. Its retraining takes seconds, "
                "so the speedups are small, and its CIFAR oracle is too weak to assign any sample to class 3."]
    else:
        out += ["Scope of this run: the MNIST original GAN, oracle and retrained models (25-epoch recipe) are the "
                "ones from the GAN unlearning benchmark above, reused and marked so in the JSON with the time they "
                "recorded; CIFAR-10 is the offline subset (8,068 training images) with a 10-epoch recipe, where "
                "retraining itself takes about 2 minutes, so the speedups there are small and the oracle-labelled "
                "downstream accuracy is low. Item sets of 256 and 1,024 appear only in the quick run: each needs its "
                "own 40-minute MNIST retrain on this CPU."]
    return out + [""]


def classifier_section(r: dict) -> list[str]:
    out = ["### Classifier class unlearning (every class, several seeds, MNIST and the CIFAR-10 subset)", "",
           f"Command: `{r['command']}`", ""]
    md = RESULTS / "bench_classifier_unlearning.md"
    if md.exists():
        out += [md.read_text().strip(), ""]
    for name, d in r.get("datasets", {}).items():
        out += [f"{name}: test accuracies exclude the path methods' {36} proxy images ({d['eval']['test']} scored); "
                f"train accuracies and the Fr/Fs members use {d['eval']['train_sample']} training images; Fr's SVM "
                "is fitted on the original's softmax outputs (class train vs class test images), Fs is the "
                "5-fold cross-validated accuracy of a logistic regression on per-sample loss, shown as "
                "|acc - 0.5| with retrain's in brackets; SPD FR and retention are read on the SPD-GAN samples "
                "(forgotten class and the other classes respectively).", ""]
    return out


def throughput_section(r: dict, inc: dict | None) -> list[str]:
    out = ["### Throughput", "", f"Command: `{r['command']}`", "",
           "| run | images/s (mean) | per seed | speedup vs plain loop | classifier FID after one epoch (per seed) |",
           "|---|---|---|---|---|"]
    for name, row in r["training"].items():
        out.append(f"| {name} | {row['images_per_second']:.0f} | {', '.join(f'{v:.0f}' for v in row['per_seed'])} | "
                   f"{row['speedup_vs_plain']:.2f}x | "
                   f"{', '.join(f'{v:.2f}' for v in row['fid_after'])} |")
    s = r["sampling_images_per_second"]
    out += ["", f"Sampling: {s['fp32']:.0f} images/s fp32, {s['bf16']:.0f} images/s bf16; oracle features: "
            f"{r['classifier_features_images_per_second']:.0f} images/s.", ""]
    if inc:
        out += [f"Inception FID extractor (`{inc['command']}`, {inc['weights']} weights, {inc['input']}):", "",
                "| setting | images/s | speedup | FID change vs fp32 |", "|---|---|---|---|"]
        for name, row in inc["settings"].items():
            out.append(f"| {name} | {row['images_per_second']:.1f} | {row['speedup']:.2f}x | "
                       f"{100 * row['fid_relative_change']:+.2f}% |")
        out.append("")
    return out


def augmentation_section(r: dict) -> list[str]:
    out = ["### Downstream augmentation after class unlearning", "", f"Command: `{r['command']}`", "",
           "| training data | images | test accuracy (retained classes) | forgotten-class share of draws |",
           "|---|---|---|---|"]
    for label, row in r["rows"].items():
        share = pct(row["forgotten_class_share_of_draws"]) if "forgotten_class_share_of_draws" in row else "-"
        data = "real only" if label == "real only" else f"real + {label} synthetic"
        out.append(f"| {data} | {row['train_images']} | {pct(row['accuracy'])} | {share} |")
    return out + [""]


def main() -> None:
    parts = []
    sections = [("bench_gan_unlearning.json", gan_section), ("bench_gan_unlearning_cuda.json", gan_section),
                ("bench_speedup.json", speedup_section),
                ("bench_speedup_quick.json", speedup_section),
                ("bench_classifier_unlearning.json", classifier_section),
                ("augmentation.json", augmentation_section)]
    missing = []
    for name, render in sections:
        r = load(name)
        if r is None:
            missing.append(name)
        else:
            parts += render(r)
    tp = load("bench_throughput.json")
    if tp:
        parts += throughput_section(tp, load("bench_inception.json"))
    else:
        missing.append("bench_throughput.json")
    if missing:
        parts += [f"Not yet run: {', '.join(missing)}.", ""]
    readme = (REPO / "README.md").read_text()
    body = "\n".join(parts).rstrip() + "\n"
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{body}{END}", readme, flags=re.S)
    (REPO / "README.md").write_text(new)
    print(f"README results section: {len(parts)} lines; missing: {missing or 'none'}")


if __name__ == "__main__":
    main()
