"""Device, precision, seeding and progress: the run-time settings every trainer shares."""

from __future__ import annotations

import contextlib
import random
import sys

import numpy as np
import torch

from .errors import UserError

PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``auto`` picks CUDA when present; an unavailable device is a ``UserError``."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name} requested but CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {name!r}; use cpu, cuda, cuda:N or auto")
    return device


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use {' or '.join(PRECISIONS)}")
    return precision


def autocast(device: torch.device, precision: str):
    """bf16 autocast on CPU or GPU (mixed precision; weights and optimizer stay fp32), or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def frozen(*modules: torch.nn.Module):
    """No weight gradients for these modules inside the block (gradients still flow through them to their
    inputs); each parameter's previous setting comes back afterwards, also after an exception."""
    params = [p for m in modules for p in m.parameters()]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


@contextlib.contextmanager
def eval_mode(*modules: torch.nn.Module):
    """The modules in eval mode inside the block (BatchNorm as a fixed map, so outputs do not depend on
    batching); each module's previous mode comes back afterwards, also after an exception."""
    before = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, before):
            m.train(mode)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def progress(iterable=None, total=None, desc=None, enabled: bool = True, **kwargs):
    """tqdm progress bar on stderr, or a plain iterator when disabled (tests, ``--quiet``)."""
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                leave=False, mininterval=0.1 if interactive else 30, **kwargs)


def to_memory_format(module_or_tensor, channels_last: bool):
    if channels_last:
        return module_or_tensor.to(memory_format=torch.channels_last)
    return module_or_tensor


@torch.no_grad()
def batched(fn, inputs: torch.Tensor, batch_size: int = 1000, device: torch.device | str | None = None,
            precision: str = "fp32") -> torch.Tensor:
    """Apply ``fn`` to ``inputs`` in batches (on ``device``), returning float32 results on the CPU."""
    device = torch.device(device) if device is not None else inputs.device
    out = []
    for i in range(0, len(inputs), batch_size):
        with autocast(device, precision):
            out.append(fn(inputs[i:i + batch_size].to(device)).float().cpu())
    return torch.cat(out)
