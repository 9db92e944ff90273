"""The quality and speed targets of GAN unlearning (issue 14), read off bench_gan_unlearning results.

Each target is a set of criteria on one request of one setting: MNIST class (full setting), MNIST items
(memorising setting, per request size), CIFAR-10 class and items, and the forget rate beyond the pool (reported
beside retrain's, no threshold). A criterion reads the mean over seeds of one number of the default method
(``cascaded``) and of every variant, and says whether it meets the threshold; retrain's own value stands
beside it. Run ``scripts/bench_targets.py`` to measure them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench_gan_unlearning import same_as_default
from benchlib import mean_sd


Stat = dict  # {"mean": float, "sd": float} over seeds, as bench_gan_unlearning's aggregate holds it


@dataclass(frozen=True)
class Criterion:
    label: str  # what is measured, as the table shows it
    read: Callable[[dict, dict], Stat | None]  # (model's aggregate, all models' aggregates) -> mean and sd
    threshold: float | None  # None: reported only
    at_most: bool = True  # the mean must be <= threshold (else >=)
    retrain: Callable[[dict], Stat | None] | None = None  # retrain's own value of the underlying number
    scale: float = 1.0  # for display (100: percent or points)
    digits: int = 2
    forgetting: bool = False  # says whether content was forgotten: the original meeting it too means the setting
    # cannot show forgetting (a weak oracle or judge, a GAN that never learnt the class or items)

    def met(self, stat: Stat | None) -> bool | None:
        if self.threshold is None or not stat or stat.get("mean") is None:
            return None
        return stat["mean"] <= self.threshold if self.at_most else stat["mean"] >= self.threshold


def _stat(stat: dict | None) -> Stat | None:
    return None if not stat or stat.get("mean") is None else {"mean": stat["mean"], "sd": stat.get("sd") or 0.0}


def _vs(key: str, field: str):
    """The per-seed comparison with retrain (ratio or difference), mean and sd over seeds."""
    return lambda e, agg: _stat(e.get("against_retrain", {}).get(key, {}).get(field))


def _per_seed_distance(values: list | None) -> Stat | None:
    """Mean and sd of |per-seed difference|: seeds off by +0.1 and -0.1 are 0.1 away, not 0."""
    return None if not values else mean_sd([abs(v) for v in values])


def _abs_vs(key: str):
    """How far from retrain's value, seed by seed, either way."""
    return lambda e, agg: _per_seed_distance(e.get("against_retrain", {}).get(key, {}).get("difference", {})
                                             .get("values"))


def _own(key: str):
    return lambda e, agg=None: _stat(e.get(key))


def _d_accuracy_change(e: dict, agg: dict) -> Stat | None:
    """How far D's accuracy on held-out real images moved from the original's, seed by seed, either way."""
    a = e.get("d_real_accuracy", {}).get("values")
    b = agg.get("original", {}).get("d_real_accuracy", {}).get("values")
    if not a or not b or len(a) != len(b):
        return None
    return _per_seed_distance([x - y for x, y in zip(a, b)])


def class_criteria(max_points: float, max_fid_ratio: float, min_speedup: float) -> list[Criterion]:
    return [
        Criterion("forget rate (judge) − retrain's, points", _vs("forget_rate_judge", "difference"), max_points / 100,
                  retrain=_own("forget_rate_judge"), scale=100, forgetting=True),
        Criterion("FID (oracle) / retrain's", _vs("fid", "ratio"), max_fid_ratio, retrain=_own("fid")),
        Criterion("FID (judge) / retrain's", _vs("fid_judge", "ratio"), max_fid_ratio, retrain=_own("fid_judge")),
        Criterion("speedup over retraining (retrain: seconds)", _own("speedup"), min_speedup, at_most=False,
                  retrain=_own("seconds"), digits=0),
    ]


def item_criteria(max_fid_ratio: float = 1.10, min_speedup: float = 284) -> list[Criterion]:
    return [
        Criterion("NN AUC (pixels vs test), distance from retrain's", _abs_vs("nn_auc pixels vs test"), 0.05,
                  retrain=_own("nn_auc pixels vs test"), digits=3, forgetting=True),
        Criterion("NN AUC (judge features vs test), distance from retrain's", _abs_vs("nn_auc judge features vs test"),
                  0.05, retrain=_own("nn_auc judge features vs test"), digits=3, forgetting=True),
        Criterion("D membership AUC's distance from 0.5, distance from retrain's", _abs_vs("membership_distance"),
                  0.05, retrain=_own("membership_distance"), digits=3, forgetting=True),
        Criterion("D acc. on held-out real, change from the original's, points", _d_accuracy_change, 0.10,
                  retrain=_own("d_real_accuracy"), scale=100, digits=1),
        Criterion("FID (oracle) / retrain's", _vs("fid", "ratio"), max_fid_ratio, retrain=_own("fid")),
        Criterion("FID (judge) / retrain's", _vs("fid_judge", "ratio"), max_fid_ratio, retrain=_own("fid_judge")),
        Criterion("speedup over retraining (retrain: seconds)", _own("speedup"), min_speedup, at_most=False,
                  retrain=_own("seconds"), digits=0),
    ]


