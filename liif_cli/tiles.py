"""Tiles: how an input is cut so that memory stays bounded, and how large a tile may be.

Inputs larger than one tile are split into overlapping input tiles. Each output pixel depends only on
latents within one step of its "home" latent, and each latent only on input pixels within the
encoder's receptive radius, so a tile with `receptive_radius + 2` pixels of margin reproduces the
whole-image result for the output pixels whose home latent lies in its core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .encoders import ENCODERS
from .geometry import AxisLookup


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
