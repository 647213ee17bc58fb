"""Per-axis query geometry: where each output pixel samples the continuous image, and which latents it reads.

Which latent a query reads, and its relative offset, are separable: they depend on the output row (for
y) and column (for x) only, so two 1-D lookups per axis (one per shift) replace the official per-query
`grid_sample`. Everything here is O(output side) work done once per image, and reproduces the official
coordinates bit for bit; regions (windows of the image) are expressed in the same terms.

numpy only (no torch): the onnxruntime backend (`liif_cli.onnxrt`) shares it with the torch engine. The
float32 operations are those of the official code in the same order, so the values are bit for bit
the official ones (`tests/test_engine.py` checks them against torch's `grid_sample`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sizes import Region, check_region

__all__ = ["AxisLookup", "Region", "axis_lookup", "axis_span", "centres", "check_region", "rel_cell"]

_F = np.float32


@dataclass
class AxisLookup:
    """For each output position along one axis and each of the two shifts (-1, +1): latent index and offset."""

    idx: np.ndarray  # (2, n_out) int64
    rel: np.ndarray  # (2, n_out) float32, (query - latent centre) * n_latents
    home: np.ndarray  # (n_out,) int64, latent containing the query


def axis_span(region: Region | None, axis: int, n_lat: int) -> tuple[float, float] | None:
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


def centres(n: int, first: int = 0, count: int | None = None) -> np.ndarray:
    """Pixel centres `-1 + r + 2r * i` (r = 1/n) for i in [first, first + count), float32, in the float order
    of the official `make_coord` (the Python scalars rounded to float32, then two float32 operations)."""
    r = 1.0 / n
    i = np.arange(first, first + (n if count is None else count), dtype=_F)
    return _F(-1 + r) + _F(2 * r) * i


def axis_coords(n_out: int, n_lat: int, span: tuple[float, float] | None = None) -> np.ndarray:
    """Output pixel centres along one axis in the official [-1, 1] space.

    For the whole axis these are `make_coord`'s values, bit for bit, and so are they for a span whose
    pixels are a crop of a whole-image render (so such a region gives that crop exactly, rounding and
    all). Any other span (start, length) in input pixels samples `start + (j + 0.5) * length / n_out`,
    mapped to [-1, 1] in float64.
    """
    aligned = _aligned(n_out, n_lat, span)
    if aligned is not None:
        n, a = aligned
        return centres(n, a, n_out)
    assert span is not None  # `_aligned` takes the whole axis (None) as aligned
    start, length = span
    pixels = start + (np.arange(n_out, dtype=np.float64) + 0.5) * (length / n_out)
    return (pixels * (2 / n_lat) - 1).astype(_F)


def rel_cell(out_hw: tuple[int, int], in_hw: tuple[int, int], region: Region | None) -> tuple[float, float]:
    """The cell of every query, in latent units: one output pixel's size (W/w, H/h) times 2 / latent size.

    Computed as the official code does (float32 `2/h`, then times H) for the whole image and its crops.
    """
    cell = []
    for axis in (0, 1):
        span = axis_span(region, axis, in_hw[axis])
        aligned = _aligned(out_hw[axis], in_hw[axis], span)
        if aligned is not None:
            c = _F(2 / aligned[0])  # the official float32 cell, then times the latent count in float32
            cell.append(float(c * _F(in_hw[axis])))
        else:
            assert span is not None  # as in `axis_coords`
            cell.append(2 * span[1] / out_hw[axis])
    return cell[0], cell[1]


def axis_lookup(n_out: int, n_lat: int, span: tuple[float, float] | None = None) -> AxisLookup:
    """Reproduce the official shifted nearest-latent lookup along one axis, bit for bit.

    The index is `grid_sample`'s nearest (align_corners=False) in its float32 arithmetic:
    `rint((c + 1) * (n / 2) - 0.5)`, rounding half to even as its kernel does (`floor(x + 0.5)` differs
    at ties). It is O(n_out) work, done once per image. `span` restricts the output to a window
    (start, length) of the axis, in input pixels (see `axis_coords`).
    """
    coord = axis_coords(n_out, n_lat, span)
    lat = centres(n_lat)
    r = 2 / n_lat / 2
    idx, rel = [], []
    for v in (-1, 1):
        shifted = np.clip(coord + _F(v * r + 1e-6), _F(-1 + 1e-6), _F(1 - 1e-6))
        picked = np.rint((shifted + _F(1)) * _F(n_lat / 2) - _F(0.5)).astype(np.int64)
        picked[(picked < 0) | (picked >= n_lat)] = 0  # out of range reads zero padding: latent 0 of the ramp
        idx.append(picked)
        rel.append((coord - lat[picked]) * _F(n_lat))
    home = np.clip(np.floor((coord + _F(1)) * _F(n_lat / 2)).astype(np.int64), 0, n_lat - 1)
    return AxisLookup(np.stack(idx), np.stack(rel), home)