BEYOND = [Criterion(f"share of the class beyond the pool, {probe} (judge), %", _own(key), None, retrain=_own(key),
                    scale=100)
          for probe, key in (("interpolated", "beyond_pool interpolated (judge)"),
                             ("scaled", "beyond_pool scaled (judge)"))]




def is_cifar(dataset: str) -> bool:
    return "cifar" in dataset.lower()


def targets_of(result: dict) -> list[tuple[str, str, list[Criterion]]]:
    """(target, request kind, criteria) that one bench_gan_unlearning result measures."""
    out, cifar = [], is_cifar(result["dataset"])
    for kind, req in result["requests"].items():
        if kind == "class":
            name = "3. CIFAR-10 class" if cifar else "1. MNIST class"
            out.append((name, kind, class_criteria(1.0 if cifar else 0.5, 1.25 if cifar else 1.15, 185)))
            out.append(("4. beyond the pool" + (" (CIFAR-10)" if cifar else " (MNIST)"), kind, BEYOND))
        else:
            n = req["per_seed"][0]["request"].get("num_items")
            where = "" if result["setting"] == "memorising" else ", full setting (no memorisation to undo)"
            out.append((f"{'3. CIFAR-10' if cifar else '2. MNIST'} items, {n}{where}", kind, item_criteria()))
    return out


def evaluate(result: dict, source: str = "") -> list[dict]:
    """One row per criterion: the default method's mean and sd, the best variant's, retrain's own value and
    whether the default meets the threshold; for a forgetting criterion also the original's reading, since an
    original that meets it too leaves the default's "met" without meaning."""
    rows = []
    for target, kind, criteria in targets_of(result):
        agg = result["requests"][kind]["aggregate"]
        for c in criteria:
            stats = {m: c.read(agg[m], agg) for m in agg if m.startswith("cascaded") and
                     m not in same_as_default(kind)}
            default = stats.pop("cascaded", None)
            original = c.read(agg["original"], agg) if c.forgetting and "original" in agg else None
            rows.append({"target": target, "criterion": c.label, "threshold": c.threshold, "at_most": c.at_most,
                         "scale": c.scale, "digits": c.digits, "cascaded": default, "met": c.met(default),
                         "original": original, "original_met": c.met(original),
                         "best_variant": _best(c, stats), "retrain": c.retrain(agg["retrain"]) if c.retrain else None,
                         "seeds": len(result["seeds"]), "recipe_epochs": result["recipe_epochs"],
                         "dataset": result["dataset"], "setting": result["setting"], "source": source,
                         "device": "cuda" if result["machine"].get("gpu") else "cpu"})
    return rows


def _best(c: Criterion, stats: dict) -> dict | None:
    """The variant whose mean lies furthest on the good side (None without variants)."""
    stats = {m: s for m, s in stats.items() if s is not None}
    if not stats:
        return None
    pick = (min if c.at_most else max)(stats, key=lambda m: stats[m]["mean"])
    return {"variant": pick, **stats[pick], "met": c.met(stats[pick])}


def fmt(stat: Stat | None, scale: float, digits: int, sd: bool = True) -> str:
    if not stat:
        return "-"
    text = f"{scale * stat['mean']:.{digits}f}"
    return text + (f" ± {scale * stat['sd']:.{digits}f}" if sd and stat.get("sd") is not None else "")


def table(rows: list[dict]) -> str:
    """Markdown: each criterion's target beside the default's mean ± sd, the best variant's and retrain's."""
    header = ["target", "setting", "criterion", "target value", "cascaded (default), mean ± sd", "best variant",
              "original (forgetting criteria)", "retrain's own value", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        s, d = r["scale"], r["digits"]
        goal = "reported" if r["threshold"] is None else \
            f"{'≤' if r['at_most'] else '≥'} {fmt({'mean': r['threshold']}, s, d, sd=False)}"
        best = "-" if not r["best_variant"] else f"{fmt(r['best_variant'], s, d)} ({r['best_variant']['variant']})"
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        if r["met"] and r.get("original_met"):
            met = "not shown: the original meets it too"
        seeds = f"{r['seeds']} seed{'s' if r['seeds'] > 1 else ''}"
        setting = f"{r['dataset']} {r['setting']}, {r['recipe_epochs']} epochs, {seeds}, {r['device']}" + \
            (f" (`{r['source']}`)" if r.get("source") else "")
        lines.append(f"| {r['target']} | {setting} | {r['criterion']} | {goal} | {fmt(r['cascaded'], s, d)} | {best} "
                     f"| {fmt(r.get('original'), s, d)} | {fmt(r['retrain'], s, d)} | {met} |")
    return "\n".join(lines)
