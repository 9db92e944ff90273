"""Plain-data summaries of checkpoints, for ``gan-unlearn info`` and for reports."""

from __future__ import annotations

import json


def checkpoint_summary(ckpt: dict) -> dict:
    """Everything in a checkpoint except the weights, plus parameter counts."""
    models = {role: {"spec": entry["spec"],
                     "parameters": int(sum(v.numel() for k, v in entry["state"].items()
                                           if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))))}
              for role, entry in ckpt.get("models", {}).items()}
    keep = ("kind", "dataset", "config", "seed", "metrics", "unlearning", "lineage", "versions", "history")
    return {"format": ckpt.get("format"), "models": models, **{k: ckpt[k] for k in keep if k in ckpt}}


def format_summary(summary: dict) -> str:
    lines = [f"kind: {summary.get('kind')}"]
    for role, m in summary["models"].items():
        spec = ", ".join(f"{k}={v}" for k, v in m["spec"].items() if k != "arch")
        lines.append(f"{role}: {m['spec']['arch']} ({spec}), {m['parameters']:,} parameters")
    d = summary.get("dataset", {})
    if d:
        c, h, w = d["image_shape"]
        lines.append(f"dataset: {d['name']}, {d['size']} images {c}x{h}x{w}, {d['num_classes']} classes, "
                     f"sha256 {d.get('train_hash', '')[:16]}")
    for key in ("config", "metrics"):
        if summary.get(key):
            lines.append(f"{key}: " + ", ".join(f"{k}={v}" for k, v in summary[key].items()))
    if "seed" in summary:
        lines.append(f"seed: {summary['seed']}")
    u = summary.get("unlearning")
    if u:
        lines.append("unlearning: " + json.dumps(u, sort_keys=True))
    for i, record in enumerate(summary.get("lineage", [])):
        lines.append(f"lineage[{i}]: " + ", ".join(f"{k}={v}" for k, v in record.items()))
    v = summary.get("versions")
    if v:
        lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    return "\n".join(lines)
