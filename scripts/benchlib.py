"""Shared steps of the benchmark scripts: oracle and original GAN (trained or reused), one request run
(cascaded variants, fine-tuning, retraining) and its side-by-side evaluation."""

from __future__ import annotations

import json
from dataclasses import asdict
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from gan_unlearn.checkpoint import atomic_write, file_sha256, load_checkpoint
from gan_unlearn.data import load_dataset
from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest, read_secret
from gan_unlearn.runtime import device_description
from gan_unlearn.workflows.provenance import code_sha256
from gan_unlearn.workflows.evaluate import EvalSettings, evaluate_checkpoints, markdown_table
from gan_unlearn.workflows.unlearning import retrain_checkpoint, unlearn_checkpoint
from trainers.classifier import ClassifierConfig, train_classifier
from trainers.gan import GANConfig, train_gan
from trainers.unlearning import UnlearnConfig


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def code_version() -> str | None:
    """The commit the benchmark ran at ("+changes" when the tree differs from it), or None outside a git
    checkout: a result file then says which code made it."""
    repo = Path(__file__).resolve().parent.parent
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True, timeout=10)  # noqa: E731
        commit = run("rev-parse", "--short", "HEAD")
        if commit.returncode != 0:
            return None
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return commit.stdout.strip() + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine(device: str = "cpu") -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor(), "threads": torch.get_num_threads(),
            "torch": str(torch.__version__), "device": device, "code": code_version()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def ensure_oracle(dataset: str, data_root, path: Path, epochs: int, seed: int, fresh: bool, quiet: bool,
                  device: str = "cpu", hidden: int = 512, strict: bool = True) -> dict:
    """Train the oracle into ``path`` unless it exists; returns {"path", "seconds" (None if reused)}. An existing
    one is reused only if it was trained with the same epochs, seed and width: a folder made with other oracle
    epochs (the CIFAR-10 default went from 2 to 15) stops with a clear error instead of judging with the old one
    (``strict=False``: any existing one, for a timing that only needs some oracle)."""
    if path.exists() and not fresh:
        ckpt = load_checkpoint(path)
        made = {k: ckpt.get("config", {}).get(k) for k in ("epochs", "seed", "hidden")}
        asked = {"epochs": epochs, "seed": seed, "hidden": hidden}
        if strict and made != asked:
            sys.exit(f"error: {path} was trained with {made}, this run asks for {asked}: pass the same "
                     "--oracle-epochs, use another --out-dir, or --fresh")
        log(f"oracle: reusing {path}")
        return {"path": path, "seconds": None, "reused": True,
                "test_accuracy": ckpt.get("metrics", {}).get("test_accuracy")}
    log(f"oracle: training {epochs} epoch(s) on {dataset}")
    train, test = load_dataset(dataset, "train", data_root), load_dataset(dataset, "test", data_root)
    ckpt = train_classifier(train, ClassifierConfig(epochs=epochs, seed=seed, hidden=hidden), torch.device(device), path,
                            test_set=test, show_progress=not quiet)
    return {"path": path, "seconds": ckpt["metrics"]["train_seconds"], "reused": False,
            "test_accuracy": ckpt["metrics"]["test_accuracy"]}


def ensure_gan(dataset: str, data_root, path: Path, epochs: int, seed: int, fresh: bool, quiet: bool,
               device: str = "cpu") -> dict:
    if path.exists() and not fresh:
        log(f"original GAN: reusing {path}")
        return {"path": path, "seconds": None, "reused": True}
    log(f"original GAN: training {epochs} epoch(s) on {dataset}")
    train = load_dataset(dataset, "train", data_root)
    ckpt = train_gan(train, GANConfig(epochs=epochs, seed=seed), torch.device(device), path, resume=True,
                     show_progress=not quiet, samples_path=path.with_name(path.stem + "_samples.png"))
    return {"path": path, "seconds": ckpt["metrics"]["train_seconds"], "reused": False}


def unlearning_record(candidate: Path, gan_sha256: str, request: ForgetRequest, method: str, device: str,
                      config: UnlearnConfig | None = None, oracle_sha256: str | None = None) -> dict | None:
    """The unlearning record of ``candidate`` if it was made by ``method`` from exactly this original checkpoint
    for exactly this request (a class id alone names different data in MNIST and CIFAR-10), on the same hardware
    (its seconds are compared with this run's), else None. Where ``config`` is given (the unlearning methods,
    not retraining), also with exactly its parameters, by the same code and with the same oracle, which picks
    the forgotten latents and decides when to stop. An item record is checked with the request secret the
    run wrote beside itself (CANDIDATE.secret)."""
    if not candidate.exists():
        return None
    u = load_checkpoint(candidate, kind="gan").get("unlearning") or {}
    if u.get("method") != method or u.get("source_sha256") != gan_sha256:
        return None
    if u.get("device") != device_description(device):
        return None
    if config is not None and (u.get("parameters") != asdict(config) or u.get("code_sha256") != code_sha256()
                               or u.get("oracle_sha256") != oracle_sha256):
        return None
    secret_file = candidate.with_name(candidate.name + ".secret")
    secret = read_secret(secret_file) if secret_file.exists() else None
    try:
        return u if request.verify(u.get("request", {}), secret) else None
    except UserError:
        return None


