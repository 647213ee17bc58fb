"""`precision=auto` on the CPU: bf16 only where the CPU computes it natively (AVX512-BF16 or AMX on x86)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from liif_cli import devices

CPU = torch.device("cpu")


def _fake_x86(monkeypatch, *, avx512_bf16: bool, amx: bool) -> None:
    """An x86 CPU with AVX-512 (so oneDNN says bf16 is 'supported', emulated) and the given native features."""
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)


def test_auto_is_fp32_on_an_avx512_cpu_without_native_bf16(monkeypatch):
    _fake_x86(monkeypatch, avx512_bf16=False, amx=False)  # Skylake-X, Cascade Lake, Ice Lake
    assert not devices.cpu_has_fast_bf16()
    assert devices.resolve_precision("auto", CPU) == "fp32"


@pytest.mark.parametrize(("avx512_bf16", "amx"), [(True, False), (False, True)])
def test_auto_is_bf16_where_native(monkeypatch, avx512_bf16, amx):
    _fake_x86(monkeypatch, avx512_bf16=avx512_bf16, amx=amx)
    assert devices.resolve_precision("auto", CPU) == "bf16"
    assert devices.resolve_precision("fp32", CPU) == "fp32"  # asked for, never overridden


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or not Path("/proc/cpuinfo").exists(),
    reason="reads the x86 CPU flags of Linux",
)
def test_this_cpu_answer_matches_its_flags():
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    native = "avx512_bf16" in flags or "amx_tile" in flags or "amx_bf16" in flags
    assert devices.cpu_has_fast_bf16() == native
    assert devices.resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
