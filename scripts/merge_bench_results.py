#!/usr/bin/env python
"""Merge results of one benchmark run in parts, one or more seeds per part, into one results file: the
per-seed records side by side and mean ± sd over all their seeds recomputed.

    python scripts/merge_bench_results.py seed0/results.json seed1/results.json --out-dir runs/merged

Why: a lent GPU's calls are time-limited (10 minutes each), so a 25-epoch MNIST benchmark runs one seed per
call. Parts merge only if they measured the same thing: the same setting, dataset, recipe, sample count,
machine and models, and no seed twice. Writes results.json and results.md in --out-dir, as the benchmark does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_gan_unlearning import aggregate, summary_table
from benchlib import write_results

# what every part must share for one mean over their seeds to mean anything
SAME = ("setting", "dataset", "recipe_epochs", "samples", "machine")


def rename(part: dict, names: dict) -> dict:
    """``part`` with its cascade variants renamed (``{old: new}``): for results made before a default changed,
    where an old variant's options are the new default's (the new name must not be in the part already)."""
    part = json.loads(json.dumps(part))
    for kind, req in part["requests"].items():
        for s in req["per_seed"]:
            taken = set(s["runs"])
            for old, new in names.items():
                if old not in s["runs"]:
                    raise ValueError(f"{kind} request: no variant {old!r} to rename")
                if new in taken - set(names):
                    raise ValueError(f"{kind} request: {new!r} is there already")
            s["runs"] = {names.get(k, k): v for k, v in s["runs"].items()}
            for m in s["evaluation"]["models"]:
                prefix, _, variant = m["label"].rpartition("_")
                if m["method"] != "original" and variant in names:
                    m["label"] = f"{prefix}_{names[variant]}"
        req.pop("aggregate", None), req.pop("table", None)
    return part


def merge(parts: list[dict]) -> dict:
    """One results dict from ``parts`` (bench_gan_unlearning results); ``ValueError`` says why they differ."""
    if not parts:
        raise ValueError("nothing to merge")
    first = parts[0]
    for i, part in enumerate(parts[1:], 2):
        for key in SAME:
            if part.get(key) != first.get(key):
                raise ValueError(f"part {i} has another {key} ({part.get(key)!r}, part 1: {first.get(key)!r})")
        if set(part["requests"]) != set(first["requests"]):
            raise ValueError(f"part {i} ran other requests ({sorted(part['requests'])}, "
                             f"part 1: {sorted(first['requests'])})")
    seeds = [s for part in parts for s in part["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed appears in more than one part: {seeds}")
    merged = {**{k: first.get(k) for k in SAME}, "command": "; ".join(part["command"] for part in parts),
              "commands": [part["command"] for part in parts], "seeds": seeds,
              "one_off": [part.get("one_off") for part in parts], "requests": {}}
    for kind in first["requests"]:
        per_seed = [s for part in parts for s in part["requests"][kind]["per_seed"]]
        labels = [sorted(m["label"] for m in s["evaluation"]["models"]) for s in per_seed]
        if any(lab != labels[0] for lab in labels):
            raise ValueError(f"{kind} request: the parts evaluated different models")
        agg = aggregate(per_seed)
        merged["requests"][kind] = {"per_seed": per_seed, "aggregate": agg, "table": summary_table(agg, kind)}
    return merged


def markdown(merged: dict) -> str:
    md = [f"# GAN unlearning benchmark ({merged['dataset']}, {merged['setting']} setting, seeds "
          f"{','.join(map(str, merged['seeds']))}, merged from {len(merged['commands'])} parts)\n"]
    md += [f"`{c}`\n" for c in merged["commands"]]
    for kind, r in merged["requests"].items():
        md += [f"## {kind} request ({r['per_seed'][0]['request']}), mean ± sd over {len(merged['seeds'])} seeds\n",
               r["table"], ""]
    return "\n".join(md)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parts", nargs="+", metavar="RESULTS_JSON")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                   help="rename a cascade variant in every part (recorded in the result), for runs made before a "
                        "default changed: e.g. --rename cascaded=cascaded-item-rates --rename cascaded-equal-lr=cascaded")
    args = p.parse_args()
    try:
        if any("=" not in pair or not all(pair.split("=", 1)) for pair in args.rename):
            raise ValueError("--rename takes OLD=NEW")
        names = dict(pair.split("=", 1) for pair in args.rename)
        parts = [rename(json.loads(Path(f).read_text()), names) for f in args.parts]
        merged = merge(parts)
        if names:
            merged["renamed"] = names
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"error: cannot merge: {e}")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(merged)
    write_results(out, merged, text)
    print(text)


if __name__ == "__main__":
    main()
