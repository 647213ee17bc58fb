"""The fast tiled engine against the official math: fixtures, random weights, tiles, precisions, devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import OFFICIAL, ROOT, SHARED, fixture_cases, needs_shared, random_liif
from PIL import Image

from liif_cli.api import load_model
from liif_cli.engine import Renderer, RenderOptions, default_query_batch, render_array
from liif_cli.geometry import axis_coords, axis_lookup
from liif_cli.models import LoadedModel, Normalization, build_liif, make_coord, reference_upscale

CASES = [pytest.param(c, id=c["name"]) for c in fixture_cases()] or [pytest.param(None, id="official-fixtures")]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]  # without a GPU the CUDA cases show as skips


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def random_model(encoder: str, seed: int = 0) -> LoadedModel:
    """Random weights (conftest's `random_liif`: outputs spread over tens of 8-bit levels, inside (0, 1))."""
    return LoadedModel(random_liif(encoder, seed), encoder, Normalization.named("half"), "official")


def oracle(loaded: LoadedModel, rgb: np.ndarray, out_hw) -> np.ndarray:
    x = torch.from_numpy(rgb).permute(2, 0, 1)
    norm = loaded.normalization
    return reference_upscale(loaded.net, x, out_hw, norm.sub, norm.div).numpy()


@needs_shared
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_fast_fp32_matches_every_official_fixture(case, device):
    up = load_model(OFFICIAL, device=device, precision="fp32")
    w, h = case["output_size_wh"]
    out = up.upscale_array(read_rgb(SHARED / case["input"]), (h, w))
    assert out.shape == (h, w, 3) and out.dtype == np.float32
    # CPU: measured 4.5e-7 to 8.9e-7 over the five cases. CUDA (not measured here): TF32 is off, but GPU conv
    # algorithms sum differently.
    tolerance = 2e-6 if device == "cpu" else 1e-4
    assert np.abs(out - np.load(SHARED / case["file"])).max() <= tolerance


@pytest.mark.parametrize(
    ("in_hw", "out_hw"),
    [((13, 17), (40, 61)), ((21, 9), (21, 9)), ((30, 28), (7, 50)), ((12, 12), (97, 97)), ((1, 5), (3, 11))],
)
def test_fast_path_equals_the_oracle_on_odd_shapes(in_hw, out_hw):
    loaded = random_model("edsr-baseline")
    rgb = np.random.default_rng(1).random((*in_hw, 3), dtype=np.float32)
    renderer = Renderer(loaded, RenderOptions(torch.device("cpu"), "fp32", tile=None, query_batch=500))
    assert np.abs(render_array(renderer, rgb, out_hw) - oracle(loaded, rgb, out_hw)).max() <= 1e-6  # measured 1.2e-7


@pytest.mark.parametrize(
    ("encoder", "in_hw", "out_hw", "tile"),
    [
        ("edsr-baseline", (40, 50), (97, 131), 16),  # 3 x 4 tiles, each with a 36 px margin
        ("edsr-baseline", (44, 30), (23, 75), 15),  # down in y, up in x
        ("rdn", (12, 10), (29, 31), 5),  # RDN's margin is 133 px: every tile encodes it all, but splits the output
    ],
)
def test_tiled_output_equals_whole_image_output(encoder, in_hw, out_hw, tile):
    loaded = random_model(encoder, seed=3)
    rgb = np.random.default_rng(2).random((*in_hw, 3), dtype=np.float32)
    whole = Renderer(loaded, RenderOptions(torch.device("cpu"), "fp32", tile=10_000))
    tiled = Renderer(loaded, RenderOptions(torch.device("cpu"), "fp32", tile=tile, query_batch=3000))
    blocks = []
    tiled.render(rgb, out_hw, lambda r, c, b: blocks.append((r, c)))
    assert len({(r.start, c.start) for r, c in blocks}) > 4, "the case must really need several tiles"
    assert np.abs(render_array(tiled, rgb, out_hw) - render_array(whole, rgb, out_hw)).max() <= 1e-6


def test_axis_lookup_matches_the_official_two_dimensional_grid_sample():
    h_lat, w_lat, h_out, w_out = 7, 11, 23, 5
    ylook, xlook = axis_lookup(h_out, h_lat), axis_lookup(w_out, w_lat)
    coord = make_coord((h_out, w_out)).unsqueeze(0)
    feat_coord = make_coord((h_lat, w_lat), flatten=False).permute(2, 0, 1).unsqueeze(0)
    for a, vx in enumerate((-1, 1)):
        for b, vy in enumerate((-1, 1)):
            c = coord.clone()
            c[:, :, 0] += vx / h_lat + 1e-6
            c[:, :, 1] += vy / w_lat + 1e-6
            c.clamp_(-1 + 1e-6, 1 - 1e-6)
            q = F.grid_sample(feat_coord, c.flip(-1).unsqueeze(1), mode="nearest", align_corners=False)
            q = q[0, :, 0, :].t().view(h_out, w_out, 2)
            rel = (coord.view(h_out, w_out, 2) - q) * torch.tensor([h_lat, w_lat])
            assert np.array_equal(rel[:, 0, 0].numpy(), ylook.rel[a]) and np.array_equal(
                rel[0, :, 1].numpy(), xlook.rel[b]
            )


def _grid_sample_lookup(coord: torch.Tensor, n_lat: int) -> list[torch.Tensor]:
    """The nearest latent per shift, taken by torch's own `grid_sample` on a 1-D ramp (the oracle)."""
    ramp = torch.arange(n_lat, dtype=torch.float32).view(1, 1, n_lat, 1)
    picked = []
    for v in (-1, 1):
        shifted = coord.clone()
        shifted += v * (2 / n_lat / 2) + 1e-6
        shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
        grid = torch.stack([torch.zeros_like(shifted), shifted], dim=-1).view(1, -1, 1, 2)
        picked.append(F.grid_sample(ramp, grid, mode="nearest", align_corners=False).view(-1).long())
    return picked


@pytest.mark.parametrize("n_lat", [1, 2, 3, 7, 10, 48, 97, 128, 333, 1000])
def test_numpy_axis_lookup_picks_what_grid_sample_picks(n_lat):
    """The lookups are numpy (the onnxruntime backend shares them): round half to even in float32 must pick
    exactly grid_sample's latent, at scales that make ties (integer ones), odd ones, and in a region."""
    for n_out in sorted({1, 2, n_lat, 2 * n_lat, 3 * n_lat, 4 * n_lat, round(2.5 * n_lat), round(n_lat * 7.31), 97}):
        coord = axis_coords(n_out, n_lat)
        assert np.array_equal(coord, make_coord((n_out,), flatten=False)[:, 0].numpy())
        for span in (None, (n_lat * 0.1, n_lat * 0.77)):
            look = axis_lookup(n_out, n_lat, span)
            oracle_idx = _grid_sample_lookup(torch.from_numpy(axis_coords(n_out, n_lat, span)), n_lat)
            assert np.array_equal(look.idx, torch.stack(oracle_idx).numpy()), (n_out, n_lat, span)


def test_integer_output_is_the_rounded_float_output(model_path):
    up = load_model(model_path, device="cpu", precision="fp32")
    rgb = read_rgb(ROOT / "examples" / "astronaut.png")[100:120, 100:130]
    as_float = up.upscale_array(rgb, (61, 90))
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        got = up.upscale_array(rgb, (61, 90), dtype=dtype)
        assert got.dtype == dtype
        assert np.array_equal(got, np.rint(as_float * top).astype(dtype))


@needs_shared
@pytest.mark.parametrize("device", DEVICES)
def test_half_precision_paths_stay_close(device):
    from liif_cli.devices import cpu_has_fast_bf16

    if device == "cpu" and not cpu_has_fast_bf16():
        pytest.skip("this CPU has no native bf16")
    rgb = read_rgb(SHARED / "datasets/Set5/LR_bicubic/X4/butterflyx4.png")
    ref = load_model(OFFICIAL, device=device, precision="fp32").upscale_array(rgb, (128, 128))
    for precision in ("bf16",) + (("fp16",) if device == "cuda" else ()):
        out = load_model(OFFICIAL, device=device, precision=precision).upscale_array(rgb, (128, 128))
        err = out - ref  # CPU bf16: measured max 5.0e-3, RMS 7.5e-4 (Set5 PSNR moves < 0.01 dB: test_bench)
        assert np.abs(err).max() < 8e-3 and np.sqrt((err**2).mean()) < 1e-3, precision


def test_upscale_runs_without_a_compiler_on_path(tmp_path, model_path):
    """The decoder fuses with plain ATen ops, never a JIT compiler: `liif upscale` works with no cc/gcc/g++
    on PATH and CC/CXX pointing at nothing, and writes the same pixels as the in-process API."""
    import os
    import shutil
    import subprocess
    import sys

    from liif_cli.devices import cpu_has_fast_bf16

    bare = tmp_path / "bin"
    bare.mkdir()  # PATH holds nothing: the interpreter is named by its full path (a symlink to a venv's python
    # elsewhere would not find the venv's packages)
    assert all(shutil.which(c, path=str(bare)) is None for c in ("cc", "gcc", "g++", "c++", "clang"))
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    rgb = read_rgb(ROOT / "examples" / "astronaut.png")[100:124, 100:120]
    Image.fromarray(np.rint(rgb * 255).astype(np.uint8)).save(src)
    precision = "bf16" if cpu_has_fast_bf16() else "fp32"
    env = dict(os.environ, PATH=str(bare), CC=str(tmp_path / "missing-cc"), CXX=str(tmp_path / "missing-cxx"))
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "liif_cli", "upscale", str(src), "-o", str(out), "--size", "50x61"]
    cmd += ["--model", str(model_path), "--device", "cpu", "--precision", precision]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = load_model(model_path, device="cpu", precision=precision).upscale_array(read_rgb(src), (61, 50))
    assert np.array_equal(np.asarray(Image.open(out)), np.rint(expected * 255).astype(np.uint8))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_decoder_block_size_does_not_change_a_pixel(precision):
    """The default block size (from the cache size: 2048 output pixels for fp32, 4096 for bf16 with a
    32 MiB L3) gives the very floats of another: each output pixel's GEMM rows do not depend on which
    block holds them."""
    loaded = random_model("edsr-baseline", seed=5)
    rgb = np.random.default_rng(5).random((40, 36, 3), dtype=np.float32)
    default = Renderer(loaded, RenderOptions(torch.device("cpu"), precision))
    assert default.options.query_batch == default_query_batch(torch.device("cpu"), precision)
    other_block = 16384 if default.options.query_batch < 16384 else 2048
    other = Renderer(loaded, RenderOptions(torch.device("cpu"), precision, query_batch=other_block))
    out_hw = (131, 150)  # 19650 output pixels: several default blocks against one or two of the other
    assert np.array_equal(render_array(default, rgb, out_hw), render_array(other, rgb, out_hw))


