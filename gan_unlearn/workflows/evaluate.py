"""Side-by-side evaluation of GAN checkpoints: one generated sample set per checkpoint feeds every metric.

The protocol that keeps it honest: samples come from the ``evaluate.latents`` stream (never the latents a
method trained or stopped on), held-out images from the reporting half of the held-out split (never the
stopping half), the forget rate is also read by an independent judge classifier (``judge``) that the
method never saw, and where a retrained model is among the checkpoints every number is also given
against it (FID as a ratio, the rest as differences, and the share of the original-to-retrain gap closed).
Each number carries what it is: variant, extractor, sample count and seed. The report is JSON;
``markdown_table`` renders its summary.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from gan_unlearn.checkpoint import check_dataset_matches, file_sha256, load_checkpoint, restore_model
from gan_unlearn.data import ImageDataset, load_dataset, split_limit, to_uint8
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest
from gan_unlearn.heldout import check_split, held_out_split
from gan_unlearn.streams import generator as stream
from gan_unlearn.images import save_grid
from gan_unlearn.neighbours import nearest_neighbours
from gan_unlearn.runtime import batched, progress, resolve_device
from metrics.extractors import EXTRACTORS, ClassifierFeatures
from metrics.fid import reference_statistics
from metrics.forgetting import BEYOND_POOL, beyond_pool_probes, class_share, discriminator_scores
from metrics.frechet import StreamingStats, frechet_distance
from metrics.membership import auc, memorisation

from .downstream import downstream_accuracy
from .unlearning import resolve_request


@dataclass
class EvalSettings:
    samples: int = 10000
    judge: str | None = None
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


def _feature_extractor(settings: EvalSettings, oracle, device):
    if settings.extractor not in EXTRACTORS:
        raise UserError(f"unknown extractor {settings.extractor!r}; use one of {', '.join(EXTRACTORS)}")
    if settings.extractor == "classifier":
        return ClassifierFeatures(oracle, device)
    return EXTRACTORS[settings.extractor](settings.inception_weights, device)


def load_judge(judge_path, oracle_path, oracle_ckpt: dict, train, device):
    """The independent judge: a classifier the method never saw, trained separately from the oracle."""
    if judge_path is None:
        return None, None
    ckpt = load_checkpoint(judge_path, kind="classifier")
    check_dataset_matches(ckpt, train, what="judge")
    if file_sha256(judge_path) == file_sha256(oracle_path):
        raise UserError("the judge is the oracle itself; train another classifier (another seed and --hidden) "
                        "with train-classifier and pass it as --judge")
    o, j = oracle_ckpt.get("config", {}), ckpt.get("config", {})
    if o.get("seed") == j.get("seed") and o.get("hidden") == j.get("hidden"):
        raise UserError("the judge was trained with the oracle's seed and width; it would share the oracle's "
                        "blind spots: train it with another --seed and --hidden")
    return restore_model(ckpt, "classifier", device).eval(), ckpt


def unseen_training_images(dataset_name: str, data_root, download: bool, count: int):
    """Same-distribution images the GAN never saw, when it trained on the first N of a training set
    (``NAME[:N]``): the memorising setting's strongest non-member reference."""
    base, n = split_limit(dataset_name)
    if n is None:
        return None
    full = load_dataset(base, "train", data_root, download)
    if len(full) <= n:
        return None
    return full.subset(torch.arange(n, min(len(full), n + count)))


