"""Rendering engine: a model prepared for one device and precision, rendering any size tile by tile.

The `Renderer` ties the parts together: the encoder runs per input tile (`tiles.py` says how an input is
cut and why the margins make tiles exact), the per-axis lookups (`geometry.py`) say which latents each
output pixel reads, and the fast decoder (`decoder.py`) turns latents into pixels. Device and precision
choice is in `devices.py`; this module owns the retries (half tile on CUDA out-of-memory, fp32 on
non-finite half-precision output) and keeps fp32 exact on CUDA.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

from .decoder import AxisQueries, FastDecoder
from .devices import DTYPES, last_level_cache_bytes
from .errors import InputError
from .geometry import AxisLookup, Region
from .models import LoadedModel
from .tiles import Band, auto_tile, encoder_bytes_per_pixel, plan_render, plan_tile, whole_bands

if TYPE_CHECKING:
    from .tiles import ProgressCallback, RenderPlan, TileSink

Features = Callable[[Band, Band], torch.Tensor]  # (row band, column band) -> that span's feature map
T = TypeVar("T")


@dataclass(frozen=True)
class RenderOptions:
    """What the caller asks of a renderer (frozen: the renderer's run-time learnings are its own state)."""

    device: torch.device
    precision: str = "fp32"  # resolved: fp32 | bf16 | fp16
    tile: int | None = None  # core size in input pixels; None = from free memory
    query_batch: int | None = None  # output pixels decoded per GEMM chain (x4 queries); None: see below

    def __post_init__(self) -> None:
        if self.query_batch is None:
            object.__setattr__(self, "query_batch", default_query_batch(self.device, self.precision))


def default_query_batch(device: torch.device, precision: str) -> int:
    """Output pixels per decoder block: sized to the CPU's last-level cache there, 16384 elsewhere.

    On the CPU a hidden layer reads and writes 4 queries x 256 activations per output pixel (4 KiB in
    half precision, 8 KiB in fp32). The block is the largest power of two from 1024 to 16384 pixels whose
    layer input and output together fill at most half the last-level cache
    (`devices.last_level_cache_bytes`, from sysfs): the GEMMs then stream from the cache, not from DRAM,
    and the other half is left to the weights, the latent-table rows and other processes. With the
    32 MiB L3 of the development machine that is 4096 pixels in bf16 (the issue-28 measurement: 15%
    faster whole runs than 16384-pixel blocks, whose 32 MiB buffers did not stay in the L3) and 2048 in
    fp32. fp32 is also capped at 4096: its hidden layers write fresh outputs (oneDNN's fused linear has
    no out= form), and above 4096 pixels (16 MiB) each would exceed glibc's largest mmap threshold and
    fault in new pages per layer (issue 14: 16384-pixel blocks 1.32x slower). Outputs are bit-identical
    at any block size (`tests/test_engine.py`). GPUs want large batches.
    """
    if device.type != "cpu":
        return 16384
    itemsize = 4 if precision == "fp32" else 2
    per_pixel = 2 * 4 * 256 * itemsize  # one hidden layer's input + output activations
    budget = last_level_cache_bytes() // 2
    block = 1024
    while block < (4096 if precision == "fp32" else 16384) and 2 * block * per_pixel <= budget:
        block *= 2
    return block


class Renderer:
    """A model prepared for one device and precision; renders any input size into any output size.

    `options` are the caller's and never change. What the renderer learns at run time is its own state:
    `precision` becomes fp32 for good after a half-precision result had non-finite values, and `tile` halves
    after a CUDA out-of-memory error; both hold for the renderer's later jobs, and `options` still say what
    was asked for.
    """

    def __init__(self, loaded: LoadedModel, options: RenderOptions):
        self.loaded = loaded
        self.options = options
        self.precision = options.precision  # the working precision (fp32 after a non-finite half result)
        self.tile = options.tile  # the tile size asked for, halved after each out-of-memory retry
        batch = options.query_batch  # resolved by RenderOptions; None only if that was bypassed
        self.query_batch = default_query_batch(options.device, options.precision) if batch is None else batch
        self.net = loaded.net.to(options.device).eval()
        self.margin = self.net.receptive_radius + 2
        self._set_precision(options.precision)
        norm = loaded.normalization
        self.sub = torch.tensor(norm.sub, dtype=torch.float32, device=options.device)
        self.div = torch.tensor(norm.div, dtype=torch.float32, device=options.device)

    def _set_precision(self, precision: str) -> None:
        self.precision = precision
        self.dtype = DTYPES[precision]
        # The engine runs its own copy of the encoder, channels-last (oneDNN's native layout: ~1.5x faster
        # convolutions on CPU) and in the working precision; the model's own weights stay as loaded.
        # (Module.to takes memory_format at run time; torch's typed overloads omit it.)
        encoder = copy.deepcopy(self.net.encoder)
        self.encoder = encoder.to(self.dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.decoder = FastDecoder(self.net, self.options.device, self.dtype)

    def tile_size(self) -> int:
        return self.tile or auto_tile(self.loaded.encoder, self.margin, self.options.device, self.precision)

    def estimate(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[float, int]:
        """(seconds, peak working bytes) for a job, from its multiply-adds and a measured GEMM rate.

        Peak bytes cover one tile's encoder and latent table plus the decode buffers, not the caller's
        input and output arrays. Rough by design: it exists to warn before a job of hours or gigabytes.
        """
        tile = self.tile_size()
        rows = [min(in_hw[0], t + tile + self.margin) - max(0, t - self.margin) for t in range(0, in_hw[0], tile)]
        cols = [min(in_hw[1], t + tile + self.margin) - max(0, t - self.margin) for t in range(0, in_hw[1], tile)]
        encoded = sum(rows) * sum(cols)
        conv_macs = sum(m.weight.numel() for m in self.encoder.modules() if isinstance(m, torch.nn.Conv2d))
        table_macs = self.decoder.table_weight.numel()
        decode_macs = 4 * sum(w.numel() for w, _ in self.decoder.hidden)
        macs = encoded * conv_macs + in_hw[0] * in_hw[1] * table_macs + out_hw[0] * out_hw[1] * decode_macs
        span = min(in_hw[0], tile + 2 * self.margin) * min(in_hw[1], tile + 2 * self.margin)
        per_pixel = encoder_bytes_per_pixel(self.loaded.encoder, self.precision)
        itemsize = torch.empty(0, dtype=self.dtype).element_size()
        decode_bytes = (2 * 4 * itemsize + 4) * self.query_batch * 256  # FastDecoder's buffers
        table_bytes = 64 << 20
        # Profiles put the GEMMs at 70-85% of the time; the rest is gathers, encoder layout and I/O.
        return 1.4 * macs / self._mac_rate(), span * per_pixel + table_bytes + decode_bytes

    def _mac_rate(self) -> float:
        """Multiply-adds per second of one decoder-shaped GEMM on this device and precision (measured once)."""
        if getattr(self, "_rate", None) is None:
            a = torch.randn(8192, 256, device=self.options.device).to(self.dtype)
            w = self.decoder.hidden[0][0]
            torch.mm(a, w)
            if self.options.device.type == "cuda":
                torch.cuda.synchronize(self.options.device)
            t0 = time.perf_counter()
            for _ in range(3):
                torch.mm(a, w)
            if self.options.device.type == "cuda":
                torch.cuda.synchronize(self.options.device)
            self._rate = 3 * a.shape[0] * w.numel() / max(time.perf_counter() - t0, 1e-9)
        return self._rate

    @torch.inference_mode()
    def render(
        self,
        rgb: np.ndarray,
        out_hw: tuple[int, int],
        sink: TileSink,
        progress: ProgressCallback | None = None,
        *,
        region: Region | None = None,
    ) -> None:
        """rgb: (H, W, 3) float32 in [0, 1]. Calls `sink` once per finished output block.

        Streams: each input tile is encoded, decoded and dropped, so memory stays bounded whatever the
        size. `region` (x, y, w, h) in input pixels renders that window of the image at `out_hw`; only
        the tiles around the latents it touches are encoded.
        """
        plan = plan_render((int(rgb.shape[0]), int(rgb.shape[1])), out_hw, region, self.tile_size(), self.margin)
        with self._exact_fp32():
            self._render(plan, lambda rb, cb: self._encode_span(rgb, rb.span, cb.span), sink, progress)

    @torch.inference_mode()
    def render_features(
        self,
        feat: torch.Tensor,
        out_hw: tuple[int, int],
        sink: TileSink,
        progress: ProgressCallback | None = None,
        *,
        region: Region | None = None,
    ) -> None:
        """Like `render`, from a feature map made by `encode` (1, C, H, W): no encoder runs."""
        plan = plan_render((int(feat.shape[2]), int(feat.shape[3])), out_hw, region, self.tile_size(), self.margin)
        dev = self.options.device

        def features(rb: Band, cb: Band) -> torch.Tensor:
            return feat[:, :, rb.span[0] : rb.span[1], cb.span[0] : cb.span[1]].to(dev)

        with self._exact_fp32():
            self._render(plan, features, sink, progress)

    @torch.inference_mode()
    def encode(self, rgb: np.ndarray) -> torch.Tensor:
        """The latent feature map of a whole image, (1, C, H, W) in the working precision, on the CPU.

        Encoded tile by tile with the exact margins, so it equals the whole-image encoder's output; it
        takes C * H * W values (256 bytes per input pixel in fp32 for the published models).
        """
        in_h, in_w = rgb.shape[:2]
        tile = self.tile_size()
        feat = None
        with self._exact_fp32():
            for rb in whole_bands(in_h, tile, self.margin):
                for cb in whole_bands(in_w, tile, self.margin):
                    part = self._encode_span(rgb, rb.span, cb.span)
                    if self.dtype != torch.float32 and not torch.isfinite(part).all():
                        raise _NonFinite
                    if feat is None:
                        feat = torch.empty((1, part.shape[1], in_h, in_w), dtype=part.dtype)
                    core = part[:, :, rb.core[0] - rb.span[0] : rb.core[1] - rb.span[0]]
                    core = core[:, :, :, cb.core[0] - cb.span[0] : cb.core[1] - cb.span[0]]
                    feat[:, :, rb.core[0] : rb.core[1], cb.core[0] : cb.core[1]] = core.cpu()
        if feat is None:
            raise InputError(f"cannot encode an empty image ({in_w}x{in_h} pixels)")
        return feat

    def _exact_fp32(self) -> contextlib.AbstractContextManager[None]:
        """fp32 on CUDA without TF32 for the duration (see `_no_tf32`); a no-op elsewhere."""
        return _no_tf32(self.options.device.type == "cuda" and self.dtype == torch.float32)

    def _render(self, plan: RenderPlan, features: Features, sink: TileSink, progress: ProgressCallback | None) -> None:
        """Decode the output tile by tile; `features(row_band, col_band)` gives each band pair's feature map."""
        done, total = 0, plan.out_hw[0] * plan.out_hw[1]
        for rb in plan.row_bands:
            for cb in plan.col_bands:
                feat = features(rb, cb)
                for rows, cols, block in self._decode_tile(feat, rb, cb, plan.ylook, plan.xlook, plan.cell):
                    if self.dtype != torch.float32 and not np.isfinite(block).all():
                        raise _NonFinite
                    sink(rows, cols, block)
                    done += block.shape[0] * block.shape[1]
                    if progress is not None:
                        progress(done, total)
                del feat

    def render_with_fallback(
        self,
        rgb: np.ndarray,
        out_hw: tuple[int, int],
        sink: TileSink,
        progress: ProgressCallback | None = None,
        *,
        region: Region | None = None,
    ) -> None:
        """`render`, retried with half the tile on CUDA out-of-memory and in fp32 on non-finite half output.

        A retry starts the image again; sinks write by position, so blocks written before are overwritten.
        """
        return self.with_fallback(lambda: self.render(rgb, out_hw, sink, progress, region=region))

    def with_fallback(self, job: Callable[[], T]) -> T:
        """Run `job` (a render or an encode), retried with half the tile on CUDA out-of-memory and in fp32
        when half precision gave non-finite values."""
        while True:
            try:
                return job()
            except torch.cuda.OutOfMemoryError:
                tile = self.tile_size()
                if self.options.device.type != "cuda" or tile <= 32:
                    raise
                torch.cuda.empty_cache()
                self.tile = tile // 2
                warnings.warn(f"CUDA out of memory; retrying with tile {self.tile}", stacklevel=3)
            except _NonFinite:
                warnings.warn(f"{self.precision} gave non-finite values; retrying in fp32", stacklevel=3)
                self._set_precision("fp32")

    def _encode_span(self, rgb: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        """Encoder output for input pixels [rows) x [cols), in the working precision, on the device."""
        crop = np.ascontiguousarray(rgb[rows[0] : rows[1], cols[0] : cols[1]])
        x = torch.from_numpy(crop).to(self.options.device).permute(2, 0, 1).unsqueeze(0)
        x = ((x - self.sub.view(1, 3, 1, 1)) / self.div.view(1, 3, 1, 1)).to(self.dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        return self.encoder(x)

    def _decode_tile(
        self,
        feat: torch.Tensor,
        rb: Band,
        cb: Band,
        ylook: AxisLookup,
        xlook: AxisLookup,
        rel_cell: tuple[float, float],
    ) -> Iterator[tuple[slice, slice, np.ndarray]]:
        """Output blocks whose home latents lie in the band pair's core, from the features of its span."""
        dev = self.options.device
        tp = plan_tile(rb, cb, ylook, feat.shape[1], self.query_batch)
        x0, x1 = tp.cols
        feat = feat[:, :, :, x0 - cb.span[0] : x1 - cb.span[0]]
        col_pieces = [(o_c0, o_c1, _lookup(xlook, o_c0, o_c1, x0, dev)) for o_c0, o_c1 in tp.col_pieces]
        for band in tp.bands:
            y0, y1 = band.rows
            table = self.decoder.latent_table(feat[:, :, y0 - rb.span[0] : y1 - rb.span[0]], rel_cell)
            for c0, c1 in band.chunks:
                rows = _lookup(ylook, c0, c1, y0, dev)
                for o_c0, o_c1, cols in col_pieces:
                    pred = self.decoder.decode(table, x1 - x0, rows, cols)
                    out = (pred * self.div + self.sub).clamp_(0, 1)
                    yield slice(c0, c1), slice(o_c0, o_c1), out.cpu().numpy()


def _lookup(look: AxisLookup, start: int, stop: int, origin: int, device: torch.device) -> AxisQueries:
    """Output positions [start, stop) of a lookup as the decoder takes them: (latent index - origin, rel)."""
    idx = torch.from_numpy(look.idx[:, start:stop] - origin).to(device)
    return idx, torch.from_numpy(np.ascontiguousarray(look.rel[:, start:stop])).to(device)


@contextlib.contextmanager
def _no_tf32(active: bool) -> Iterator[None]:
    """fp32 on CUDA means fp32: cuDNN convolutions default to TF32 (10-bit mantissa) on Ampere and later,
    which would put the encoder ~1e-3 away from the official output. The user's settings are restored."""
    if not active:
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class _NonFinite(Exception):
    """A half-precision block overflowed; the caller retries in fp32."""


def render_array(
    renderer: Renderer,
    rgb: np.ndarray,
    out_hw: tuple[int, int],
    progress: ProgressCallback | None = None,
    *,
    region: Region | None = None,
) -> np.ndarray:
    """Whole output as float32 (h, w, 3); convenient, but holds the output in float (4 bytes/value)."""
    out = np.empty((out_hw[0], out_hw[1], 3), dtype=np.float32)

    def sink(rows: slice, cols: slice, block: np.ndarray) -> None:
        out[rows, cols] = block

    renderer.render_with_fallback(rgb, out_hw, sink, progress, region=region)
    return out
