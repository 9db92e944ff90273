"""A resumable epoch loop shared by the GAN and classifier trainers.

Subclasses build their networks and override a few hooks (``networks``, ``train_step``, ``training_state``,
``load_training_state``, optionally ``end_of_epoch``, ``before_final`` and ``extra_metrics``); the loop owns
the epoch order, the resume file, interrupts, progress, the run-time choices (precision, data parallelism)
and the final checkpoint. The data order of epoch ``e`` is a permutation seeded by ``(seed, e)``, so a run
resumed at any step sees exactly the batches an uninterrupted run would have seen.

Under ``torchrun --nproc_per_node N`` every process runs this loop on its slice of each global batch
(``self.shard``); networks from ``self.parallel(...)`` average their gradients across processes, and only
rank 0 shows progress and writes the resume file and the checkpoint.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from gan_unlearn import distributed, runtime
from gan_unlearn.checkpoint import dataset_record, load_checkpoint, model_entry, package_versions, save_checkpoint
from gan_unlearn.data import ImageDataset, to_float
from gan_unlearn.errors import UserError
from gan_unlearn.runtime import progress, resolve_device, resolve_precision, rng_state, seed_everything, set_rng_state


class TrainingInterrupted(UserError):
    """Training stopped early (Ctrl-C or a step limit); the resume file holds where it was."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """A scheduler's SIGTERM saves a resume file like Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(num_items, generator=torch.Generator().manual_seed(seed * 100003 + epoch))


