"""Side-by-side evaluation of GAN checkpoints: one generated sample set per checkpoint feeds every metric.

Each number in the report carries what it is: metric variant, feature extractor (and weights hash),
sample count and seed. The report is JSON; ``markdown_table`` renders its summary.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from gan_unlearn.checkpoint import check_dataset_matches, load_checkpoint, restore_model
from gan_unlearn.data import ImageDataset, load_dataset, to_uint8
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.images import save_grid
from gan_unlearn.neighbours import nearest_neighbours
from gan_unlearn.runtime import batched, progress, resolve_device
from metrics.extractors import EXTRACTORS, ClassifierFeatures
from metrics.fid import reference_statistics
from metrics.forgetting import discriminator_scores
from metrics.frechet import StreamingStats, frechet_distance
from metrics.membership import auc, memorisation

from .downstream import downstream_accuracy


@dataclass
class EvalSettings:
    samples: int = 10000
    seed: int = 0
    extractor: str = "classifier"
    inception_weights: str | None = None
    held_out: int = 1000
    downstream_samples: int = 0
    downstream_epochs: int = 2
    lpips_backbone: str | None = None
    batch_size: int = 500
    grid_size: int = 64
    extra: dict = field(default_factory=dict)


def request_of(checkpoints: list[dict], forget_class: int | None, forget_items: str | None) -> ForgetRequest | None:
    """The forget request to evaluate: given explicitly, or the class recorded by an unlearned checkpoint.
    Item indices are never stored, so item requests must be given (their hash is checked)."""
    recorded = [c["unlearning"]["request"] for c in checkpoints if "unlearning" in c]
    if forget_class is not None or forget_items is not None:
        req = ForgetRequest.from_options(forget_class, forget_items)
        for r in recorded:
            if r["hash"] != req.hash():
                raise UserError(f"the given forget request ({req}) is not the one a checkpoint was unlearned with "
                                f"(hash {r['hash'][:12]}...)")
        return req
    hashes = {r["hash"] for r in recorded}
    if len(hashes) > 1:
        raise UserError("the checkpoints were unlearned with different requests; evaluate them separately")
    if recorded:
        r = recorded[0]
        if r["kind"] == "class":
            return ForgetRequest.for_class(r["class_id"])
        raise UserError("item unlearning records only a hash of the indices: pass --forget-items to evaluate them")
    return None


def _feature_extractor(settings: EvalSettings, oracle, device):
    if settings.extractor not in EXTRACTORS:
        raise UserError(f"unknown extractor {settings.extractor!r}; use one of {', '.join(EXTRACTORS)}")
    if settings.extractor == "classifier":
        return ClassifierFeatures(oracle, device)
    return EXTRACTORS[settings.extractor](settings.inception_weights, device)


def evaluate_checkpoints(paths: list, oracle_path, *, request: ForgetRequest | None = None,
                         forget_class: int | None = None, forget_items: str | None = None,
                         settings: EvalSettings | None = None, data_root=None, download: bool = False, device="auto",
                         out_dir: str | Path | None = None, show_progress: bool = True, log=print) -> dict:
    settings = settings or EvalSettings()
    dev = resolve_device(device)
    t_start = time.perf_counter()
    ckpts = [load_checkpoint(p, kind="gan") for p in paths]
    names = {c["dataset"]["name"] for c in ckpts}
    if len(names) > 1:
        raise UserError(f"the checkpoints come from different datasets ({', '.join(sorted(names))})")
    oracle_ckpt = load_checkpoint(oracle_path, kind="classifier")
    train = load_dataset(ckpts[0]["dataset"]["name"], "train", data_root, download)
    test = load_dataset(ckpts[0]["dataset"]["name"], "test", data_root, download)
    check_dataset_matches(oracle_ckpt, train, what="oracle")
    for c in ckpts:
        check_dataset_matches(c, train)
    oracle = restore_model(oracle_ckpt, "classifier", dev).eval()
    request = request or request_of(ckpts, forget_class, forget_items)
    forget_idx = retained_classes = None
    if request is not None:
        forget_idx, _ = request.split(train.labels, train.num_classes)
        if request.kind == "class":
            retained_classes = [c for c in range(train.num_classes) if c != request.class_id]
    extractor = _feature_extractor(settings, oracle, dev)
    t0 = time.perf_counter()
    reference, cached = reference_statistics(train, extractor, classes=retained_classes)
    ref_seconds = time.perf_counter() - t0
    log(f"FID reference statistics ({extractor.name}, train split"
        f"{', retained classes' if retained_classes else ''}): {'reused from cache' if cached else 'computed and cached'}"
        f" ({ref_seconds:.1f} s)")
    held = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(settings.seed))[:settings.held_out])
    out_dir = Path(out_dir) if out_dir is not None else None
    rows = []
    for path, ckpt in zip(paths, ckpts):
        label = Path(path).stem
        rows.append(_evaluate_one(label, path, ckpt, oracle, extractor, reference, cached, request, forget_idx,
                                  retained_classes, train, test, held, settings, dev, out_dir, show_progress))
    _add_speedups(rows)
    return {"settings": asdict(settings), "device": str(dev), "dataset": ckpts[0]["dataset"]["name"],
            "request": request.describe() if request else None,
            "oracle": {"checkpoint": str(oracle_path), "test_accuracy": oracle_ckpt.get("metrics", {}).get("test_accuracy")},
            "reference": {"extractor": extractor.describe(), "split": "train", "classes": retained_classes,
                          "images": reference.n, "cached": cached, "seconds": round(ref_seconds, 2)},
            "models": rows, "seconds": round(time.perf_counter() - t_start, 2)}


def _evaluate_one(label, path, ckpt, oracle, extractor, reference, cached, request, forget_idx, retained_classes,
                  train: ImageDataset, test: ImageDataset, held: ImageDataset, s: EvalSettings, dev, out_dir,
                  show_progress) -> dict:
    t0 = time.perf_counter()
    G = restore_model(ckpt, "generator", dev).eval()
    D = restore_model(ckpt, "discriminator", dev).eval()
    z = G.sample_latents(s.samples, torch.Generator().manual_seed(s.seed))
    stats = StreamingStats(extractor.dim)
    feats, preds, images = [], [], []
    for i in progress(range(0, s.samples, s.batch_size), desc=f"evaluate {label}", enabled=show_progress):
        with torch.no_grad():
            x = G(z[i:i + s.batch_size].to(dev)).float()
            f = extractor(x)
            stats.update(f)
            preds.append(oracle(x).argmax(1).cpu())
            images.append(x.cpu())
            feats.append(f)
    images, preds = torch.cat(images), torch.cat(preds)
    variant = {"extractor": extractor.name, "weights_sha256": extractor.weights_id[:16], "samples": s.samples,
               "seed": s.seed}
    metrics = {"fid": {"value": frechet_distance(stats.finalize(), reference), **variant,
                       "reference": "train, retained classes" if retained_classes else "train, all classes"}}
    hist = torch.bincount(preds, minlength=oracle.num_classes)
    metrics["class_histogram"] = {"value": hist.tolist(), "samples": s.samples, "seed": s.seed, "labeller": "oracle"}
    if request is not None and request.kind == "class":
        metrics["forget_rate"] = {"value": hist[request.class_id].item() / s.samples, "class_id": request.class_id,
                                  "samples": s.samples, "seed": s.seed, "labeller": "oracle"}
    if request is not None and request.kind == "item":
        metrics.update(_item_metrics(D, train, forget_idx, held, torch.cat(feats), images, extractor, s, dev))
    if s.downstream_samples > 0:
        n = min(s.downstream_samples, s.samples)
        synth = ImageDataset("synthetic", "train", to_uint8(images[:n]), preds[:n], oracle.num_classes)
        acc = downstream_accuracy(synth, test, classes=retained_classes, epochs=s.downstream_epochs, seed=s.seed,
                                  device=dev)
        metrics["downstream_accuracy"] = {"value": acc, "train_samples": n, "labeller": "oracle",
                                          "test": "real test split" + (", retained classes" if retained_classes else ""),
                                          "epochs": s.downstream_epochs, "seed": s.seed}
    if out_dir is not None:
        save_grid(images[: s.grid_size], out_dir / f"{label}_samples.png")
    u = ckpt.get("unlearning")
    return {"label": label, "checkpoint": str(path), "method": u["method"] if u else "original",
            "unlearning_seconds": u["seconds"] if u else None, "metrics": metrics,
            "eval_seconds": round(time.perf_counter() - t0, 2)}


def _item_metrics(D, train, forget_idx, held, gen_feats, gen_images, extractor, s: EvalSettings, dev) -> dict:
    forgotten = train.batch(forget_idx)
    held_images = held.batch(torch.arange(len(held)))
    d_forget = discriminator_scores(D, forgotten, dev)
    d_held = discriminator_scores(D, held_images, dev)
    out = {"d_score": {"forgotten": d_forget.mean().item(), "held_out": d_held.mean().item(),
                       "forgotten_items": len(forgotten), "held_out_images": len(held_images), "variant": "sigmoid(D), eval mode"},
           "membership_auc_d": {"value": auc(d_forget, d_held), "score": "discriminator",
                                "members": "forgotten items", "non_members": "held-out test images"}}
    mem = memorisation(batched(extractor, forgotten, s.batch_size), batched(extractor, held_images, s.batch_size), gen_feats)
    out["memorisation"] = {**mem, "space": f"{extractor.name} features", "samples": s.samples, "seed": s.seed}
    if s.lpips_backbone is not None:
        from metrics.perceptual import LPIPS

        lp = LPIPS("alex", s.lpips_backbone, dev)

        def nearest_lpips(images):
            cand = nearest_neighbours(batched(extractor, images, s.batch_size), gen_feats, k=8)
            d = lp(images.repeat_interleave(8, 0), gen_images[cand.flatten()]).view(len(images), 8)
            return d.min(1).values

        lf, lh = nearest_lpips(forgotten), nearest_lpips(held_images[: len(forgotten)])
        out["memorisation_lpips"] = {"nn_lpips_forgotten": lf.mean().item(), "nn_lpips_held_out": lh.mean().item(),
                                     "nn_auc": auc(-lf, -lh), "candidates": "8 nearest in feature space"}
    return out


def _add_speedups(rows: list[dict]) -> None:
    retrain = [r["unlearning_seconds"] for r in rows if r["method"] == "retrain" and r["unlearning_seconds"]]
    for r in rows:
        if retrain and r["unlearning_seconds"] and r["method"] != "retrain":
            r["speedup_vs_retrain"] = retrain[0] / r["unlearning_seconds"]


def markdown_table(report: dict) -> str:
    """The report's headline numbers, one row per checkpoint."""
    req = report.get("request") or {}
    ext = report["reference"]["extractor"]["extractor"]
    cols = ["model", "method", "time (s)", "speedup", f"FID ({ext})"]
    if req.get("kind") == "class":
        cols.append(f"forget rate (class {req['class_id']})")
    if req.get("kind") == "item":
        cols += ["D score forgotten / held-out", "D membership AUC", "NN AUC"]
    if any("downstream_accuracy" in r["metrics"] for r in report["models"]):
        cols.append("downstream acc")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in report["models"]:
        m = r["metrics"]
        cells = [r["label"], r["method"], f"{r['unlearning_seconds']:.2f}" if r["unlearning_seconds"] else "-",
                 f"{r['speedup_vs_retrain']:.0f}x" if r.get("speedup_vs_retrain") else "-", f"{m['fid']['value']:.2f}"]
        if req.get("kind") == "class":
            cells.append(f"{100 * m['forget_rate']['value']:.2f}%")
        if req.get("kind") == "item":
            cells += [f"{m['d_score']['forgotten']:.3f} / {m['d_score']['held_out']:.3f}",
                      f"{m['membership_auc_d']['value']:.3f}", f"{m['memorisation']['nn_auc']:.3f}"]
        if "downstream_accuracy" in m:
            cells.append(f"{100 * m['downstream_accuracy']['value']:.2f}%")
        lines.append("| " + " | ".join(cells) + " |")
    s = report["settings"]
    lines.append("")
    lines.append(f"{s['samples']} samples per model, seed {s['seed']}; FID against the real training split"
                 f"{' (retained classes)' if req.get('kind') == 'class' else ''}, {ext} features.")
    return "\n".join(lines)
