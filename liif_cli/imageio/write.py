"""`DecodedImage` -> image file, faithful to the input.

The format comes from the extension and must be able to hold the size; the encoding keeps the input's
mode (gray, alpha), bit depth, ICC profile, DPI and EXIF as far as the format allows, and says (through
`warn`) what it could not keep. 16-bit PNG and TIFF are handed to `highdepth`; the file itself is put in
place through `atomic_target`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import OutputError
from .highdepth import write_png16, write_tiff16
from .image import LUMA_601, MAX_SIDE, WRITE_FORMATS, DecodedImage, Warn, as_float, quantize
from .metadata import exif_for_output, icc_space
from .target import InputGuard, atomic_target


def format_for_path(path: str | os.PathLike) -> str:
    """Output format from the extension; OutputError for an extension we cannot write."""
    ext = Path(path).suffix.lower()
    try:
        return WRITE_FORMATS[ext]
    except KeyError:
        raise OutputError(
            f"{path}: cannot write '{ext or '(no extension)'}' files; use .png, .jpg, .webp or .tif"
        ) from None


def check_output_size(fmt: str, w: int, h: int) -> None:
    """OutputError when the format cannot hold a w x h image (JPEG 65500 px, WebP 16383 px a side); it is
    about the output format, the parameter `ext`."""
    side = MAX_SIDE.get(fmt)
    if side is not None and max(w, h) > side:
        raise OutputError(
            f"{fmt} cannot hold a {w}x{h} image (at most {side} pixels a side); use PNG or TIFF", param="ext"
        )


def _gray(img: DecodedImage) -> np.ndarray:
    return as_float(img.rgb) @ LUMA_601


def write_image(
    img: DecodedImage,
    path: str | os.PathLike,
    *,
    quality: int = 95,
    lossless: bool = False,
    overwrite: bool = False,
    protect: InputGuard | Iterable[str | os.PathLike] | None = None,
    warn: Warn | None = None,
) -> Path:
    """Encode `img` to `path` (format from the extension), atomically.

    The file is written to a temporary name in the target folder and renamed into place; on any failure
    or interrupt the temporary file is removed. An existing file is refused unless `overwrite`; a file in
    `protect` (the inputs) is always refused. Outputs keep the input's mode (gray stays gray, alpha
    stays), bit depth (16-bit stays 16-bit in PNG and TIFF), ICC profile and DPI; EXIF goes into PNG,
    JPEG and WebP (not TIFF, where it would mix with the file's own tags). JPEG cannot hold alpha: the image is flattened onto white (with a warning). JPEG and
    WebP are 8-bit: 16-bit images are reduced (with a warning).
    """
    path = Path(path)
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    fmt = format_for_path(path)
    h, w = img.hw
    check_output_size(fmt, w, h)
    guard = protect if isinstance(protect, InputGuard) else InputGuard(protect or ())
    with atomic_target(path, overwrite=overwrite, protect=guard) as tmp:
        _encode(img, tmp, fmt, quality=quality, lossless=lossless, warn=warn, name=path)
    return path


def _encode(img: DecodedImage, tmp: Path, fmt: str, *, quality: int, lossless: bool, warn: Warn, name: Path) -> None:
    h, w = img.hw
    bits = img.bits
    gray = img.mode in ("L", "LA")
    alpha = img.alpha
    icc = img.icc_profile
    if fmt in ("JPEG", "WEBP") and bits == 16:
        warn(f"{name}: {fmt} holds 8 bits per channel; the 16-bit result is written at 8 bits")
        bits = 8
    colour = _gray(img)[..., None] if gray else img.rgb
    if fmt == "JPEG" and alpha is not None:
        warn(f"{name}: JPEG cannot hold transparency; flattened onto white")
        colour = as_float(colour) * alpha[..., None] + (1.0 - alpha[..., None])
        alpha = None
    if fmt == "WEBP" and gray:  # WebP has no gray mode
        colour = np.repeat(colour, 3, axis=2)
        gray = False
        if icc_space(icc) == "GRAY":
            icc = None
    if icc and icc_space(icc) == "GRAY" and not gray:
        icc = None
    planes = colour if alpha is None else np.concatenate([as_float(colour), alpha[..., None]], axis=2)
    q = quantize(planes, bits)
    exif = exif_for_output(img.exif, w, h, img.dpi)
    if bits == 16 and fmt == "PNG":
        write_png16(tmp, q, gray=gray, has_alpha=alpha is not None, icc=icc, dpi=img.dpi, exif=exif)
        return
    if bits == 16 and fmt == "TIFF":
        write_tiff16(tmp, q, gray=gray, has_alpha=alpha is not None, icc=icc, dpi=img.dpi)
        return
    if q.shape[2] == 1:
        pil = Image.fromarray(q[..., 0])
    else:
        pil = Image.fromarray(q)
    params: dict = {}
    if icc:
        params["icc_profile"] = icc
    if img.dpi and fmt != "WEBP":
        params["dpi"] = img.dpi
    if exif and fmt != "TIFF":  # TIFF: EXIF would be merged into the image's own IFD (libtiff refuses sub-IFDs)
        if fmt == "JPEG" and len(exif) > 65533:
            warn(f"{name}: EXIF block too large for JPEG ({len(exif)} bytes); dropped")
        else:
            params["exif"] = exif
    if fmt == "JPEG":
        params.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        params.update(quality=quality, lossless=lossless)
    elif fmt == "TIFF":
        params["compression"] = "tiff_adobe_deflate"
    elif fmt == "PNG":
        params["compress_level"] = 6
    pil.save(tmp, format=fmt, **params)