def evaluate_checkpoints(paths: list, oracle_path, *, request: ForgetRequest | None = None,
                         forget_class: int | None = None, forget_items: str | None = None,
                         settings: EvalSettings | None = None, data_root=None, download: bool = False, device="auto",
                         out_dir: str | Path | None = None, show_progress: bool = True, log=print,
                         request_secret: bytes | None = None) -> dict:
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
    split = held_out_split(len(test))
    for path, c in zip(paths, ckpts):
        check_split((c.get("unlearning") or {}).get("held_out_split"), split, str(path))
        check_dataset_matches(c, train)
    oracle = restore_model(oracle_ckpt, "classifier", dev).eval()
    judge, judge_ckpt = load_judge(settings.judge, oracle_path, oracle_ckpt, train, dev)
    notes = []
    if request is None:
        records = {str(p): c.get("unlearning") for p, c in zip(paths, ckpts)}
        request, notes = resolve_request(records, forget_class, forget_items, request_secret)
        for note in notes:
            log(f"note: {note}")
    forget_idx = retained_classes = None
    if request is not None:
        forget_idx, _ = request.split(train.labels, train.num_classes)
        if request.kind == "class":
            retained_classes = [c for c in range(train.num_classes) if c != request.class_id]
    extractors = {"oracle": _feature_extractor(settings, oracle, dev)}
    if judge is not None:
        extractors["judge"] = ClassifierFeatures(judge, dev)
    references = {}
    for who, extractor in extractors.items():
        t0 = time.perf_counter()
        references[who] = reference_statistics(train, extractor, classes=retained_classes)
        log(f"FID reference statistics ({who}: {extractor.name}, train split"
            f"{', retained classes' if retained_classes else ''}): "
            f"{'reused from cache' if references[who][1] else 'computed and cached'} ({time.perf_counter() - t0:.1f} s)")
    held = test.subset(split["report"][:settings.held_out])
    unseen = unseen_training_images(ckpts[0]["dataset"]["name"], data_root, download, settings.held_out) \
        if request is not None and request.kind == "item" else None
    out_dir = Path(out_dir) if out_dir is not None else None
    probes, original_sha, beyond_note = beyond_pool(paths, ckpts, request, judge if judge is not None else oracle,
                                                    settings, dev)
    if beyond_note:
        log(f"note: {beyond_note}")
    labels = unique_labels(paths)
    rows = []
    for label, path, ckpt in zip(labels, paths, ckpts):
        rows.append(_evaluate_one(label, path, ckpt, oracle, judge, extractors, references, request, forget_idx,
                                  retained_classes, train, test, held, unseen, settings, dev, out_dir, show_progress))
        if probes is None:
            continue
        source = (ckpt.get("unlearning") or {}).get("source_sha256")
        if file_sha256(path) == original_sha or source == original_sha:
            rows[-1]["metrics"]["forget_rate_beyond_pool"] = _beyond_pool_metric(ckpt, probes, oracle, judge,
                                                                                 request.class_id, dev)
        else:
            log(f"note: {label} is not made from the original evaluated here; no forgetting beyond the pool for it")
    _add_speedups(rows)
    _add_against_retrain(rows)
    return {"settings": asdict(settings), "device": str(dev), "dataset": ckpts[0]["dataset"]["name"],
            "request": request.describe() if request else None, "request_notes": notes,
            "oracle": {"checkpoint": str(oracle_path), "test_accuracy": oracle_ckpt.get("metrics", {}).get("test_accuracy")},
            "judge": None if judge is None else {"checkpoint": str(settings.judge),
                                                 "test_accuracy": judge_ckpt.get("metrics", {}).get("test_accuracy"),
                                                 "hidden": judge_ckpt.get("config", {}).get("hidden"),
                                                 "seed": judge_ckpt.get("config", {}).get("seed")},
            "protocol": {"latents": "stream evaluate.latents", "held_out": f"reporting half of the held-out split "
                         f"({len(split['report'])} test images), first {len(held)}",
                         "unseen_training_images": None if unseen is None else len(unseen)},
            "reference": {who: {"extractor": e.describe(), "split": "train", "classes": retained_classes,
                                "images": references[who][0].n, "cached": references[who][1]}
                          for who, e in extractors.items()},
            "models": rows, "seconds": round(time.perf_counter() - t_start, 2)}


def beyond_pool(paths: list, ckpts: list, request, selector, s: EvalSettings, dev) -> tuple:
    """Probe latents for a class request (``metrics.forgetting.beyond_pool_probes``), placed by the original
    generator, the first evaluated checkpoint without an unlearning record, and chosen by ``selector`` (the
    judge where there is one). Returns (probes, the original's sha256, note); the probes are read only on the
    original and on checkpoints made from it (their record's source sha256)."""
    if request is None or request.kind != "class":
        return None, None, None
    found = next(((p, c) for p, c in zip(paths, ckpts) if not c.get("unlearning")), None)
    if found is None:
        return None, None, ("forgetting beyond the pool is measured only with the original checkpoint among "
                            "those evaluated")
    G0 = restore_model(found[1], "generator", dev).eval()
    probes = beyond_pool_probes(G0, selector, request.class_id, s.samples, s.seed, dev, batch_size=s.batch_size)
    return probes, file_sha256(found[0]), None


