"""Which device, which precision, how many threads: resolved once, before a model is prepared.

These answer questions about the machine (is there a GPU, does this CPU have native bf16), not about
rendering; the API, training and the distributed launcher ask them without building a renderer.
"""

from __future__ import annotations

import os
import platform

import torch

from .errors import UsageError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | None) -> torch.device:
    """'auto' prefers CUDA, then Apple MPS, then the CPU."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} requested but this PyTorch build sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {name!r} does not exist ({torch.cuda.device_count()} CUDA device(s))")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise UsageError("device 'mps' requested but MPS is not available")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {name!r} (use auto, cpu, cuda, cuda:N or mps)")
    return device


def cpu_has_fast_bf16() -> bool:
    """True where the CPU computes bf16 natively: AVX512-BF16 or AMX on x86, the BF16 extension on Arm.

    oneDNN's own `_is_mkldnn_bf16_supported()` is not the answer on x86: it is true for any AVX-512 CPU,
    including those without AVX512-BF16 (Skylake-X, Cascade Lake, Ice Lake), where bf16 is emulated, slower
    than fp32 and less exact. So x86 asks torch's CPU feature tests (cpuinfo); elsewhere oneDNN's answer
    already means native bf16.
    """
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        cpu = getattr(torch, "cpu", None)
        tests = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        try:
            return any(bool(test()) for test in tests if test is not None)
        except (AttributeError, RuntimeError):
            return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """'auto' picks the fastest mode measured to cost < 0.01 dB on Set5 (see README's precision table)."""
    precision = (precision or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


_DEFAULT_CACHE = 32 << 20


def last_level_cache_bytes() -> int:
    """Size of the CPU's largest data cache (the L3 on most machines), from sysfs; 32 MiB where unknown.

    Read from `/sys/devices/system/cpu/cpu0/cache/index*/size` (the figures `lscpu` prints), so no probe
    runs and nothing is compiled. The decoder's block size follows it (`engine.default_query_batch`).
    """
    best = 0
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = os.listdir(root)
    except OSError:
        return _DEFAULT_CACHE
    for entry in entries:
        try:
            with open(f"{root}/{entry}/type") as f:
                if f.read().strip() == "Instruction":
                    continue
            with open(f"{root}/{entry}/size") as f:
                text = f.read().strip().upper()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        try:
            size = int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)
        except ValueError:
            continue
        best = max(best, size)
    return best or _DEFAULT_CACHE


def set_threads(threads: int | None) -> None:
    """All cores by default (PyTorch's default can be lower inside containers)."""
    if threads is not None and threads < 1:
        raise UsageError(f"{{threads}} must be >= 1, got {threads}", param="threads")
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
