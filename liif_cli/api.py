"""Python API.

    from liif_cli import load_model
    up = load_model("edsr-baseline")                 # downloads and verifies on first use
    big = up.upscale(Image.open("in.png"), scale=7.5)  # PIL in, PIL out (or numpy in, numpy out)

Everything the CLI does goes through here; the engine underneath owns tiles, precision and devices.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import engine
from .errors import UsageError
from .models import LoadedModel, load_checkpoint

ProgressCallback = engine.ProgressCallback


def output_size(
    in_hw: tuple[int, int],
    *,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    width: int | None = None,
    height: int | None = None,
) -> tuple[int, int]:
    """Resolve exactly one of scale / size (w, h) / width / height into an output (h, w).

    `scale` may be one number or (sx, sy); sizes round to the nearest pixel and are at least 1.
    """
    given = [v is not None for v in (scale, size, width, height)]
    if sum(given) != 1:
        raise UsageError("give exactly one of scale, size, width or height")
    h, w = in_hw
    if scale is not None:
        sx, sy = (scale, scale) if not isinstance(scale, tuple | list) else scale
        for s in (sx, sy):
            if not isinstance(s, int | float) or not math.isfinite(s) or s <= 0:
                raise UsageError(f"scale must be a finite number > 0, got {s!r}")
        out = (round(h * sy), round(w * sx))
    elif size is not None:
        out = (int(size[1]), int(size[0]))
    elif width is not None:
        out = (round(h * width / w), int(width))
    else:
        out = (int(height), round(w * height / h))
    if min(out) < 1:
        raise UsageError(f"output size {out[1]}x{out[0]} is empty")
    return max(1, out[0]), max(1, out[1])


class Upscaler:
    """A loaded model on a device, at a precision: call it for as many images as you like."""

    def __init__(self, loaded: LoadedModel, options: engine.RenderOptions, name: str = ""):
        self.loaded = loaded
        self.name = name
        self.renderer = engine.Renderer(loaded, options)

    @property
    def device(self) -> torch.device:
        return self.renderer.options.device

    @property
    def precision(self) -> str:
        return self.renderer.options.precision

    def upscale_video(self, src: str | Path, dst: str | Path, **options):
        """Upscale a video file into `dst`, streaming; options and errors as `liif_cli.video.upscale_video`
        (out_hw= or size=, codec=, crf=, pix_fmt=, frames=, time=, progress=, warn=, overwrite=...)."""
        from .video import upscale_video

        return upscale_video(self, src, dst, **options)

    def iter_video(self, src: str | Path, **options):
        """(decoded frame, upscaled pixels) pairs, one at a time: `liif_cli.video.iter_upscaled` with this model."""
        from .video import iter_upscaled

        return iter_upscaled(self, src, **options)

    def estimate(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> str:
        """A one-line forecast of time and working memory, printed before big jobs."""
        seconds, peak = self.renderer.estimate(in_hw, out_hw)
        out_bytes = out_hw[0] * out_hw[1] * 3 * 2
        when = f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
        return (
            f"{in_hw[1]}x{in_hw[0]} -> {out_hw[1]}x{out_hw[0]}: about {when} on {self.device.type} ({self.precision}), "
            f"~{(peak + out_bytes) / 2**30:.1f} GiB working memory"
        )

    def upscale_array(
        self,
        rgb: np.ndarray,
        out_hw: tuple[int, int],
        *,
        progress: ProgressCallback | None = None,
        dtype: type | np.dtype = np.float32,
    ) -> np.ndarray:
        """rgb: (H, W, 3) floats in [0, 1] -> (h, w, 3) of `dtype`.

        float32 output is clamped and unrounded (the official math); uint8 / uint16 output is rounded
        tile by tile, so a large result never exists in float.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise UsageError(f"expected an (H, W, 3) array, got shape {rgb.shape}")
        rgb = np.ascontiguousarray(rgb, dtype=np.float32)
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            return engine.render_array(self.renderer, rgb, out_hw, progress).astype(dtype, copy=False)
        if dtype not in (np.uint8, np.uint16):
            raise UsageError(f"unsupported output dtype {dtype}")
        from .imageio import quantize

        out = np.empty((out_hw[0], out_hw[1], 3), dtype=dtype)
        bits = dtype.itemsize * 8

        def sink(rows: slice, cols: slice, block: np.ndarray) -> None:
            out[rows, cols] = quantize(block, bits)

        self.renderer.render_with_fallback(rgb, out_hw, sink, progress)
        return out

    def upscale(
        self,
        image: Image.Image | np.ndarray,
        *,
        scale: float | tuple[float, float] | None = None,
        size: tuple[int, int] | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> Image.Image | np.ndarray:
        """PIL image in, PIL image out in the same family of mode (L, LA, RGB, RGBA); numpy (H, W, 3) in,
        numpy out of the same kind (floats in [0, 1], or uint8 / uint16).

        Alpha is resized bicubically here; `liif_cli.batch.upscale_image` is the full file path (alpha
        through the model, 16-bit, ICC, EXIF).
        """
        if isinstance(image, Image.Image):
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise UsageError(
                    f"{image.mode} images need more than 8 bits: use liif_cli.imageio.read_image and "
                    "liif_cli.batch.upscale_image, which keep 16-bit precision"
                )
            im = image.convert("RGBA" if "transparency" in image.info else "RGB") if image.mode == "P" else image
            alpha = im.getchannel("A") if im.mode in ("RGBA", "LA", "PA") else None
            gray = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255)
            out_hw = output_size(rgb.shape[:2], scale=scale, size=size, width=width, height=height)
            result = Image.fromarray(self.upscale_array(rgb, out_hw, dtype=np.uint8), "RGB")
            if gray:
                result = result.convert("L")
            if alpha is not None:
                result.putalpha(alpha.resize((out_hw[1], out_hw[0]), Image.Resampling.BICUBIC))
            return result
        array = np.asarray(image)
        out_hw = output_size(array.shape[:2], scale=scale, size=size, width=width, height=height)
        if array.dtype in (np.uint8, np.uint16):  # integer pixels in, the same integers out
            top = np.float32(np.iinfo(array.dtype).max)
            return self.upscale_array(array.astype(np.float32) / top, out_hw, dtype=array.dtype)
        return self.upscale_array(array, out_hw)