def _beyond_pool_metric(ckpt: dict, probes: dict, oracle, judge, class_id: int, dev) -> dict:
    G = restore_model(ckpt, "generator", dev).eval()
    readers = {"oracle": oracle} if judge is None else {"oracle": oracle, "judge": judge}
    return {"value": {probe: {who: class_share(G, r, z, class_id, dev) for who, r in readers.items()}
                      for probe, z in probes.items()},
            "latents": {probe: len(z) for probe, z in probes.items()}, "probes": BEYOND_POOL,
            "chosen_by": "judge" if judge is not None else "oracle", "stream": "evaluate.beyond",
            "class_id": class_id}


def unique_labels(paths: list) -> list[str]:
    """Row labels (and grid names): file stems, widened with parent folders until no two are the same."""
    parts = [Path(p).resolve().with_suffix("").parts for p in paths]
    for depth in range(1, max(len(x) for x in parts) + 1):
        labels = ["_".join(x[-depth:]) for x in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{i}_{Path(p).stem}" for i, p in enumerate(paths)]


def grid_paths(paths: list, out_dir: str | Path) -> list[Path]:
    """The sample grid each checkpoint's row writes into ``out_dir`` (one per row, never shared)."""
    return [Path(out_dir) / f"{label}_samples.png" for label in unique_labels(paths)]


def _evaluate_one(label, path, ckpt, oracle, judge, extractors, references, request, forget_idx, retained_classes,
                  train: ImageDataset, test: ImageDataset, held: ImageDataset, unseen, s: EvalSettings, dev, out_dir,
                  show_progress) -> dict:
    t0 = time.perf_counter()
    G = restore_model(ckpt, "generator", dev).eval()
    D = restore_model(ckpt, "discriminator", dev).eval()
    z = G.sample_latents(s.samples, stream(s.seed, "evaluate.latents"))
    stats = {who: StreamingStats(e.dim) for who, e in extractors.items()}
    feats = {who: [] for who in extractors}
    preds, judged, images = [], [], []
    for i in progress(range(0, s.samples, s.batch_size), desc=f"evaluate {label}", enabled=show_progress):
        with torch.no_grad():
            x = G(z[i:i + s.batch_size].to(dev)).float()
            if not torch.isfinite(x).all():
                raise UserError(f"{path}: the generator produces non-finite images; its weights are broken")
            for who, e in extractors.items():
                f = e(x)
                stats[who].update(f)
                feats[who].append(f)
            preds.append(oracle(x).argmax(1).cpu())
            if judge is not None:
                judged.append(judge(x).argmax(1).cpu())
            images.append(x.cpu())
    images, preds = torch.cat(images), torch.cat(preds)
    variant = {"samples": s.samples, "seed": s.seed, "latents": "evaluate.latents"}
    reference = "train, retained classes" if retained_classes else "train, all classes"
    metrics = {}
    for who, e in extractors.items():
        key = "fid" if who == "oracle" else f"fid_{who}"
        metrics[key] = {"value": frechet_distance(stats[who].finalize(), references[who][0]), "extractor": e.name,
                        "features_of": who, "weights_sha256": e.weights_id[:16], "reference": reference, **variant}
    readers = {"oracle": preds} if judge is None else {"oracle": preds, "judge": torch.cat(judged)}
    for who, p in readers.items():
        hist = torch.bincount(p, minlength=oracle.num_classes)
        suffix = "" if who == "oracle" else f"_{who}"
        metrics["class_histogram" + suffix] = {"value": hist.tolist(), "labeller": who, **variant}
        if request is not None and request.kind == "class":
            metrics["forget_rate" + suffix] = {"value": hist[request.class_id].item() / s.samples,
                                               "class_id": request.class_id, "labeller": who, **variant}
    if request is not None and request.kind == "item":
        gen_feats = {f"{who} features": torch.cat(f) for who, f in feats.items()}
        metrics.update(_item_metrics(D, train, forget_idx, held, unseen, gen_feats, images, extractors, s, dev))
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


def _item_metrics(D, train, forget_idx, held, unseen, gen_feats, gen_images, extractors, s: EvalSettings,
                  dev) -> dict:
    forgotten = train.batch(forget_idx)
    held_images = held.batch(torch.arange(len(held)))
    d_forget = discriminator_scores(D, forgotten, dev)
    d_held = discriminator_scores(D, held_images, dev)
    d_gen = discriminator_scores(D, gen_images[: len(held_images)], dev)
    a = auc(d_forget, d_held)
    out = {"d_score": {"forgotten": d_forget.mean().item(), "held_out": d_held.mean().item(),
                       "forgotten_items": len(forgotten), "held_out_images": len(held_images),
                       "variant": "sigmoid(D), eval mode, held-out = reporting half of the split"},
           "d_accuracy": {"held_out_real": (d_held > 0.5).float().mean().item(),
                          "generated": (d_gen < 0.5).float().mean().item(),
                          "note": "share of held-out real images D calls real, and of generated images it calls "
                                  "fake: a D that rejects everything shows here (collapse detector); an item "
                                  "unlearning run hands D back with its logits shifted to the original's median "
                                  "on retained images (calibrate_d), so a shift of all logits alone does not"},
           "membership_auc_d": {"value": a, "distance_from_chance": abs(a - 0.5), "score": "discriminator",
                                "members": "forgotten items", "non_members": "held-out test images (reporting half)"}}
    spaces = {"pixels": lambda x: x.flatten(1)}
    spaces.update({f"{who} features": e for who, e in extractors.items()})
    out["memorisation"] = {}
    for space, fn in spaces.items():
        gen = gen_feats[space] if space in gen_feats else batched(fn, gen_images, s.batch_size)
        items = batched(fn, forgotten, s.batch_size)
        entry = {"against_test": memorisation(items, batched(fn, held_images, s.batch_size), gen)}
        if unseen is not None:
            entry["against_unseen_train"] = memorisation(items, batched(fn, unseen.batch(torch.arange(len(unseen))),
                                                                        s.batch_size), gen)
        out["memorisation"][space] = entry
    out["memorisation"]["samples"], out["memorisation"]["seed"] = s.samples, s.seed
    if s.lpips_backbone is not None:
        from metrics.perceptual import LPIPS

        lp = LPIPS("alex", s.lpips_backbone, dev)
        extractor = extractors["oracle"]

        def nearest_lpips(images):
            cand = nearest_neighbours(batched(extractor, images, s.batch_size), gen_feats["oracle features"], k=8)
            d = lp(images.repeat_interleave(8, 0), gen_images[cand.flatten()]).view(len(images), 8)
            return d.min(1).values

        lf, lh = nearest_lpips(forgotten), nearest_lpips(held_images[: len(forgotten)])
        out["memorisation_lpips"] = {"nn_lpips_forgotten": lf.mean().item(), "nn_lpips_held_out": lh.mean().item(),
                                     "nn_auc": auc(-lf, -lh), "candidates": "8 nearest in feature space"}
    return out


def headline(metrics: dict) -> dict:
    """The numbers every comparison uses, flat: FIDs, forget rates, membership distance, NN AUCs."""
    out = {k: metrics[k]["value"] for k in ("fid", "fid_judge", "forget_rate", "forget_rate_judge") if k in metrics}
    for probe, by_reader in metrics.get("forget_rate_beyond_pool", {}).get("value", {}).items():
        for who, share in by_reader.items():
            if share is not None:
                out[f"beyond_pool {probe} ({who})"] = share
    if "membership_auc_d" in metrics:
        out["membership_distance"] = metrics["membership_auc_d"]["distance_from_chance"]
        out["d_real_accuracy"] = metrics["d_accuracy"]["held_out_real"]
        for space, entry in metrics["memorisation"].items():
            if isinstance(entry, dict):
                for against, m in entry.items():
                    out[f"nn_auc {space} vs {against.split('_', 1)[1]}"] = m["nn_auc"]
    return out


def _add_against_retrain(rows: list[dict]) -> None:
    """Retraining is the yardstick: FID as a ratio to retrain's, everything else as a difference, and the
    share of the original-to-retrain gap each model closed (1 = at retrain's value)."""
    retrain = next((r for r in rows if r["method"] == "retrain"), None)
    original = next((r for r in rows if r["method"] == "original"), None)
    if retrain is None:
        return
    ref = headline(retrain["metrics"])
    start = headline(original["metrics"]) if original is not None else {}
    for r in rows:
        if r is retrain:
            continue
        mine, cmp = headline(r["metrics"]), {}
        for k, v in mine.items():
            if k not in ref:
                continue
            cmp[k] = {"value": v, "retrain": ref[k]}
            cmp[k]["ratio" if k.startswith("fid") else "difference"] = v / ref[k] if k.startswith("fid") else v - ref[k]
            # only where the original is measurably away from retrain (5% of retrain's value, and 0.01 absolute):
            # a tiny gap turns noise into "gap closed" values like 12 or -60
            if k in start and r is not original and abs(start[k] - ref[k]) > max(0.05 * abs(ref[k]), 0.01):
                cmp[k]["gap_closed"] = (start[k] - v) / (start[k] - ref[k])
        r["against_retrain"] = cmp


def _add_speedups(rows: list[dict]) -> None:
    retrain = [r["unlearning_seconds"] for r in rows if r["method"] == "retrain" and r["unlearning_seconds"]]
    for r in rows:
        if retrain and r["unlearning_seconds"] and r["method"] != "retrain":
            r["speedup_vs_retrain"] = retrain[0] / r["unlearning_seconds"]


def markdown_table(report: dict) -> str:
    """The report's headline numbers, one row per checkpoint, each beside retrain's where there is one."""
    req = report.get("request") or {}
    judge = report.get("judge") is not None
    ext = report["reference"]["oracle"]["extractor"]["extractor"]
    cols = ["model", "method", "time (s)", "speedup", f"FID ({ext})"]
    if judge:
        cols.append("FID (judge)")
    if any("against_retrain" in r for r in report["models"]):
        cols.append("FID / retrain's")
    if req.get("kind") == "class":
        cols += [f"forget rate, oracle (class {req['class_id']})"] + (["forget rate, judge"] if judge else [])
    beyond = req.get("kind") == "class" and any("forget_rate_beyond_pool" in r["metrics"] for r in report["models"])
    if beyond:
        cols.append(f"beyond the pool ({'judge' if judge else 'oracle'}): interpolated / 1.5x norm")
    if req.get("kind") == "item":
        cols += ["D score forgotten / held-out", "D AUC, distance from 0.5", "D acc. held-out real / generated",
                 "NN AUC (pixels, vs test)"]
    if any("downstream_accuracy" in r["metrics"] for r in report["models"]):
        cols.append("downstream acc")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in report["models"]:
        m = r["metrics"]
        cells = [r["label"], r["method"], f"{r['unlearning_seconds']:.2f}" if r["unlearning_seconds"] else "-",
                 f"{r['speedup_vs_retrain']:.0f}x" if r.get("speedup_vs_retrain") else "-", f"{m['fid']['value']:.2f}"]
        if judge:
            cells.append(f"{m['fid_judge']['value']:.2f}")
        if "FID / retrain's" in cols:
            cells.append(f"{r['against_retrain']['fid']['ratio']:.2f}" if "against_retrain" in r else "1.00")
        if req.get("kind") == "class":
            cells.append(f"{100 * m['forget_rate']['value']:.2f}%")
            if judge:
                cells.append(f"{100 * m['forget_rate_judge']['value']:.2f}%")
        if beyond:
            who, shares = "judge" if judge else "oracle", m.get("forget_rate_beyond_pool", {}).get("value", {})
            cells.append(" / ".join("-" if shares.get(p, {}).get(who) is None else f"{100 * shares[p][who]:.2f}%"
                                    for p in ("interpolated", "scaled")))
        if req.get("kind") == "item":
            acc = m["d_accuracy"]
            cells += [f"{m['d_score']['forgotten']:.3f} / {m['d_score']['held_out']:.3f}",
                      f"{m['membership_auc_d']['distance_from_chance']:.3f}",
                      f"{100 * acc['held_out_real']:.0f}% / {100 * acc['generated']:.0f}%",
                      f"{m['memorisation']['pixels']['against_test']['nn_auc']:.3f}"]
        if "downstream_accuracy" in m:
            cells.append(f"{100 * m['downstream_accuracy']['value']:.2f}%")
        lines.append("| " + " | ".join(cells) + " |")
    s = report["settings"]
    lines.append("")
    lines.append(f"{s['samples']} samples per model from the evaluate.latents stream, seed {s['seed']}; FID against "
                 f"the real training split{' (retained classes)' if req.get('kind') == 'class' else ''}, {ext} "
                 f"features{' and the judge' + chr(39) + 's' if judge else ''}; held-out images: reporting half of "
                 "the split.")
    return "\n".join(lines)
