"""Tiles: how an input is cut so that memory stays bounded, and how large a tile may be.

Inputs larger than one tile are split into overlapping input tiles. Each output pixel depends only on
latents within one step of its "home" latent, and each latent only on input pixels within the
encoder's receptive radius, so a tile with `receptive_radius + 2` pixels of margin reproduces the
whole-image result for the output pixels whose home latent lies in its core.

No torch here (torch is imported only to ask a CUDA device for its free memory): the onnxruntime backend
cuts tiles with the same code as the torch engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .encoders import ENCODERS
from .geometry import AxisLookup, Region

ProgressCallback = Callable[[int, int], None]  # (output pixels done, total)
TileSink = Callable[[slice, slice, np.ndarray], None]  # (rows, cols, float32 (r, c, 3) in [0, 1])
"""What every renderer (the torch engine, the onnxruntime backend) reports progress to and writes blocks into."""


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
        inside = np.flatnonzero((lookup.home >= start) & (lookup.home < stop))
        if len(inside) == 0:  # downscaling: no output position calls this latent home
            continue
        out = (int(inside[0]), int(inside[-1]) + 1)
        bands.append(Band((start, stop), (max(0, start - margin), min(n_lat, stop + margin)), out))
    return bands


_CPU_TILE_BUDGET = 512 << 20  # bytes for one tile's encoder: keeps CPU peaks near 1 GiB whatever the image


class DeviceLike(Protocol):
    """What tile sizing asks of a device: a torch.device, or the onnxruntime backend's `RuntimeDevice`."""

    @property
    def type(self) -> str: ...  # cpu | cuda | ...

    @property
    def index(self) -> int | None: ...  # cuda:N


def available_memory(device: DeviceLike) -> int:
    """Free bytes: of the CUDA device, else of the machine."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device.index)  # None: the current device, as torch.device('cuda')
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


def auto_tile(encoder: str, margin: int, device: DeviceLike, precision: str) -> int:
    """Largest square core whose padded tile's encoder fits the budget (a quarter of free memory on GPUs)."""
    per_pixel = encoder_bytes_per_pixel(encoder, precision)
    free = available_memory(device) // 4
    side = int(math.sqrt(min(free, _CPU_TILE_BUDGET if device.type != "cuda" else free) / per_pixel)) - 2 * margin
    if side < 2 * margin:
        # Deep encoders (RDN: 133 px margin) would spend most of their time on margins: allow a core of
        # twice the margin (at most 2.25x the pixels encoded) where free memory permits.
        side = min(2 * margin, int(math.sqrt(free / per_pixel)) - 2 * margin)
    return max(32, min(side, 4096))


def whole_bands(n: int, tile: int, margin: int) -> list[Band]:
    """Bands of `tile` pixels covering an axis of n, each with `margin` on both sides (clipped): for
    encoding a whole image tile by tile. Their `out` is unused (empty)."""
    return [
        Band((a, min(n, a + tile)), (max(0, a - margin), min(n, a + tile + margin)), (0, 0)) for a in range(0, n, tile)
    ]


# PyTorch runs a CPU convolution of at most this many input values through its own kernel, and larger
# ones through oneDNN; the two round differently. Latent-table slices at or under it are widened to the
# tile's whole span, so a region and the whole image compute a latent's table entry the same way (and a
# region render is then that crop of the whole render, bit for bit).
SMALL_CONV = 20480


@dataclass(frozen=True)
class RenderPlan:
    """What a render decodes where: per-axis lookups, tile bands and the query cell, for any backend."""

    ylook: AxisLookup
    xlook: AxisLookup
    row_bands: list[Band]
    col_bands: list[Band]
    cell: tuple[float, float]
    out_hw: tuple[int, int]


def plan_render(
    in_hw: tuple[int, int], out_hw: tuple[int, int], region: Region | None, tile: int, margin: int
) -> RenderPlan:
    """The lookups and tiles of rendering an input (or latent grid) of in_hw at out_hw (of `region`)."""
    from .geometry import axis_lookup, axis_span, check_region, rel_cell

    region = check_region(region, in_hw)
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    ylook = axis_lookup(out_h, in_h, axis_span(region, 0, in_h))
    xlook = axis_lookup(out_w, in_w, axis_span(region, 1, in_w))
    return RenderPlan(
        ylook,
        xlook,
        split_axis(in_h, ylook, tile, margin),
        split_axis(in_w, xlook, tile, margin),
        rel_cell(out_hw, in_hw, region),
        out_hw,
    )


@dataclass(frozen=True)
class TableBand:
    """Latent rows [y0, y1) whose table is built at once, and the output row chunks [c0, c1) read from it."""

    rows: tuple[int, int]
    chunks: list[tuple[int, int]]


@dataclass(frozen=True)
class TilePlan:
    """How one band pair's features are decoded: the latent columns [x0, x1) the table covers, the output
    column pieces, and the table bands (rows) with their output row chunks. Positions are absolute."""

    cols: tuple[int, int]
    col_pieces: list[tuple[int, int]]
    bands: list[TableBand]


def plan_tile(rb: Band, cb: Band, ylook: AxisLookup, channels: int, batch: int) -> TilePlan:
    """Decoder blocks of at most about `batch` output pixels for the output whose home latents lie in the
    band pair's core; the latent table is built a band of latent rows at a time (1 KiB per latent, bands of
    at most 64 MiB), so its memory is bounded however large the tile."""
    # Columns: the table is needed for the core plus one latent each side; the convolution behind it
    # needs one more, all inside the margin.
    x0, x1 = max(cb.span[0], cb.core[0] - 2), min(cb.span[1], cb.core[1] + 2)
    span_rows = rb.span[1] - rb.span[0]
    if channels * span_rows * (x1 - x0) <= SMALL_CONV:
        x0, x1 = cb.span
    # A decoder block is whole output rows, or pieces of one row when a row alone is longer than
    # `batch`: the decoder's buffers follow the block size, never the image width.
    pieces = [(c, min(cb.out[1], c + batch)) for c in range(cb.out[0], cb.out[1], batch)]
    band = max(1, (64 << 20) // (1024 * (x1 - x0)))
    chunk_rows = max(1, batch // max(1, cb.out[1] - cb.out[0]))
    bands = []
    for a in range(rb.core[0], rb.core[1], band):
        b = min(rb.core[1], a + band)
        r0, r1 = (int(v) for v in np.searchsorted(ylook.home, [a, b]))
        r0, r1 = max(r0, rb.out[0]), min(r1, rb.out[1])
        if r0 >= r1:
            continue
        y0, y1 = max(rb.span[0], a - 2), min(rb.span[1], b + 2)
        if channels * (y1 - y0) * (x1 - x0) <= SMALL_CONV:
            y0, y1 = rb.span
        bands.append(TableBand((y0, y1), [(c, min(r1, c + chunk_rows)) for c in range(r0, r1, chunk_rows)]))
    return TilePlan((x0, x1), pieces, bands)
