"""Decoded image in, upscaled decoded image out: the one place that knows about alpha, gray and bit depth.

`Upscaler.upscale_image` (files, PIL images) and `Encoding.render` (saved encodings) both end here, so
the CLI, the Python API and rendering from an encoding cannot disagree. What they differ in is only
where a 3-channel plane comes from: the engine streaming over the input pixels, or a kept feature map.

* Colour: an RGB image without alpha is quantized tile by tile (uint8, or uint16 for 16-bit input), so a
  large result never exists in float; gray and alpha images are returned as float32 in [0, 1] (their
  luma and compositing are computed from the float result when written).
* Alpha `model` (the default): the alpha plane replicated to RGB goes through the model and the mean of
  the three results is taken, clamped to [0, 1]: its edges stay as sharp as the colour's. `bicubic`:
  Pillow's bicubic resize of the float alpha (one model pass instead of two). A constant alpha (e.g. fully
  opaque) is never run through anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt
from PIL import Image

from .errors import UsageError
from .imageio import DecodedImage, quantize
from .sizes import Region

ALPHA_METHODS = ("model", "bicubic")

Progress = Callable[[int, int], None]
Sink = Callable[[slice, slice, np.ndarray], None]
# Renders one 3-channel plane at out_hw, calling the sink once per block of float32 values in [0, 1].
PlaneRenderer = Callable[[tuple[int, int], Sink, "Progress | None"], None]
# Where alpha comes from: None (no alpha), a constant, a plane renderer (model), or the input plane (bicubic).
AlphaSource = None | float | PlaneRenderer | np.ndarray


def check_alpha_method(method: str) -> str:
    if method not in ALPHA_METHODS:
        raise UsageError(f"alpha method must be one of {', '.join(ALPHA_METHODS)}, got {method!r}")
    return method


def alpha_kind(alpha: np.ndarray | None, method: str) -> str:
    """'none', 'constant', 'model' or 'bicubic': what an input alpha plane needs under `method`."""
    check_alpha_method(method)
    if alpha is None:
        return "none"
    if float(alpha.min()) == float(alpha.max()):
        return "constant"
    return method


def render_plane(
    render: PlaneRenderer, out_hw: tuple[int, int], dtype: npt.DTypeLike, progress: Progress | None
) -> np.ndarray:
    """(h, w, 3) of `dtype`: float32 as rendered, or uint8 / uint16 quantized block by block."""
    dtype = np.dtype(dtype)
    out = np.empty((out_hw[0], out_hw[1], 3), dtype=dtype)
    bits = dtype.itemsize * 8

    def sink(rows: slice, cols: slice, block: np.ndarray) -> None:
        out[rows, cols] = block if dtype.kind == "f" else quantize(block, bits)

    render(out_hw, sink, progress)
    return out


def resize_alpha_bicubic(alpha: np.ndarray, out_hw: tuple[int, int], region: Region | None = None) -> np.ndarray:
    """Pillow's bicubic resize of a float alpha plane (of the window `region` = x, y, w, h if given)."""
    box = None if region is None else (region[0], region[1], region[0] + region[2], region[1] + region[3])
    resized = Image.fromarray(np.ascontiguousarray(alpha, dtype=np.float32)).resize(
        (out_hw[1], out_hw[0]), Image.Resampling.BICUBIC, box=box
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def upscale_decoded(
    template: DecodedImage,
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    colour: PlaneRenderer,
    alpha: AlphaSource,
    *,
    region: Region | None = None,
    progress: Progress | None = None,
) -> DecodedImage:
    """The upscaled image: `template`'s mode, depth and metadata around the rendered planes.

    `in_hw` is the input's size; DPI scales with output pixels per input pixel (of the region, if any).
    """
    two_passes = callable(alpha)

    def phase(offset: int) -> Progress | None:
        if progress is None or not two_passes:
            return progress
        return lambda done, total: progress(offset * total + done, 2 * total)

    if template.mode == "RGB" and alpha is None:  # quantized tile by tile: a big result never exists in float
        rgb = render_plane(colour, out_hw, np.uint16 if template.bits == 16 else np.uint8, phase(0))
    else:  # gray (luma) and alpha compositing are computed from the float result
        rgb = render_plane(colour, out_hw, np.float32, phase(0))
    if alpha is None:
        out_alpha = None
    elif callable(alpha):
        plane = render_plane(alpha, out_hw, np.float32, phase(1))
        out_alpha = np.clip(plane.mean(axis=2), 0.0, 1.0).astype(np.float32)
    elif isinstance(alpha, np.ndarray):
        out_alpha = resize_alpha_bicubic(alpha, out_hw, region)
    else:
        out_alpha = np.full(out_hw, float(alpha), dtype=np.float32)
    span_h, span_w = in_hw if region is None else (region[3], region[2])
    dpi = None if template.dpi is None else (template.dpi[0] * out_hw[1] / span_w, template.dpi[1] * out_hw[0] / span_h)
    return replace(template, rgb=rgb, alpha=out_alpha, dpi=dpi, notes=list(template.notes))


def from_array(rgb: np.ndarray, bits: int = 8) -> DecodedImage:
    """An (H, W, 3) RGB array (floats in [0, 1], uint8 or uint16) as a DecodedImage."""
    from .imageio import as_float

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UsageError(f"expected an (H, W, 3) array, got shape {rgb.shape}")
    if rgb.dtype == np.uint16:
        bits = 16
    return DecodedImage(rgb=np.ascontiguousarray(as_float(rgb)), bits=bits)


def to_pil(img: DecodedImage) -> Image.Image:
    """A PIL image of an upscaled DecodedImage, rounded as `liif upscale` writes a PNG: L, LA, RGB or RGBA
    (16-bit gray as I;16; Pillow has no 16-bit colour modes, so 16-bit colour comes back at 8 bits)."""
    from .imageio import LUMA_601, as_float

    gray = img.mode in ("L", "LA")
    colour = (as_float(img.rgb) @ LUMA_601)[..., None] if gray else img.rgb
    if gray and img.alpha is None and img.bits == 16:
        return Image.fromarray(quantize(colour[..., 0], 16))
    planes = colour if img.alpha is None else np.concatenate([as_float(colour), img.alpha[..., None]], axis=2)
    q = quantize(planes, 8)
    return Image.fromarray(q[..., 0] if q.shape[2] == 1 else q)  # L, LA, RGB or RGBA from the shape