@pytest.mark.parametrize(
    ("cache_mib", "fp32", "bf16"), [(32, 2048, 4096), (8, 1024, 1024), (16, 1024, 2048), (256, 4096, 16384)]
)
def test_cpu_block_size_follows_the_last_level_cache(monkeypatch, cache_mib, fp32, bf16):
    """A hidden layer's input and output (8 KiB per output pixel in fp32, 4 KiB in bf16) fill at most half
    the cache; fp32, whose layers write fresh outputs, stays at or under 4096 pixels (glibc's mmap ceiling)."""
    import liif_cli.engine as engine

    monkeypatch.setattr(engine, "last_level_cache_bytes", lambda: cache_mib << 20)
    cpu = torch.device("cpu")
    assert (default_query_batch(cpu, "fp32"), default_query_batch(cpu, "bf16")) == (fp32, bf16)
    assert default_query_batch(cpu, "fp16") == bf16
    assert default_query_batch(torch.device("cuda"), "bf16") == 16384


def test_last_level_cache_is_read_from_sysfs():
    from liif_cli.devices import last_level_cache_bytes

    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        if (entry / "type").read_text().strip() != "Instruction":
            text = (entry / "size").read_text().strip()
            sizes.append(int(text[:-1]) << {"K": 10, "M": 20}[text[-1]])
    assert last_level_cache_bytes() == (max(sizes) if sizes else 32 << 20)


