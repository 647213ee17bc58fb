"""benchmarks/speed.py's measuring parts, whose GPU branches must be right before a GPU is lent: the official
path in true fp32 (TF32 off, the user's flags restored) and the GEMM share counting each kernel once."""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from conftest import ROOT
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEventAvg

from liif_cli.models import LoadedModel, Normalization, build_liif, reference_upscale

_spec = importlib.util.spec_from_file_location("speed_bench", ROOT / "benchmarks" / "speed.py")
speed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(speed)


def test_official_path_runs_with_tf32_off_and_restores_the_flags():
    torch.manual_seed(0)
    loaded = LoadedModel(build_liif("edsr-baseline").eval(), "edsr-baseline", Normalization.named("half"), "official")
    seen = []
    loaded.net.encoder.register_forward_hook(
        lambda *_: seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
    )
    rgb = np.random.default_rng(0).random((12, 10, 3), dtype=np.float32)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # a user who wants TF32
    try:
        out = speed.official_upscale(loaded, rgb, (30, 23), torch.device("cpu"))
        after = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert seen == [(False, False)] and after == (True, True)
    with torch.inference_mode():
        x = torch.from_numpy(rgb).permute(2, 0, 1)
        expected = reference_upscale(loaded.net, x, (30, 23), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).numpy()
    assert out.shape == (30, 23, 3) and np.array_equal(out, expected)


def _event(key: str, device_type: DeviceType, self_device_us: float) -> FunctionEventAvg:
    e = FunctionEventAvg()
    e.key, e.device_type, e.self_device_time_total = key, device_type, self_device_us
    return e


def test_gemm_share_on_a_gpu_profile_counts_each_kernel_once():
    """A CUDA profile lists each operator (its self device time is its kernels') and each kernel again; the
    Hopper GEMM kernel's name (`nvjet_*`) says nothing of GEMMs. 80% of the kernel time is in addmm."""
    events = [
        _event("aten::addmm", DeviceType.CPU, 800.0),
        _event("nvjet_tst_128x256_64x4_2x1_v_bz_coopB_NNT", DeviceType.CUDA, 800.0),
        _event("aten::index_select", DeviceType.CPU, 150.0),
        _event("void at::native::indexSelectLargeIndex<float>", DeviceType.CUDA, 150.0),
        _event("aten::copy_", DeviceType.CPU, 50.0),
        _event("Memcpy DtoH (Device -> Pageable)", DeviceType.CUDA, 50.0),
    ]
    assert abs(speed.gemm_fraction(events, cuda=True) - 0.8) < 1e-12


def test_gemm_share_on_a_cpu_profile():
    a, b = torch.randn(384, 384), torch.randn(384, 384)
    x = torch.randn(1 << 20)
    assert speed.gemm_share(lambda *_: [torch.mm(a, b) for _ in range(8)], None, None, "cpu") > 0.9
    assert speed.gemm_share(lambda *_: [torch.cumsum(x, 0) for _ in range(8)], None, None, "cpu") < 0.05