def reused(path: Path, u: dict) -> dict:
    """What a run reused from an earlier benchmark says of itself: the record's account of the run (not its
    per-check history, which only the run's own summary holds)."""
    keep = ("method", "seconds", "rounds", "stopping_reason", "forgotten", "seconds_by_phase", "backoffs",
            "restored_healthy_state", "drift_limit", "guard_spread", "device", "runtime", "finish", "generator_gate")
    return {**{k: u[k] for k in keep if k in u}, "reused_from": str(path), "made": u["time"]}


def run_request(out: Path, name: str, request: ForgetRequest, gan: Path, oracle: Path, data_root, *,
                variants: dict, settings: EvalSettings, seed: int = 0, fresh: bool = False, quiet: bool = False,
                reuse_retrain_from: Path | None = None, device: str = "cpu") -> dict:
    """Cascaded unlearning (each variant), fine-tuning and retraining for one request, then one evaluation.

    A checkpoint already in ``out`` that the same method made from the same original for the same request on the
    same hardware (for the unlearning methods also with the same parameters, code and oracle; for retraining,
    also one in ``reuse_retrain_from``) is reused unless ``fresh``: a resumed benchmark. The result says so,
    with the time it recorded when it was made.
    """
    runs, paths = {}, [gan]
    gan_sha256, oracle_sha256 = file_sha256(gan), file_sha256(oracle)
    methods = [(variant, "cascaded", UnlearnConfig.of(seed=seed, **overrides)) for variant, overrides in variants.items()]
    for variant, method, config in methods + [("finetune", "finetune", UnlearnConfig.of(seed=seed))]:
        path = out / f"{name}_{variant}.pt"
        u = None if fresh else unlearning_record(path, gan_sha256, request, method, device, config, oracle_sha256)
        if u is not None:  # the same method, parameters, original and request: a resumed benchmark
            log(f"{name}: reusing {variant} {path} (made {u['time']}, {u['seconds']:.0f} s)")
            runs[variant] = reused(path, u)
        else:
            log(f"{name}: {variant}")
            runs[variant] = unlearn_checkpoint(gan, request, path, oracle_path=oracle, method=method, config=config,
                                               data_root=data_root, device=device, show_progress=not quiet)
        paths.append(path)
    path = out / f"{name}_retrain.pt"
    candidates = [path] + ([reuse_retrain_from / path.name] if reuse_retrain_from else [])
    found = None if fresh else next(((c, u) for c in candidates
                                     if (u := unlearning_record(c, gan_sha256, request, "retrain", device))), None)
    if found is not None:
        existing, u = found
        log(f"{name}: reusing retrained model {existing} (made {u['time']}, {u['seconds']:.0f} s)")
        runs["retrain"] = reused(existing, u)
        path = existing
    else:
        log(f"{name}: retraining from scratch with the original recipe")
        runs["retrain"] = retrain_checkpoint(gan, request, path, data_root=data_root, device=device,
                                             show_progress=not quiet, resume=True)
    paths.append(path)
    log(f"{name}: evaluating {len(paths)} models")
    (out / f"{name}_grids").mkdir(exist_ok=True)
    report = evaluate_checkpoints(paths, oracle, request=request, settings=settings, data_root=data_root,
                                  device=device, out_dir=out / f"{name}_grids", show_progress=not quiet, log=log)
    return {"request": request.describe(), "runs": runs, "evaluation": report, "table": markdown_table(report)}


def random_items(gan: Path, data_root, count: int, seed: int) -> list[int]:
    n = load_checkpoint(gan, kind="gan")["dataset"]["size"]
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count].tolist()


def mean_sd(values: list) -> dict:
    """Mean and sample sd over seeds (None values left out), with the values."""
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def write_json(path: str | Path, result: dict) -> None:
    """A benchmark's JSON result, written atomically (its folder made if needed)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(json.dumps(result, indent=2, default=str).encode()))


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table: what every benchmark prints and the README shows."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def write_results(out: Path, results: dict, markdown: str) -> None:
    write_json(out / "results.json", results)
    atomic_write(out / "results.md", lambda f: f.write(markdown.encode()))
