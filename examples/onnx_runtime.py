"""Upscale an image with a LIIF ONNX export, using numpy, pillow and onnxruntime only (no torch, no liif).

    liif export edsr-baseline -o edsr-onnx          # once, where liif and torch are installed
    python onnx_runtime.py edsr-onnx photo.png --size 1000x750 -o big.png

Every step the graphs leave to the runtime is here, as docs/onnx.md describes it: normalization, the
per-axis lookups (which latent each output row and column reads, and its offset), tiles with the
manifest's margin (exact: every output pixel sees the same latents as in a whole-image run), and the
8-bit rounding. The output equals `liif upscale --precision fp32` to within one level. RGB only: an alpha
channel is dropped, a gray image is upscaled as RGB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

F32 = np.float32


def centres(n: int, first: int, count: int) -> np.ndarray:
    """Pixel centres over [-1, 1] in the official float32 order: -1 + r + 2r * i (r = 1/n)."""
    r = 1.0 / n
    return F32(-1 + r) + F32(2 * r) * np.arange(first, first + count, dtype=F32)


def axis_lookup(n_out: int, n_lat: int):
    """(idx (2, n_out), rel (2, n_out), home (n_out,)): the two nearest latents of each output position
    along one axis (shift -1 and +1), their offsets in latent units, and the latent containing it."""
    coord = centres(n_out, 0, n_out)
    lat = centres(n_lat, 0, n_lat)
    r = 2 / n_lat / 2
    idx, rel = [], []
    for v in (-1, 1):
        shifted = np.clip(coord + F32(v * r + 1e-6), F32(-1 + 1e-6), F32(1 - 1e-6))
        # grid_sample's nearest: round half to even, in float32 (floor(x + 0.5) differs at ties)
        picked = np.rint((shifted + F32(1)) * F32(n_lat / 2) - F32(0.5)).astype(np.int64)
        picked[(picked < 0) | (picked >= n_lat)] = 0
        idx.append(picked)
        rel.append((coord - lat[picked]) * F32(n_lat))
    home = np.clip(np.floor((coord + F32(1)) * F32(n_lat / 2)).astype(np.int64), 0, n_lat - 1)
    return np.stack(idx), np.stack(rel), home


def bands(n_lat: int, home: np.ndarray, tile: int, margin: int):
    """(core, span, out) per tile along an axis: latents [core) own the output positions [out) whose home
    latent lies in them; input pixels [span) (core plus margin) are encoded for them."""
    for start in range(int(home.min()), int(home.max()) + 1, tile):
        stop = start + tile
        inside = np.flatnonzero((home >= start) & (home < stop))
        if len(inside):
            span = (max(0, start - margin), min(n_lat, stop + margin))
            yield (start, min(stop, n_lat)), span, (int(inside[0]), int(inside[-1]) + 1)


def upscale(export: Path, rgb: np.ndarray, out_hw: tuple[int, int], tile: int = 256, block: int = 2048) -> np.ndarray:
    """rgb (H, W, 3) float32 in [0, 1] -> (h, w, 3) float32 in [0, 1]."""
    manifest = json.loads((export / "manifest.json").read_text())
    sessions = {
        name: ort.InferenceSession(str(export / file), providers=ort.get_available_providers())
        for name, file in manifest["graphs"].items()
    }
    sub = np.asarray(manifest["normalization"]["sub"], F32)
    div = np.asarray(manifest["normalization"]["div"], F32)
    margin = int(manifest["margin"])
    (in_h, in_w), (out_h, out_w) = rgb.shape[:2], out_hw
    ys, xs = axis_lookup(out_h, in_h), axis_lookup(out_w, in_w)
    # the cell of every query in latent units, as the official code computes it (float32 2/h, times H)
    cell = np.asarray([F32(2 / out_h) * F32(in_h), F32(2 / out_w) * F32(in_w)], F32)
    out = np.empty((out_h, out_w, 3), F32)
    for _core, (ry0, ry1), (or0, or1) in bands(in_h, ys[2], tile, margin):
        for _core, (cx0, cx1), (oc0, oc1) in bands(in_w, xs[2], tile, margin):
            x = ((rgb[ry0:ry1, cx0:cx1] - sub) / div).transpose(2, 0, 1)[None]
            feat = sessions["encoder"].run(None, {"image": np.ascontiguousarray(x)})[0]
            table = sessions["table"].run(None, {"features": feat, "rel_cell": cell})[0]
            col_idx = xs[0][:, oc0:oc1] - cx0
            col_rel = np.ascontiguousarray(xs[1][:, oc0:oc1])
            rows = max(1, block // (oc1 - oc0))
            for r0 in range(or0, or1, rows):
                r1 = min(or1, r0 + rows)
                feeds = {
                    "table": table,
                    "row_idx": ys[0][:, r0:r1] - ry0,
                    "row_rel": np.ascontiguousarray(ys[1][:, r0:r1]),
                    "col_idx": col_idx,
                    "col_rel": col_rel,
                }
                pred = sessions["query"].run(None, feeds)[0]
                out[r0:r1, oc0:oc1] = np.clip(pred * div + sub, 0, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="folder written by 'liif export --format onnx'")
    parser.add_argument("input", type=Path)
    parser.add_argument("--size", required=True, help="output WIDTHxHEIGHT")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output image (PNG, ...)")
    parser.add_argument("--tile", type=int, default=256, help="tile core in input pixels [256]")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    rgb = np.asarray(Image.open(args.input).convert("RGB"), F32) / F32(255)
    out = upscale(args.export, rgb, (h, w), tile=args.tile)
    Image.fromarray(np.rint(out * F32(255)).astype(np.uint8)).save(args.output)


if __name__ == "__main__":
    main()
