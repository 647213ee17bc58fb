"""Rendering engine: the only place that knows about tiles, precision and devices.

The official code unfolds the whole feature map to 576 channels and runs a 580-wide first layer for
every query. The decoder here gives the same numbers with far less work, using identities that
NOTES.md lists (and `tests/test_engine.py` checks against the oracle `LIIF.query_rgb`):

* The first Linear layer on the unfolded features is a 3x3 convolution of the feature map, so it is
  computed once per latent (a "latent table", 256 values per latent) instead of once per query.
  The cell term is the same for every query of an image and folds into that table's bias.
* Which latent a query reads, and its relative offset, are separable: they depend on the output row
  (for y) and column (for x) only. Two 1-D lookups per axis (one per shift) replace grid_sample.
* The remaining layers are dense GEMMs over large batches (oneDNN with bias and ReLU fused on CPU,
  `addmm` with pre-transposed weights elsewhere) in reused buffers; the output layer, being affine, is
  applied once to the ensemble-weighted activations instead of four times.

Inputs larger than one tile are split into overlapping input tiles. Each output pixel depends only on
latents within one step of its "home" latent, and each latent only on input pixels within the
encoder's receptive radius, so a tile with `receptive_radius + 2` pixels of margin reproduces the
whole-image result for the output pixels whose home latent lies in its core.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .encoders import ENCODERS
from .errors import UsageError
from .models import LIIF, LoadedModel, make_coord

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

ProgressCallback = Callable[[int, int], None]  # (output pixels done, total)
TileSink = Callable[[slice, slice, np.ndarray], None]  # (rows, cols, float32 (r, c, 3) in [0, 1])


# --- device, precision, threads ----------------------------------------------------------------------


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
    """True where oneDNN has native bf16 kernels (AVX512-BF16 / AMX); elsewhere bf16 is emulated and slow."""
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


def set_threads(threads: int | None) -> None:
    """All cores by default (PyTorch's default can be lower inside containers)."""
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(threads)


# --- per-axis query geometry -------------------------------------------------------------------------


@dataclass
class AxisLookup:
    """For each output position along one axis and each of the two shifts (-1, +1): latent index and offset."""

    idx: torch.Tensor  # (2, n_out) int64
    rel: torch.Tensor  # (2, n_out) float32, (query - latent centre) * n_latents
    home: torch.Tensor  # (n_out,) int64, latent containing the query


Region = tuple[float, float, float, float]  # (x, y, w, h) of the continuous image, in input pixels


def check_region(region: Region | None, in_hw: tuple[int, int]) -> Region | None:
    """A region must be a finite, non-empty rectangle inside `[0, in_w] x [0, in_h]`; None is the whole image."""
    if region is None:
        return None
    try:
        x, y, w, h = (float(v) for v in region)
    except (TypeError, ValueError):
        raise UsageError(f"a region is four numbers x, y, w, h; got {region!r}") from None
    in_h, in_w = in_hw
    text = f"{x:g},{y:g},{w:g},{h:g}"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise UsageError(f"region {text}: every value must be a finite number")
    if w <= 0 or h <= 0:
        raise UsageError(f"region {text} is empty: its width and height must be > 0")
    if x < 0 or y < 0 or x + w > in_w * (1 + 1e-9) or y + h > in_h * (1 + 1e-9):
        raise UsageError(f"region {text} is not inside the {in_w}x{in_h} image")
    return x, y, w, h


def _axis_span(region: Region | None, axis: int, n_lat: int) -> tuple[float, float] | None:
    """(start, length) of the region along axis 0 (rows) or 1 (columns); None when it is the whole axis."""
    if region is None:
        return None
    start, length = (region[1], region[3]) if axis == 0 else (region[0], region[2])
    return None if start == 0 and length == n_lat else (start, length)


def _aligned(n_out: int, n_lat: int, span: tuple[float, float] | None) -> tuple[int, int] | None:
    """(n, a) when the span's n_out pixels are pixels [a, a + n_out) of a whole-image render n pixels
    long (n and a integers, to 1e-9), else None. The whole axis is (n_out, 0)."""
    if span is None:
        return n_out, 0
    start, length = span
    whole, first = n_lat * n_out / length, start * n_out / length
    n, a = round(whole), round(first)
    if abs(whole - n) <= 1e-9 * max(1, n) and abs(first - a) <= 1e-9 * max(1, n) and 0 <= a and a + n_out <= n:
        return n, a
    return None


def axis_coords(n_out: int, n_lat: int, span: tuple[float, float] | None = None) -> torch.Tensor:
    """Output pixel centres along one axis in the official [-1, 1] space.

    For the whole axis these are `make_coord`'s values, bit for bit, and so are they for a span whose
    pixels are a crop of a whole-image render (so such a region gives that crop exactly, rounding and
    all). Any other span (start, length) in input pixels samples `start + (j + 0.5) * length / n_out`,
    mapped to [-1, 1] in float64.
    """
    aligned = _aligned(n_out, n_lat, span)
    if aligned is not None:
        n, a = aligned
        r = 1.0 / n
        return -1 + r + (2 * r) * torch.arange(a, a + n_out).float()  # make_coord's float order
    start, length = span
    pixels = start + (torch.arange(n_out, dtype=torch.float64) + 0.5) * (length / n_out)
    return (pixels * (2 / n_lat) - 1).float()


def rel_cell(out_hw: tuple[int, int], in_hw: tuple[int, int], region: Region | None) -> tuple[float, float]:
    """The cell of every query, in latent units: one output pixel's size (W/w, H/h) times 2 / latent size.

    Computed as the official code does (float32 `2/h`, then times H) for the whole image and its crops.
    """
    cell = []
    for axis in (0, 1):
        span = _axis_span(region, axis, in_hw[axis])
        aligned = _aligned(out_hw[axis], in_hw[axis], span)
        if aligned is not None:
            c = torch.ones(1, dtype=torch.float32)
            c *= 2 / aligned[0]
            cell.append(float(c[0] * in_hw[axis]))
        else:
            cell.append(2 * span[1] / out_hw[axis])
    return cell[0], cell[1]


def axis_lookup(n_out: int, n_lat: int, span: tuple[float, float] | None = None) -> AxisLookup:
    """Reproduce the official shifted nearest-latent lookup along one axis, bit for bit.

    The index comes from `grid_sample` itself on a 1-D ramp, so rounding at ties is exactly the
    official kernel's; it is O(n_out) work, done once per image. `span` restricts the output to a
    window (start, length) of the axis, in input pixels (see `axis_coords`).
    """
    coord = axis_coords(n_out, n_lat, span)
    centres = make_coord((n_lat,), flatten=False)[:, 0]
    ramp = torch.arange(n_lat, dtype=torch.float32).view(1, 1, n_lat, 1)
    r = 2 / n_lat / 2
    idx, rel = [], []
    for v in (-1, 1):
        shifted = coord.clone()
        shifted += v * r + 1e-6
        shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
        grid = torch.stack([torch.zeros_like(shifted), shifted], dim=-1).view(1, n_out, 1, 2)
        picked = F.grid_sample(ramp, grid, mode="nearest", align_corners=False).view(n_out).long()
        idx.append(picked)
        rel.append((coord - centres[picked]) * n_lat)
    home = ((coord + 1) * (n_lat / 2)).floor().long().clamp_(0, n_lat - 1)
    return AxisLookup(torch.stack(idx), torch.stack(rel), home)


# --- the fast decoder --------------------------------------------------------------------------------


def _onednn_linear_relu():
    """`torch.ops.mkldnn._linear_pointwise` if this build has it and it computes relu(x W^T + b) correctly."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        x, w, b = torch.randn(8, 16), torch.randn(4, 16), torch.randn(4)
        if torch.allclose(op(x, w, b, "relu", [], ""), torch.relu(x @ w.t() + b), atol=1e-5):
            return op
    except (AttributeError, RuntimeError):
        pass
    return None


class FastDecoder:
    """The LIIF MLP rearranged for speed; holds device/precision copies of the weights.

    In half precision only the three 256x256 layers run in `dtype`: the latent table, the offset terms
    and the 256->3 output layer stay in fp32, where rounding would otherwise show in the image (a bf16
    prediction is only good to about 1/500).
    """

    def __init__(self, net: LIIF, device: torch.device, dtype: torch.dtype):
        linears = [m for m in net.imnet.layers if isinstance(m, torch.nn.Linear)]
        first, last = linears[0], linears[-1]
        n_feat = first.in_features - 4
        channels = n_feat // 9
        w1 = first.weight.detach().float()
        self.device, self.dtype = device, dtype
        self.table_weight = w1[:, :n_feat].reshape(-1, channels, 3, 3).to(device)
        self.first_bias = first.bias.detach().float().to(device)
        self.rel_weight = w1[:, n_feat : n_feat + 2].to(device)  # (256, 2): y, x
        self.cell_weight = w1[:, n_feat + 2 : n_feat + 4].to(device)
        self.hidden = [
            (m.weight.detach().t().contiguous().to(device, dtype), m.bias.detach().to(device, dtype))
            for m in linears[1:-1]
        ]
        self.out_weight = last.weight.detach().t().contiguous().float().to(device)
        self.out_bias = last.bias.detach().float().to(device)
        self._workspace: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor] | None = None
        self._shifted: tuple[torch.Tensor, torch.Tensor | None] | None = None
        # oneDNN's linear with bias and ReLU fused in one pass (CPU only); plain addmm where it is missing.
        self._fused_linear = _onednn_linear_relu() if device.type == "cpu" else None
        self._hidden_oi = [wt.t().contiguous() for wt, _ in self.hidden] if self._fused_linear else []
        self._reuse_outputs = device.type == "cpu" and dtype == torch.bfloat16 and len(self.hidden) >= 2

    def latent_table(self, feat: torch.Tensor, rel_cell: tuple[float, float]) -> torch.Tensor:
        """First layer minus the offset term, per latent: (H*W, 256) fp32, channels last."""
        cell = torch.tensor(rel_cell, dtype=torch.float32, device=self.device)
        bias = self.first_bias + self.cell_weight @ cell
        # Channels-last in and out, so that the (latents, 256) view below needs no copy.
        feat = feat.float().contiguous(memory_format=torch.channels_last)
        table = F.conv2d(feat, self.table_weight, bias, padding=1)[0]
        return table.permute(1, 2, 0).reshape(-1, table.shape[0])

    def decode(
        self,
        table: torch.Tensor,
        table_width: int,
        rows: tuple[torch.Tensor, torch.Tensor],
        cols: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """Predictions for a block of output pixels, in normalized model space: (R, C, 3) float32.

        rows = (idx (2,R) into the table's rows, rel (2,R)); cols likewise for columns. Intermediate
        activations live in reused buffers: fresh large tensors cost a page fault per 4 KiB page, which
        on a VM can take longer than the matrix products themselves.
        """
        (ry_idx, ry_rel), (cx_idx, cx_rel) = rows, cols
        n_rows, n_cols = ry_idx.shape[1], cx_idx.shape[1]
        pixels = n_rows * n_cols
        queries = 4 * pixels
        first, converted, mixed = self._buffers(pixels)
        h = self._first_layer(table, table_width, rows, cols, first[:queries])
        h = self._hidden_layers(h, converted[:queries] if converted is not None else None)
        # Local ensemble: each prediction weighted by the area of its diagonal opposite. The output layer
        # is affine, so it is applied once to the weighted mean of the four last activations.
        area = (ry_rel.view(2, 1, n_rows, 1) * cx_rel.view(1, 2, 1, n_cols)).abs_() + 1e-9
        weight = (area.flip(0, 1) / area.sum(dim=(0, 1))).unsqueeze(-1)  # (row shift, col shift, R, C, 1)
        if h.dtype != torch.float32:
            h = converted[:queries].copy_(h)  # one conversion pass: mixed-dtype ops would copy per operand
        h = h.view(2, n_rows, 2, n_cols, -1)  # queries are ordered (row shift, r, column shift, c)
        acc = torch.mul(h[0, :, 0], weight[0, 0], out=mixed[:pixels].view(n_rows, n_cols, -1))
        for a, b in ((0, 1), (1, 0), (1, 1)):
            acc.addcmul_(h[a, :, b], weight[a, b])
        pred = torch.addmm(
            weight.sum(dim=(0, 1)).view(pixels, 1) * self.out_bias, acc.view(pixels, -1), self.out_weight
        )
        return pred.view(n_rows, n_cols, -1)

    def _hidden_layers(self, h: torch.Tensor, spare: torch.Tensor | None) -> torch.Tensor:
        """relu(h W^T + b) through the three 256x256 layers.

        In bf16 on the CPU every layer writes into a reused buffer, ReLU being the int16 clamp: the first
        two into the halves of `spare` (the fp32 buffer the ensemble reads later, idle until then), the
        last back into `h`'s own storage. A fresh (4 x query_batch, 256) output per
        layer costs a page fault per 4 KiB page (8k per layer, serialized in the kernel when two threads
        fault), which measured 17% of the three GEMMs' CPU time on one thread and more on two. oneDNN's
        fused linear has no out= form, and in fp32 it still beats addmm (MKL) by more than the faults cost,
        so fp32 keeps it (and with it its exact results).
        """
        if self._reuse_outputs and spare is not None:
            halves = spare.view(self.dtype).view(2, *h.shape).unbind(0)
            outs = [halves[i % 2] for i in range(len(self.hidden) - 1)] + [h]  # never a layer's own input
            for (wt, b), out in zip(self.hidden, outs, strict=True):
                h = _relu_(torch.addmm(b, h, wt, out=out))
            return h
        for i, (wt, b) in enumerate(self.hidden):
            if self._fused_linear is not None:
                h = self._fused_linear(h, self._hidden_oi[i], b, "relu", [], "")
            else:
                h = torch.addmm(b, h, wt).relu_()
        return h

    def _first_layer(self, table, table_width, rows, cols, out: torch.Tensor) -> torch.Tensor:
        """relu(table row + row offset term + column offset term) for the 4 x R x C queries, written
        in the working precision into `out` ((4*R*C, 256), queries ordered (row shift, r, column shift, c)).

        The column side is prepared first, on the few latent rows the block reads: a "column-shifted
        table" (latent row, column shift, output column) = table row + column offset term, summed in
        fp32 and then rounded to the working precision; when upscaling it is about 1/(2 x scale) of the
        queries' size.
        Then three passes over half-size values, each one large operation (many small ones stall when
        the cores are shared): a row gather of that table, the row offset terms added in place, ReLU.
        The old order (fp32 gather, two adds, ReLU, conversion) took five passes over fp32 values.
        In fp32 the result is the official sum up to the order of two fp32 adds.
        """
        (ry_idx, ry_rel), (cx_idx, cx_rel) = rows, cols
        n_rows, n_cols = ry_idx.shape[1], cx_idx.shape[1]
        width = table.shape[1]
        # Only the latent rows some query reads (at most 2 per output row, so never larger than `out`,
        # even when downscaling skips most latent rows).
        used, which = torch.unique(ry_idx, return_inverse=True)
        flat = (used.view(-1, 1) * table_width + cx_idx.view(1, -1)).view(-1)
        shifted, shifted_half = self._shifted_buffers(flat.shape[0], width)
        torch.index_select(table, 0, flat, out=shifted)
        shifted = shifted.view(-1, 2, n_cols, width)
        shifted += (cx_rel.view(2, n_cols, 1) * self.rel_weight[:, 1]).view(1, 2, n_cols, width)
        if shifted_half is not None:
            shifted = shifted_half.view(shifted.shape).copy_(shifted)
        shifted = shifted.view(used.shape[0], -1)
        _gather_rows(shifted, which.view(-1), out.view(2 * n_rows, -1))
        grid = out.view(2, n_rows, 2, n_cols, width)
        grid += (ry_rel.view(2, n_rows, 1) * self.rel_weight[:, 0]).to(out.dtype).view(2, n_rows, 1, 1, width)
        return _relu_(out)

    def _shifted_buffers(self, rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(fp32, working-precision copy or None) column-shifted table rows, grown on demand and reused:
        a fresh tensor per block would pay its page faults inside the gather."""
        if self._shifted is None or self._shifted[0].shape[0] < rows:
            fp32 = torch.empty(rows, width, device=self.device)
            half = None if self.dtype == torch.float32 else torch.empty_like(fp32, dtype=self.dtype)
            self._shifted = (fp32, half)
        fp32, half = self._shifted
        return fp32[:rows], None if half is None else half[:rows]

    def _buffers(self, pixels: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(first-layer activations in the working precision, an fp32 copy of the last activations in
        half precision or None, fp32 ensemble mix) for `pixels` output pixels (4 queries each), grown on
        demand and then reused."""
        if self._workspace is None or self._workspace[2].shape[0] < pixels:
            width = self.out_weight.shape[0]
            first = torch.empty(4 * pixels, width, device=self.device, dtype=self.dtype)
            converted = None if self.dtype == torch.float32 else torch.empty_like(first, dtype=torch.float32)
            self._workspace = (first, converted, torch.empty(pixels, width, device=self.device))
        return self._workspace


def _relu_(x: torch.Tensor) -> torch.Tensor:
    """In-place ReLU. For CPU bf16/fp16, as an integer clamp of the bits: the sign is the top bit, so
    max(bits as int16, 0) zeroes exactly the negative values (ATen's half-precision ReLU converts
    every value to fp32 and back, ~7x slower). Unlike torch.relu it zeroes NaNs with the sign bit set;
    the fp32 path, which must stay exact, uses torch.relu_."""
    if x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16):
        x.view(torch.int16).clamp_min_(0)
        return x
    return x.relu_()


def _gather_rows(src: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> None:
    """out[i] = src[index[i]] for long contiguous rows. On the CPU the rows are copied as int32 words:
    ATen's index_select copies floating-point rows element by element, integer rows with memcpy
    (measured: 64 rows of 512 KiB, about 60x faster)."""
    if src.device.type == "cpu" and src.shape[-1] * src.element_size() % 4 == 0:
        src, out = src.view(torch.int32), out.view(torch.int32)
    torch.index_select(src, 0, index, out=out)


# --- tiles -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """One tile's extent along an axis: the core it owns, and the padded span it encodes."""

    core: tuple[int, int]  # latents [start, stop) whose home queries this tile renders
    span: tuple[int, int]  # input pixels [start, stop) encoded (core plus margin, clipped to the image)
    out: tuple[int, int]  # output positions [start, stop) whose home latent lies in the core


def split_axis(n_lat: int, lookup: AxisLookup, tile: int, margin: int) -> list[Band]:
    """Bands of `tile` latents laid from the first latent the output calls home (0 for a whole image), so a
    small region costs a few tiles wherever it lies."""
    bands = []
    first, last = int(lookup.home.min()), int(lookup.home.max()) + 1
    for start in range(first, last, tile):
        stop = min(last, start + tile)
        inside = ((lookup.home >= start) & (lookup.home < stop)).nonzero()
        if len(inside) == 0:  # downscaling: no output position calls this latent home
            continue
        out = (int(inside[0]), int(inside[-1]) + 1)
        bands.append(Band((start, stop), (max(0, start - margin), min(n_lat, stop + margin)), out))
    return bands


_CPU_TILE_BUDGET = 512 << 20  # bytes for one tile's encoder: keeps CPU peaks near 1 GiB whatever the image


def available_memory(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 4 << 30


def encoder_bytes_per_pixel(encoder: str, precision: str) -> int:
    """Peak memory per encoded input pixel, from the encoder's descriptor (the largest known for others)."""
    if encoder in ENCODERS:
        return ENCODERS[encoder].memory_per_pixel(precision)
    return max(spec.memory_per_pixel(precision) for spec in ENCODERS.values())


def auto_tile(encoder: str, margin: int, device: torch.device, precision: str) -> int:
    """Largest square core whose padded tile's encoder fits the budget (a quarter of free memory on GPUs)."""
    per_pixel = encoder_bytes_per_pixel(encoder, precision)
    free = available_memory(device) // 4
    side = int(math.sqrt(min(free, _CPU_TILE_BUDGET if device.type != "cuda" else free) / per_pixel)) - 2 * margin
    if side < 2 * margin:
        # Deep encoders (RDN: 133 px margin) would spend most of their time on margins: allow a core of
        # twice the margin (at most 2.25x the pixels encoded) where free memory permits.
        side = min(2 * margin, int(math.sqrt(free / per_pixel)) - 2 * margin)
    return max(32, min(side, 4096))


# --- rendering ---------------------------------------------------------------------------------------


@dataclass
class RenderOptions:
    device: torch.device
    precision: str = "fp32"  # resolved: fp32 | bf16 | fp16
    tile: int | None = None  # core size in input pixels; None = from free memory
    query_batch: int = 16384  # output pixels decoded per GEMM chain (x4 queries)


# PyTorch runs a CPU convolution of at most this many input values through its own kernel, and larger
# ones through oneDNN; the two round differently. Latent-table slices at or under it are widened to the
# tile's whole span, so a region and the whole image compute a latent's table entry the same way (and a
# region render is then that crop of the whole render, bit for bit).
_SMALL_CONV = 20480


class Renderer:
    """A model prepared for one device and precision; renders any input size into any output size."""

    def __init__(self, loaded: LoadedModel, options: RenderOptions):
        self.loaded = loaded
        self.options = options
        self.net = loaded.net.to(options.device).eval()
        self.margin = self.net.receptive_radius + 2
        self._set_precision(options.precision)
        norm = loaded.normalization
        self.sub = torch.tensor(norm.sub, dtype=torch.float32, device=options.device)
        self.div = torch.tensor(norm.div, dtype=torch.float32, device=options.device)

    def _set_precision(self, precision: str) -> None:
        self.options.precision = precision
        self.dtype = _DTYPES[precision]
        # The engine runs its own copy of the encoder, channels-last (oneDNN's native layout: ~1.5x faster
        # convolutions on CPU) and in the working precision; the model's own weights stay as loaded.
        self.encoder = copy.deepcopy(self.net.encoder).to(self.dtype, memory_format=torch.channels_last)
        self.decoder = FastDecoder(self.net, self.options.device, self.dtype)

    def tile_size(self) -> int:
        opt = self.options
        return opt.tile or auto_tile(self.loaded.encoder, self.margin, opt.device, opt.precision)

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
        per_pixel = encoder_bytes_per_pixel(self.loaded.encoder, self.options.precision)
        decode_bytes = 3 * 4 * self.options.query_batch * 256 * 4
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
        in_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
        with self._exact_fp32():
            self._render(in_hw, out_hw, sink, progress, region, lambda rb, cb: self._encode_span(rgb, rb.span, cb.span))

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
        in_hw = (int(feat.shape[2]), int(feat.shape[3]))
        dev = self.options.device

        def features(rb: Band, cb: Band) -> torch.Tensor:
            return feat[:, :, rb.span[0] : rb.span[1], cb.span[0] : cb.span[1]].to(dev)

        with self._exact_fp32():
            self._render(in_hw, out_hw, sink, progress, region, features)

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
            for r0 in range(0, in_h, tile):
                rb = Band(
                    (r0, min(in_h, r0 + tile)), (max(0, r0 - self.margin), min(in_h, r0 + tile + self.margin)), (0, 0)
                )
                for c0 in range(0, in_w, tile):
                    cb = Band(
                        (c0, min(in_w, c0 + tile)),
                        (max(0, c0 - self.margin), min(in_w, c0 + tile + self.margin)),
                        (0, 0),
                    )
                    part = self._encode_span(rgb, rb.span, cb.span)
                    if self.dtype != torch.float32 and not torch.isfinite(part).all():
                        raise _NonFinite
                    if feat is None:
                        feat = torch.empty((1, part.shape[1], in_h, in_w), dtype=part.dtype)
                    core = part[:, :, rb.core[0] - rb.span[0] : rb.core[1] - rb.span[0]]
                    core = core[:, :, :, cb.core[0] - cb.span[0] : cb.core[1] - cb.span[0]]
                    feat[:, :, rb.core[0] : rb.core[1], cb.core[0] : cb.core[1]] = core.cpu()
        return feat

    def _exact_fp32(self):
        """fp32 on CUDA without TF32 for the duration (see `_no_tf32`); a no-op elsewhere."""
        return _no_tf32(self.options.device.type == "cuda" and self.dtype == torch.float32)

    def _render(self, in_hw, out_hw, sink: TileSink, progress, region, features) -> None:
        """Decode the output tile by tile; `features(row_band, col_band)` gives each band pair's feature map."""
        region = check_region(region, in_hw)
        (in_h, in_w), (out_h, out_w) = in_hw, out_hw
        ylook = axis_lookup(out_h, in_h, _axis_span(region, 0, in_h))
        xlook = axis_lookup(out_w, in_w, _axis_span(region, 1, in_w))
        tile = self.tile_size()
        row_bands = split_axis(in_h, ylook, tile, self.margin)
        col_bands = split_axis(in_w, xlook, tile, self.margin)
        cell = rel_cell(out_hw, in_hw, region)
        done, total = 0, out_h * out_w
        for rb in row_bands:
            for cb in col_bands:
                feat = features(rb, cb)
                for rows, cols, block in self._decode_tile(feat, rb, cb, ylook, xlook, cell):
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

    def with_fallback(self, job: Callable[[], object]):
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
                self.options.tile = tile // 2
                warnings.warn(f"CUDA out of memory; retrying with tile {self.options.tile}", stacklevel=3)
            except _NonFinite:
                warnings.warn(f"{self.options.precision} gave non-finite values; retrying in fp32", stacklevel=3)
                self._set_precision("fp32")

    def _encode_span(self, rgb: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        """Encoder output for input pixels [rows) x [cols), in the working precision, on the device."""
        crop = np.ascontiguousarray(rgb[rows[0] : rows[1], cols[0] : cols[1]])
        x = torch.from_numpy(crop).to(self.options.device).permute(2, 0, 1).unsqueeze(0)
        x = ((x - self.sub.view(1, 3, 1, 1)) / self.div.view(1, 3, 1, 1)).to(self.dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        return self.encoder(x)

    def _decode_tile(
        self, feat: torch.Tensor, rb: Band, cb: Band, ylook: AxisLookup, xlook: AxisLookup, rel_cell
    ) -> Iterator[tuple[slice, slice, np.ndarray]]:
        """Output blocks whose home latents lie in the band pair's core, from the features of its span."""
        dev = self.options.device
        # Columns: the table is needed for the core plus one latent each side; the convolution behind it
        # needs one more, all inside the margin.
        x0, x1 = max(cb.span[0], cb.core[0] - 2), min(cb.span[1], cb.core[1] + 2)
        channels, span_rows = feat.shape[1], rb.span[1] - rb.span[0]
        if channels * span_rows * (x1 - x0) <= _SMALL_CONV:
            x0, x1 = cb.span
        feat = feat[:, :, :, x0 - cb.span[0] : x1 - cb.span[0]]
        o_c0, o_c1 = cb.out
        cols = (xlook.idx[:, o_c0:o_c1].to(dev) - x0, xlook.rel[:, o_c0:o_c1].to(dev))
        # Rows: the latent table (1 KiB per latent) is built a band of latent rows at a time, so its
        # memory is bounded however large the tile.
        band = max(1, (64 << 20) // (1024 * (x1 - x0)))
        chunk_rows = max(1, self.options.query_batch // max(1, o_c1 - o_c0))
        for a in range(rb.core[0], rb.core[1], band):
            b = min(rb.core[1], a + band)
            r0, r1 = (int(v) for v in torch.searchsorted(ylook.home, torch.tensor([a, b])))
            r0, r1 = max(r0, rb.out[0]), min(r1, rb.out[1])
            if r0 >= r1:
                continue
            y0, y1 = max(rb.span[0], a - 2), min(rb.span[1], b + 2)
            if channels * (y1 - y0) * (x1 - x0) <= _SMALL_CONV:
                y0, y1 = rb.span
            table = self.decoder.latent_table(feat[:, :, y0 - rb.span[0] : y1 - rb.span[0]], rel_cell)
            for c0 in range(r0, r1, chunk_rows):
                c1 = min(r1, c0 + chunk_rows)
                rows = (ylook.idx[:, c0:c1].to(dev) - y0, ylook.rel[:, c0:c1].to(dev))
                pred = self.decoder.decode(table, x1 - x0, rows, cols)
                out = (pred * self.div + self.sub).clamp_(0, 1)
                yield slice(c0, c1), slice(o_c0, o_c1), out.cpu().numpy()


@contextlib.contextmanager
def _no_tf32(active: bool):
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
    renderer: Renderer, rgb: np.ndarray, out_hw: tuple[int, int], progress=None, *, region: Region | None = None
) -> np.ndarray:
    """Whole output as float32 (h, w, 3); convenient, but holds the output in float (4 bytes/value)."""
    out = np.empty((out_hw[0], out_hw[1], 3), dtype=np.float32)

    def sink(rows: slice, cols: slice, block: np.ndarray) -> None:
        out[rows, cols] = block

    renderer.render_with_fallback(rgb, out_hw, sink, progress, region=region)
    return out
