"""Device, precision, seeding and progress: the run-time settings every trainer shares."""

from __future__ import annotations

import contextlib
import functools
import random
import sys

import numpy as np
import torch

from .errors import UserError

PRECISIONS = {
    "auto": "bf16 where the hardware runs it natively (a CUDA GPU with bf16; a CPU with AVX512-BF16 or AMX), "
            "fp32 otherwise",
    "fp32": "plain fp32",
    "bf16": "bf16 autocast (mixed precision; weights and optimizer stay fp32), even where bf16 is emulated, "
            "which can be 15x slower than fp32 on CPUs without AVX512-BF16 or AMX",
}


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


def device_description(device: torch.device | str) -> str:
    """The hardware a timed run ran on, in words (GPU name, or CPU model and threads): what a benchmark compares
    before it reuses a timing, since the same method takes a different time on another machine."""
    import platform

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {_cpu_model_name() or platform.processor() or 'unknown'}, {torch.get_num_threads()} threads"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    return precision


# CPU features that matter for speed: vector width (avx2, avx512f) and native bf16 arithmetic (avx512_bf16,
# amx_bf16 on x86; bf16 or sve_bf16 on ARM). Names as torch.cpu.get_capabilities() spells them.
CPU_FEATURES = ("avx2", "avx512_f", "avx512_bf16", "amx_tile", "amx_bf16", "bf16", "sve_bf16")


@functools.lru_cache(maxsize=None)
def cpu_capabilities() -> dict:
    """The CPU's model name, architecture and the features in ``CPU_FEATURES``, as torch detects them.

    torch >= 2.8 has ``torch.cpu.get_capabilities()``; older versions only the private ``torch.cpu._is_*``
    probes, and a probe this torch lacks counts as absent (fp32, the safe side).
    """
    caps: dict = {}
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        try:
            caps = dict(get())
        except Exception:  # cpuinfo failed to initialise: fall back to the probes
            caps = {}
    if not caps:
        probes = {"avx2": "_is_avx2_supported", "avx512_f": "_is_avx512_supported",
                  "avx512_bf16": "_is_avx512_bf16_supported", "amx_tile": "_is_amx_tile_supported"}
        for name, probe in probes.items():
            fn = getattr(torch.cpu, probe, None)
            try:
                caps[name] = bool(fn()) if fn is not None else False
            except Exception:
                caps[name] = False
    import platform

    info = {"model": _cpu_model_name() or caps.get("cpu_name") or platform.processor() or "unknown",
            "architecture": caps.get("architecture", platform.machine()),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    info.update({name: bool(caps.get(name, False)) for name in CPU_FEATURES})
    info["kernel_limit"] = kernel_isa_limit(info["torch_cpu_capability"], info["architecture"])
    return info


# oneDNN's CPU ISAs in its own order (ONEDNN_MAX_CPU_ISA values; AVX512_CORE_FP16 and AVX512_CORE_AMX are aliases
# of AVX10_1_512 and AVX10_1_512_AMX); bf16 convolutions are native from AVX512_CORE_BF16 on.
ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
               "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
               "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL")


