"""A resumable epoch loop shared by the GAN and classifier trainers.

Subclasses override four hooks (``train_step``, ``training_state``, ``load_training_state``,
``final_checkpoint``); the loop owns the epoch order, the resume file, interrupts and progress. The
data order of epoch ``e`` is a permutation seeded by ``(seed, e)``, so a run resumed at any step sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import torch

from gan_unlearn.checkpoint import load_checkpoint, save_checkpoint
from gan_unlearn.errors import UserError
from gan_unlearn.runtime import progress, rng_state, set_rng_state


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


class ResumableTrainer:
    kind = "model"

    def __init__(self, *, num_items: int, batch_size: int, epochs: int, seed: int, out: str | Path,
                 checkpoint_every: int = 500, show_progress: bool = True):
        if epochs < 1:
            raise UserError(f"epochs must be at least 1, got {epochs}")
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        self.num_items, self.batch_size, self.epochs, self.seed = num_items, batch_size, epochs, seed
        self.out = Path(out)
        self.checkpoint_every = checkpoint_every
        self.show_progress = show_progress
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.elapsed = 0.0
        self.epoch_log: list[dict] = []

    # --- hooks -------------------------------------------------------------------------------------
    def config_record(self) -> dict:
        """Everything that must match for a resume to continue the same run."""
        raise NotImplementedError

    def train_step(self, indices: torch.Tensor) -> dict:
        raise NotImplementedError

    def training_state(self) -> dict:
        raise NotImplementedError

    def load_training_state(self, state: dict) -> None:
        raise NotImplementedError

    def end_of_epoch(self, epoch: int, means: dict) -> dict:
        """Return extra numbers to log for this epoch (for example test accuracy)."""
        return {}

    def final_checkpoint(self) -> dict:
        raise NotImplementedError

    # --- the loop ----------------------------------------------------------------------------------
    def _save_resume(self) -> None:
        save_checkpoint(resume_path(self.out), {
            "kind": f"{self.kind}-resume", "config": self.config_record(),
            "resume": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                       "elapsed": self.elapsed, "epoch_log": self.epoch_log, "rng": rng_state(),
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
        self.load_training_state(r["state"])
        set_rng_state(r["rng"])
        return True

    def fit(self, resume: bool = False, stop_after_steps: int | None = None) -> dict:
        """Train to the end (or, on Ctrl-C, SIGTERM or ``stop_after_steps``, stop early leaving a resume file)
        and write ``out``."""
        with _sigterm_as_interrupt():
            return self._fit(resume, stop_after_steps)

    def _fit(self, resume: bool, stop_after_steps: int | None) -> dict:
        resumed = self._load_resume() if resume else False
        steps = steps_per_epoch(self.num_items, self.batch_size)
        bar = progress(total=self.epochs * steps, initial=self.global_step, desc=f"train {self.kind}",
                       enabled=self.show_progress)
        try:
            while self.epoch < self.epochs:
                perm = epoch_permutation(self.num_items, self.seed, self.epoch)
                sums: dict[str, float] = {}
                t0 = time.perf_counter()
                while self.step_in_epoch < steps:
                    if stop_after_steps is not None and self.global_step >= stop_after_steps:
                        raise KeyboardInterrupt
                    s = self.step_in_epoch
                    stats = self.train_step(perm[s * self.batch_size:(s + 1) * self.batch_size])
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + v
                    self.step_in_epoch += 1
                    self.global_step += 1
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()}, refresh=False)
                    if self.checkpoint_every and self.global_step % self.checkpoint_every == 0:
                        self.elapsed += time.perf_counter() - t0
                        t0 = time.perf_counter()
                        self._save_resume()
                self.elapsed += time.perf_counter() - t0
                record = {"epoch": self.epoch + 1, **{k: v / steps for k, v in sums.items()}}
                record.update(self.end_of_epoch(self.epoch, record))
                self.epoch_log.append(record)
                self.epoch += 1
                self.step_in_epoch = 0
                if self.epoch < self.epochs:
                    self._save_resume()
        except KeyboardInterrupt:
            self._save_resume()
            raise TrainingInterrupted(f"interrupted at epoch {self.epoch + 1}, step {self.global_step}; "
                                      f"rerun with --resume to continue from {resume_path(self.out)}") from None
        finally:
            bar.close()
        checkpoint = self.final_checkpoint()
        checkpoint.setdefault("metrics", {})["train_seconds"] = round(self.elapsed, 3)
        checkpoint["metrics"]["resumed"] = resumed
        save_checkpoint(self.out, checkpoint)
        resume_path(self.out).unlink(missing_ok=True)
        return checkpoint
