"""Per-axis query geometry: where each output pixel samples the continuous image, and which latents it reads.

Which latent a query reads, and its relative offset, are separable: they depend on the output row (for
y) and column (for x) only, so two 1-D lookups per axis (one per shift) replace the official per-query
`grid_sample`. Everything here is O(output side) work done once per image, and reproduces the official
coordinates bit for bit; regions (windows of the image) are expressed in the same terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .models import make_coord
from .sizes import Region, check_region

__all__ = ["AxisLookup", "Region", "axis_lookup", "axis_span", "check_region", "rel_cell"]


@dataclass
class AxisLookup:
    """For each output position along one axis and each of the two shifts (-1, +1): latent index and offset."""

    idx: torch.Tensor  # (2, n_out) int64
    rel: torch.Tensor  # (2, n_out) float32, (query - latent centre) * n_latents
    home: torch.Tensor  # (n_out,) int64, latent containing the query


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
        span = axis_span(region, axis, in_hw[axis])
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