def test_a_row_longer_than_the_block_is_decoded_in_pieces():
    """Decoder memory follows the block size, not the image width: with 40-pixel blocks a 150-pixel row
    is decoded in four pieces, and the floats are those of whole-row blocks (and the oracle's)."""
    loaded = random_model("edsr-baseline", seed=6)
    rgb = np.random.default_rng(6).random((9, 30, 3), dtype=np.float32)
    out_hw = (37, 150)
    small = Renderer(loaded, RenderOptions(torch.device("cpu"), "fp32", query_batch=40))
    blocks = []
    small.render(rgb, out_hw, lambda r, c, b: blocks.append(b.shape[0] * b.shape[1]))
    assert max(blocks) <= 40 and sum(blocks) == 37 * 150
    large = Renderer(loaded, RenderOptions(torch.device("cpu"), "fp32", query_batch=100_000))
    pieces = render_array(small, rgb, out_hw)
    assert np.array_equal(pieces, render_array(large, rgb, out_hw))
    assert np.abs(pieces - oracle(loaded, rgb, out_hw)).max() <= 1e-6


# --- RDN-LIIF against the official math (random weights; RDN is 131 convs deep, so the inputs are tiny) -----

RDN_RGB = np.random.default_rng(11).random((12, 10, 3), dtype=np.float32)
RDN_SQUARE, RDN_ANISOTROPIC = (29, 31), (17, 45)