def steps_per_epoch(num_items: int, batch_size: int) -> int:
    """Full batches only (BatchNorm dislikes a tiny last batch), but at least one."""
    return max(1, num_items // batch_size)


def resume_path(out: str | Path) -> Path:
    return Path(str(out) + ".resume")


# Loss values are read back (``.item()``, a device sync on GPUs) only this often, and at epoch ends.
PROGRESS_EVERY = 25


class ResumableTrainer:
    """The loop; ``config`` is a dataclass with at least ``epochs``, ``batch_size``, ``seed`` and ``precision``."""

    kind = "model"
    event = "train"  # the lineage entry of the final checkpoint

    def __init__(self, dataset: ImageDataset, config, device, out: str | Path, *, checkpoint_every: int = 500,
                 show_progress: bool = True, provenance: dict | None = None):
        if config.epochs < 1:
            raise UserError(f"epochs must be at least 1, got {config.epochs}")
        if config.batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {config.batch_size}")
        self.dataset, self.config = dataset, config
        self.num_items, self.batch_size, self.epochs, self.seed = len(dataset), config.batch_size, config.epochs, config.seed
        self.session = distributed.start(resolve_device(device))
        try:
            self.shard = self.session.shard(config.batch_size)
        except UserError:
            self.session.close()
            raise
        self.device = self.session.device
        # every process trains at rank 0's precision: auto may measure, and measurements can differ by process
        self.precision, self.precision_reason = distributed.all_gather_object(
            resolve_precision(config.precision, self.device), self.session)[0]
        self.out = Path(out)
        self.checkpoint_every = checkpoint_every
        self.show_progress = show_progress and self.session.is_main
        self.provenance = provenance or {}
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.elapsed = 0.0
        self.epoch_log: list[dict] = []
        self._sums: dict[str, torch.Tensor | float] = {}
        # the whole training set on the device once (uint8: 47 MB for MNIST), batches indexed there
        self.images = dataset.images.to(self.device)
        self.labels = dataset.labels.to(self.device)
        seed_everything(config.seed)  # the same initial weights in every process

    # --- hooks -------------------------------------------------------------------------------------
    def networks(self) -> dict[str, torch.nn.Module]:
        """The trained networks by checkpoint role (plain modules, not their data-parallel wrappers)."""
        raise NotImplementedError

    def train_step(self, indices: torch.Tensor) -> dict:
        """One update on the global batch ``indices`` (this process trains on ``indices[self.shard]``);
        returns the losses as 0-dim tensors or floats."""
        raise NotImplementedError

    def training_state(self) -> dict:
        raise NotImplementedError

    def load_training_state(self, state: dict) -> None:
        raise NotImplementedError

    def end_of_epoch(self, epoch: int, means: dict) -> dict:
        """Return extra numbers to log for this epoch (for example test accuracy)."""
        return {}

    def before_final(self) -> None:
        """Last changes to the networks before they are saved (runs in every process, without syncing)."""

    def extra_metrics(self) -> dict:
        return {}

    # --- shared parts ------------------------------------------------------------------------------
    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the global batch ``indices``: images in [-1, 1] and labels, on the device."""
        idx = indices[self.shard].to(self.device)
        return to_float(self.images[idx]), self.labels[idx]

    def parallel(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` for one process; under torchrun a DistributedDataParallel wrapper (BatchNorm synced)."""
        return distributed.wrap(module, self.session)

    def config_record(self) -> dict:
        """Everything that must match for a resume to continue the same run (precision as resolved)."""
        return {**asdict(self.config), "precision": self.precision, "dataset_hash": self.dataset.content_hash()[:16]}

    def runtime_record(self) -> dict:
        """How this machine ran the recipe: the precision ``auto`` chose and why, processes, threads, CPU."""
        record = {"precision": self.precision, "precision_requested": self.config.precision,
                  "precision_reason": self.precision_reason, "device": str(self.device),
                  "processes": self.session.world_size, "threads": torch.get_num_threads()}
        if self.device.type == "cpu":
            caps = runtime.cpu_capabilities()
            record["cpu"] = {k: v for k, v in caps.items() if v is not False}
        else:
            record["gpu"] = torch.cuda.get_device_name(self.device)
        return record

    def final_checkpoint(self) -> dict:
        self.before_final()
        return {
            "kind": self.kind,
            "models": {role: model_entry(m) for role, m in self.networks().items()},
            "dataset": dataset_record(self.dataset),
            "config": asdict(self.config),
            "runtime": self.runtime_record(),
            "seed": self.config.seed,
            "versions": package_versions(),
            "metrics": {"steps": self.global_step,
                        "images_per_second": round(self.global_step * self.batch_size / max(self.elapsed, 1e-9), 1),
                        **self.extra_metrics()},
            "history": self.epoch_log,
            "lineage": [{"event": self.event, **self.provenance, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}],
        }

    # --- the loop ----------------------------------------------------------------------------------
    def _save_resume(self, gather: bool = True) -> None:
        """Rank 0 writes the resume file. ``gather`` (every process at the same step) also collects each
        process's RNG state; after an interrupt only rank 0's is at hand."""
        rngs = distributed.all_gather_object(rng_state(), self.session) if gather else None
        if not self.session.is_main:
            return
        save_checkpoint(resume_path(self.out), {
            "kind": f"{self.kind}-resume", "config": self.config_record(),
            "resume": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                       "elapsed": self.elapsed, "epoch_log": self.epoch_log, "rng": rng_state(),
                       "rng_by_rank": rngs, "sums": {k: float(v) for k, v in self._sums.items()},
                       "state": self.training_state()}})

    def _load_resume(self) -> bool:
        path = resume_path(self.out)
        if not path.exists():
            return False
        ckpt = load_checkpoint(path, kind=f"{self.kind}-resume")
        saved, now = dict(ckpt["config"]), dict(self.config_record())
        saved.pop("epochs", None), now.pop("epochs", None)
        if saved != now:
            diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise UserError(f"{path} belongs to a run with other settings ({', '.join(diff)}); "
                            "use the same settings or delete it")
        r = ckpt["resume"]
        self.epoch, self.step_in_epoch, self.global_step = r["epoch"], r["step_in_epoch"], r["global_step"]
        self.elapsed, self.epoch_log = r["elapsed"], list(r["epoch_log"])
        self._sums = dict(r.get("sums", {}))
        self.load_training_state(r["state"])
        rngs = r.get("rng_by_rank")
        if rngs and len(rngs) == self.session.world_size:
            set_rng_state(rngs[self.session.rank])
        else:
            set_rng_state(r["rng"])
            if self.session.rank:  # keep the processes' random streams (dropout) apart
                torch.manual_seed(self.seed * 100003 + self.global_step * 101 + self.session.rank)
        return True

    def fit(self, resume: bool = False, stop_after_steps: int | None = None) -> dict:
        """Train to the end (or, on Ctrl-C, SIGTERM or ``stop_after_steps``, stop early leaving a resume file);
        rank 0 writes ``out``. Returns the checkpoint (in every process). Leaves the torchrun process group if
        this trainer joined it."""
        try:
            with _sigterm_as_interrupt():
                return self._fit(resume, stop_after_steps)
        finally:
            self.session.close()

    def _fit(self, resume: bool, stop_after_steps: int | None) -> dict:
        if self.session.distributed:  # after the common seed for the weights, one random stream per process
            torch.manual_seed(self.seed * 100003 + self.session.rank)
        resumed = self._load_resume() if resume else False
        steps = steps_per_epoch(self.num_items, self.batch_size)
        bar = progress(total=self.epochs * steps, initial=self.global_step, desc=f"train {self.kind}",
                       enabled=self.show_progress)
        try:
            while self.epoch < self.epochs:
                perm = epoch_permutation(self.num_items, self.seed, self.epoch)
                t0 = time.perf_counter()
                while self.step_in_epoch < steps:
                    if stop_after_steps is not None and self.global_step >= stop_after_steps:
                        raise KeyboardInterrupt
                    s = self.step_in_epoch
                    stats = self.train_step(perm[s * self.batch_size:(s + 1) * self.batch_size])
                    for k, v in stats.items():
                        self._sums[k] = self._sums.get(k, 0.0) + (v.detach() if torch.is_tensor(v) else v)
                    self.step_in_epoch += 1
                    self.global_step += 1
                    bar.update(1)
                    if self.show_progress and self.global_step % PROGRESS_EVERY == 0:
                        bar.set_postfix({k: f"{float(v):.3f}" for k, v in stats.items()}, refresh=False)
                    if self.checkpoint_every and self.global_step % self.checkpoint_every == 0:
                        self.elapsed += time.perf_counter() - t0
                        t0 = time.perf_counter()
                        self._save_resume()
                self.elapsed += time.perf_counter() - t0
                means = distributed.all_reduce_mean({k: float(v) / steps for k, v in self._sums.items()}, self.session)
                record = {"epoch": self.epoch + 1, **means}
                record.update(self.end_of_epoch(self.epoch, record))
                self.epoch_log.append(record)
                self.epoch += 1
                self.step_in_epoch = 0
                self._sums = {}
                if self.epoch < self.epochs:
                    self._save_resume()
        except KeyboardInterrupt:
            self._save_resume(gather=False)
            raise TrainingInterrupted(f"interrupted at epoch {self.epoch + 1}, step {self.global_step}; "
                                      f"rerun with --resume to continue from {resume_path(self.out)}") from None
        finally:
            bar.close()
        for net in self.networks().values():
            distributed.unsync_batchnorm(net)  # the saved networks are plain ones
        checkpoint = self.final_checkpoint()
        checkpoint["metrics"]["train_seconds"] = round(self.elapsed, 3)
        checkpoint["metrics"]["resumed"] = resumed
        if self.session.is_main:
            save_checkpoint(self.out, checkpoint)
            resume_path(self.out).unlink(missing_ok=True)
        return checkpoint