def kernel_isa_limit(torch_capability: str, architecture: str, env=None) -> str | None:
    """Why this process should not count on native bf16 kernels although the CPU may have them: ATen's
    vectorised kernels dispatched below AVX-512 (``ATEN_CPU_CAPABILITY``, as
    ``torch.backends.cpu.get_cpu_capability()`` reports it), or oneDNN capped below its bf16 ISAs
    (``ONEDNN_MAX_CPU_ISA``, else ``DNNL_MAX_CPU_ISA``: oneDNN reads the first one set; an unknown value counts
    as a cap, the safe side). None if neither. Together with ``MKL_ENABLE_INSTRUCTIONS=AVX2`` (fp32 matrix
    products) these are how an AVX2-only CPU is stood in for on a newer one."""
    import os

    env = os.environ if env is None else env
    if architecture not in ("x86_64", "AMD64", "i386", "i686"):
        return None
    if not str(torch_capability).upper().startswith("AVX512"):
        return f"ATen kernels run at {torch_capability}"
    var = next((v for v in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA") if env.get(v)), None)
    if var is not None:
        isa = env[var].strip().upper()
        if isa not in ONEDNN_ISAS or ONEDNN_ISAS.index(isa) < ONEDNN_ISAS.index("AVX512_CORE_BF16"):
            return f"{var}={env[var]}"
    return None


def _cpu_model_name() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def native_cpu_bf16(caps: dict) -> str | None:
    """The feature that lets this CPU compute in bf16 natively, or None where bf16 would be emulated."""
    for name in ("amx_bf16", "avx512_bf16", "sve_bf16", "bf16"):
        if caps.get(name):
            return name
    return None


def resolve_precision(precision: str, device: torch.device | str) -> tuple[str, str]:
    """``(fp32 | bf16, reason)``: ``auto`` means bf16 where ``device`` runs it natively and, on a CPU, where it
    also measured faster than fp32 (``measured_bf16``), fp32 otherwise.

    Emulated bf16 is slow, not just imprecise: on an AVX2-only CPU bf16 autocast trained a DCGAN 15x slower
    than fp32; and native bf16 without AMX ran slower than fp32 on one Xeon. Explicit ``fp32``/``bf16`` are
    kept as given (the reason says so).
    """
    check_precision(precision)
    device = torch.device(device)
    if precision != "auto":
        return precision, f"{precision} requested"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"auto: {torch.cuda.get_device_name(device)} supports bf16"
        return "fp32", f"auto: {torch.cuda.get_device_name(device)} has no native bf16"
    if device.type == "cpu":
        caps = cpu_capabilities()
        feature = native_cpu_bf16(caps)
        if feature and caps.get("kernel_limit"):
            return "fp32", (f"auto: CPU {caps['model']} has {feature}, but no native bf16 kernels in this process "
                            f"({caps['kernel_limit']}); bf16 would be emulated")
        if feature:
            faster, timing = measured_bf16(_probe_key(caps, feature))
            if faster:
                return "bf16", f"auto: CPU {caps['model']} has native bf16 ({feature}) and it measured faster ({timing})"
            return "fp32", f"auto: CPU {caps['model']} has native bf16 ({feature}), but it measured slower ({timing})"
        return "fp32", f"auto: CPU {caps['model']} has no native bf16 (no AVX512-BF16 or AMX); bf16 would be emulated"
    return "fp32", f"auto: no bf16 rule for {device.type} devices"


# bf16 must take at most this share of fp32's time per step to be chosen: a feature flag is not a speedup.
# Measured for this project's DCGAN step (channels_last, 2 threads): an AMD EPYC with AVX512-BF16 ran bf16 1.8-1.9x
# faster than fp32, an Intel Xeon with AVX512-BF16 but no AMX 0.73x as fast (512-537 vs 703-727 images/s).
BF16_MIN_SPEEDUP = 1.1


def _probe_key(caps: dict, feature: str) -> str:
    return (f"{caps['model']}|{feature}|{caps.get('torch_cpu_capability')}|torch {torch.__version__}|"
            f"threads {torch.get_num_threads()}")


@functools.lru_cache(maxsize=None)
def measured_bf16(key: str) -> tuple[bool, str]:
    """Whether bf16 autocast beats fp32 on this CPU for a DCGAN training step (``bf16_speed_probe``), and the
    timing as text. Measured once per CPU, torch version and thread count and kept in the cache folder
    (``precision_probe.json``), so a run pays the probe's few seconds only the first time."""
    import json

    from .checkpoint import atomic_write
    from .data import cache_dir

    path = cache_dir() / "precision_probe.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    times = known.get(key) if isinstance(known, dict) else None
    if not (isinstance(times, dict) and {"fp32", "bf16"} <= set(times)):
        times = bf16_speed_probe()
        known = {**(known if isinstance(known, dict) else {}), key: times}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda f: f.write(json.dumps(known, indent=1).encode()))
        except OSError:  # a read-only cache only costs the probe again next time
            pass
    speedup = times["fp32"] / times["bf16"]
    return speedup >= BF16_MIN_SPEEDUP, (f"bf16 {1000 * times['bf16']:.0f} ms vs fp32 {1000 * times['fp32']:.0f} ms "
                                         f"per DCGAN step, {speedup:.2f}x; bf16 needs {BF16_MIN_SPEEDUP}x")


def bf16_speed_probe(iterations: int = 3) -> dict:
    """Seconds per training step (forward and backward) of the 28x28 DCGAN generator and discriminator,
    batch 64, channels_last, in fp32 and in bf16 autocast: the better of two alternating rounds each. The
    global random state is left as it was (a trainer resolves its precision after seeding)."""
    import time

    from .models import Discriminator, Generator

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        G, D = (m.to(memory_format=torch.channels_last) for m in (Generator(28, 1), Discriminator(28, 1)))
        z = torch.randn(64, 100)
        cpu = torch.device("cpu")

        def step(precision):
            with autocast(cpu, precision):
                loss = D(G(z)).float().mean()
            loss.backward()

        times = {"fp32": [], "bf16": []}
        for _ in range(2):
            for precision in times:
                step(precision)  # warm-up: oneDNN builds its kernels on first use
                t0 = time.perf_counter()
                for _ in range(iterations):
                    step(precision)
                times[precision].append((time.perf_counter() - t0) / iterations)
        return {k: min(v) for k, v in times.items()}
    finally:
        torch.random.set_rng_state(state)


def resolve_channels_last(value: bool | str, device: torch.device | str, precision: str) -> tuple[bool, str]:
    """``(channels_last, reason)``; ``auto`` follows what was measured for this project's DCGAN: channels_last
    on CPUs (bf16: oneDNN's bf16 convolutions run NHWC; fp32: 403 vs 352 and 502 vs 460 images/s on a 2-thread
    Xeon), the default layout on CUDA (an H100 ran it faster). ``True``/``False`` are kept as given."""
    if isinstance(value, bool):
        return value, f"channels_last={value} requested"
    if value != "auto":
        raise UserError(f"channels_last must be true, false or auto, not {value!r}")
    device = torch.device(device)
    if device.type == "cuda":  # measured on an H100: bf16 8224 vs 7083 images/s, fp32 10373 vs 8328 (NCHW vs NHWC)
        return False, "auto: default layout on CUDA (channels_last measured slower for this DCGAN)"
    return True, f"auto: channels_last on CPU ({precision} convolutions measured faster in NHWC)"


def autocast(device: torch.device, precision: str):
    """bf16 autocast on CPU or GPU (mixed precision; weights and optimizer stay fp32), or nothing.
    ``auto`` is resolved for ``device`` first (see ``resolve_precision``)."""
    if precision == "auto":
        precision = resolve_precision(precision, device)[0]
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
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