def load_model(
    model: str | Path = "edsr-baseline",
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    allow_unverified: bool = False,
    offline: bool | None = None,
    progress: bool = False,
) -> Upscaler:
    """A registry name (see `liif models`) or a checkpoint path (official or mmagic layout)."""
    from .registry import load_registry, resolve_weights

    engine.set_threads(threads)
    torch_device = engine.resolve_device(device)
    resolved_precision = engine.resolve_precision(precision, torch_device)
    if tile is not None and tile < 1:
        raise UsageError(f"tile must be >= 1, got {tile}")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    path = resolve_weights(model, allow_unverified=allow_unverified, offline=offline, progress=progress)
    entry = load_registry().get(str(model)) if not Path(str(model)).expanduser().is_file() else None
    loaded = load_checkpoint(path, normalization=entry.normalization if entry else None)
    options = engine.RenderOptions(torch_device, resolved_precision, tile, batch_size or 16384)
    return Upscaler(loaded, options, name=str(model))


def upscale(
    image: Image.Image | np.ndarray,
    *,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    width: int | None = None,
    height: int | None = None,
    model: str | Path | Upscaler = "edsr-baseline",
    **load_options,
) -> Image.Image | np.ndarray:
    """One-shot convenience: loads `model` (unless given an Upscaler) and upscales one image."""
    up = model if isinstance(model, Upscaler) else load_model(model, **load_options)
    return up.upscale(image, scale=scale, size=size, width=width, height=height)