@pytest.fixture(scope="module")
def rdn(checkpoints):
    """The session's random RDN-LIIF and the oracle's output at two sizes (computed once: the oracle is slow)."""
    from liif_cli.models import load_checkpoint

    loaded = load_checkpoint(checkpoints.rdn)
    return loaded, {hw: oracle(loaded, RDN_RGB, hw) for hw in (RDN_SQUARE, RDN_ANISOTROPIC)}


@pytest.mark.parametrize(
    ("case", "tile", "out_hw", "crop"),
    [
        ("whole", None, RDN_SQUARE, None),
        ("tiled", 5, RDN_SQUARE, None),  # 3 x 2 tiles: each encodes the whole input (margin 133) and owns a part
        ("region", 5, RDN_SQUARE, (5, 7, 20, 15)),  # x, y, w, h in output pixels of the whole render
        ("anisotropic", None, RDN_ANISOTROPIC, None),  # down in y, up 4.5x in x
    ],
)
def test_rdn_fast_path_equals_the_oracle(rdn, case, tile, out_hw, crop):
    loaded, expected = rdn
    assert loaded.encoder == "rdn"
    r = Renderer(loaded, RenderOptions(torch.device("cpu"), "fp32", tile=tile, query_batch=300))
    want = expected[out_hw]
    if crop is None:
        got = render_array(r, RDN_RGB, out_hw)
    else:
        a, b, w, h = crop
        sy, sx = RDN_RGB.shape[0] / out_hw[0], RDN_RGB.shape[1] / out_hw[1]
        got = render_array(r, RDN_RGB, (h, w), region=(a * sx, b * sy, w * sx, h * sy))
        want = want[b : b + h, a : a + w]
    assert got.shape == want.shape
    assert want.std() > 0.02, "the random model must give a picture, not a flat grey"
    assert np.abs(got - want).max() <= 1e-6  # measured 3.6e-7


def test_a_fallback_is_the_renderers_state_never_the_callers_options():
    """After a half-precision job with non-finite values the renderer works in fp32 for good, as its own state;
    the caller's frozen options still say bf16. (The real overflow needs fp16, which only CUDA runs: see
    test_engine_retry.py; here the job reports non-finite values once, as the decoder does.)"""
    import dataclasses
    import warnings

    from liif_cli import engine
    from liif_cli.models import LoadedModel, Normalization

    torch.manual_seed(0)
    loaded = LoadedModel(build_liif("edsr-baseline").eval(), "edsr-baseline", Normalization.named("half"), "official")
    options = RenderOptions(torch.device("cpu"), "bf16", tile=64)
    renderer = Renderer(loaded, options)
    dtypes = []

    def job():
        dtypes.append(renderer.dtype)
        if len(dtypes) == 1:
            raise engine._NonFinite
        return "done"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert renderer.with_fallback(job) == "done"
    assert ["bf16 gave non-finite values; retrying in fp32"] == [str(w.message) for w in caught]
    assert dtypes == [torch.bfloat16, torch.float32]
    assert renderer.precision == "fp32" and renderer.tile == 64
    assert options.precision == "bf16"
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.precision = "fp32"  # type: ignore[misc]


def test_encoding_an_empty_image_is_an_input_error():
    """No pixels, no feature map: an InputError (the encode loop ran no tile and returned None before)."""
    from liif_cli.errors import InputError

    renderer = Renderer(random_model("edsr-baseline"), RenderOptions(torch.device("cpu"), "fp32"))
    for shape in ((0, 7, 3), (5, 0, 3)):
        with pytest.raises(InputError, match="empty image"):
            renderer.encode(np.zeros(shape, dtype=np.float32))
