"""The engine's two retries, with the condition made to happen for real (nothing of the engine is mocked).

Half precision overflowing: an encoder whose first convolution is scaled by 1e5 gives features far beyond
fp16's range (65504) but well inside fp32's, so the half-precision render has non-finite blocks and the
engine must redo the image in fp32. CUDA out of memory: the process is capped to a small share of the GPU,
and a tile too big for it must be halved until the image renders.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from liif_cli import engine
from liif_cli.models import LoadedModel, Normalization, build_liif

pytestmark = pytest.mark.cuda


def _model(encoder: str = "edsr-baseline", head_scale: float = 1.0) -> LoadedModel:
    torch.manual_seed(0)
    net = build_liif(encoder).eval()
    if head_scale != 1.0:
        with torch.no_grad():
            first = net.encoder.head[0] if encoder == "edsr-baseline" else net.encoder.SFENet1
            first.weight.mul_(head_scale)
    return LoadedModel(net, encoder, Normalization.named("half"), "official")


def _render(loaded: LoadedModel, rgb, out_hw, **options) -> tuple[np.ndarray, engine.Renderer, list[str]]:
    renderer = engine.Renderer(loaded, engine.RenderOptions(device=torch.device("cuda"), **options))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = engine.render_array(renderer, rgb, out_hw)
    return out, renderer, [str(w.message) for w in caught]


def test_fp16_overflow_is_redone_in_fp32():
    loaded = _model(head_scale=1e5)
    rgb = np.random.default_rng(0).random((24, 20, 3), dtype=np.float32)
    out, renderer, messages = _render(loaded, rgb, (50, 41), precision="fp16")
    assert any("non-finite" in m and "fp32" in m for m in messages), messages
    assert renderer.precision == "fp32" and np.isfinite(out).all()
    assert renderer.options.precision == "fp16"  # the caller's options are never rewritten
    reference, _, none = _render(loaded, rgb, (50, 41), precision="fp32")
    assert none == [] and np.array_equal(out, reference)


def test_cuda_out_of_memory_halves_the_tile_until_it_fits():
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (3 << 30) / total))  # ~3 GiB for this process
    try:
        loaded = _model("rdn")  # ~15 kB per encoded pixel in fp32: a 1024 px tile needs far more than 3 GiB
        rgb = np.random.default_rng(1).random((600, 600, 3), dtype=np.float32)
        out, renderer, messages = _render(loaded, rgb, (660, 660), precision="fp32", tile=1024)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert any("out of memory" in m for m in messages), messages
    assert (
        renderer.tile < 1024 and renderer.options.tile == 1024 and out.shape == (660, 660, 3) and np.isfinite(out).all()
    )
