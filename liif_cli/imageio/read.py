"""Image file -> `DecodedImage`, with every failure a one-line InputError.

`read_image` opens the file through the input door (`inputs`: the path checks, Pillow's own bomb check lifted
for ours, with the caller's pixel limit, on the header's declared size before any pixel is decoded, every
library exception mapped to one InputError, decoder messages to `warn`), routes 16-bit PNG and TIFF
to `highdepth`, decodes every other mode through Pillow, and applies the EXIF orientation last.
`decode_pil` decodes an already opened PIL image the same way.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from .highdepth import decode_png16, decode_tiff, png_header, tiff_bits, tiff_metadata
from .image import DEFAULT_MAX_INPUT_PIXELS, DecodedImage, Warn, check_pixels, from_u8, from_u16, gray_to_rgb
from .inputs import check_path, decoding, pillow_open
from .metadata import apply_orientation, clean_exif, exif_orientation, icc_space, read_dpi


def _decode_pillow(im: Image.Image, path: Path, meta: dict, warn: Warn) -> tuple[np.ndarray, np.ndarray | None, str]:
    """8-bit (and 16-bit gray) decoding through Pillow -> (rgb, alpha, out mode)."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        g = from_u16(np.asarray(im).astype(np.uint16))
        meta["bits"] = 16
        return gray_to_rgb(g), None, "L"
    if mode in ("I", "F"):
        raise InputError(f"{path}: {'32-bit integer' if mode == 'I' else '32-bit float'} images are not supported")
    if mode == "CMYK":
        icc = meta.get("icc_profile")
        rgb_im = None
        if icc is not None and icc_space(icc) == "CMYK":
            try:
                from PIL import ImageCms

                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                rgb_im = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
                meta["notes"].append("CMYK converted to sRGB through its ICC profile")
            except Exception as exc:
                warn(f"{path}: CMYK ICC conversion failed ({type(exc).__name__}); using a plain conversion")
        if rgb_im is None:
            rgb_im = im.convert("RGB")
            meta["notes"].append("CMYK converted to RGB without a profile")
        meta["icc_profile"] = None  # a CMYK profile does not describe RGB output
        return from_u8(np.asarray(rgb_im)), None, "RGB"
    if mode in ("RGB", "L") and im.info.get("transparency") is not None:  # a transparent colour (tRNS)
        im = im.convert("RGBA" if mode == "RGB" else "LA")
    elif mode == "P":
        transparent = getattr(im, "has_transparency_data", "transparency" in im.info)  # Pillow < 10.1: no property
        im = im.convert("RGBA" if transparent else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "La":
        im = im.convert("LA")
    elif mode in ("RGBa",):
        im = im.convert("RGBA")
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        try:
            im = im.convert("RGB")
        except Exception:
            raise InputError(f"{path}: image mode {mode} is not supported") from None
        if icc_space(meta.get("icc_profile")) not in (None, "RGB"):
            meta["icc_profile"] = None
    a = np.asarray(im)
    if im.mode == "RGB":
        return from_u8(a), None, "RGB"
    if im.mode == "RGBA":
        return from_u8(a[..., :3]), from_u8(a[..., 3]), "RGBA"
    if im.mode == "L":
        return gray_to_rgb(from_u8(a)), None, "L"
    return gray_to_rgb(from_u8(a[..., 0])), from_u8(a[..., 1]), "LA"  # LA


def read_image(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS,
    warn: Warn | None = None,
) -> DecodedImage:
    """Decode an image file. Every failure is an InputError with a one-line message.

    `max_pixels` (None or 0: no limit) is checked on the header before any pixel is decoded. EXIF
    orientation is applied. Multi-frame files: the first frame only (noted in `frames`).
    """
    path = Path(path)
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    check_path(path)
    with decoding(path, warn), open(path, "rb") as fh:
        im = pillow_open(fh, path)  # None: a TIFF layout Pillow does not know (e.g. 16-bit gray + alpha)
        img, orientation = _read_tifffile_only(path, max_pixels) if im is None else _read(im, path, max_pixels, warn)
    if orientation != 1:
        img.rgb = np.ascontiguousarray(apply_orientation(img.rgb, orientation))
        if img.alpha is not None:
            img.alpha = np.ascontiguousarray(apply_orientation(img.alpha, orientation))
        if img.dpi is not None and orientation >= 5:
            img.dpi = (img.dpi[1], img.dpi[0])
    return img


def header_size(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS) -> tuple[int, int]:
    """(width, height) of an image file as `read_image` returns it (EXIF orientation applied: the sides swap for
    orientations 5 to 8), from the header only: no pixel is decoded. Through the input door (`inputs.identify`):
    the same one-line InputErrors as `read_image`, and `max_pixels` (None or 0: no limit) checked on the
    declared size. The one header reader for plans, shares and forecasts."""
    from PIL.TiffImagePlugin import TiffImageFile

    from .highdepth import tiff_metadata, tiff_size
    from .inputs import identify, open_image

    path = Path(path)
    found = identify(path, max_pixels=max_pixels, media=False)
    if found.kind == "encoding":
        raise InputError(f"{path}: a saved encoding (.liif), not an image")
    if found.hw is None:  # a TIFF layout only tifffile reads
        with decoding(path, None):
            w, h = tiff_size(path)
            check_pixels(w, h, max_pixels, f"{path}: image of")
            orientation = tiff_metadata(path)[2]
    else:
        with open_image(path, max_pixels=max_pixels) as im:
            orientation = exif_orientation(im)
            h, w = found.hw
            if isinstance(im, TiffImageFile) and orientation >= 5:  # Pillow turns a TIFF's size: the stored one
                w, h = int(im.tag_v2[256]), int(im.tag_v2[257])
    return (h, w) if orientation >= 5 else (w, h)


_MODE_16 = {"RGB": "RGB;16", "RGBA": "RGBA;16", "L": "I;16", "LA": "LA;16"}


def _read(im: Image.Image, path: Path, max_pixels: int | None, warn: Warn) -> tuple[DecodedImage, int]:
    """Through Pillow (pixels of 16-bit PNG / TIFF through pypng / tifffile) -> (image, orientation)."""
    w, h = im.size
    check_pixels(w, h, max_pixels, f"{path}: image of")
    png = png_header(path) if im.format == "PNG" else None
    png16 = png is not None and png[0] == 16
    tiff16 = im.format == "TIFF" and tiff_bits(im) == 16
    if not tiff16:
        im.load()  # for 16-bit PNG too: validates the data and reaches an eXIf chunk after IDAT
    meta: dict = {"notes": [], "bits": 8, "icc_profile": im.info.get("icc_profile") or None}
    orientation = exif_orientation(im)
    dpi = read_dpi(im)
    exif = clean_exif(im, warn)
    if png16:
        rgb, alpha, mode = decode_png16(path)
        meta["bits"] = 16
        colour_type = png[1] if png is not None else -1
        source_mode = {0: "I;16", 2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}.get(colour_type, im.mode)
    elif tiff16:
        rgb, alpha, mode, meta["bits"] = decode_tiff(path)
        source_mode = _MODE_16[mode]
    else:
        rgb, alpha, mode = _decode_pillow(im, path, meta, warn)
        source_mode = im.mode
    img = DecodedImage(
        rgb=rgb,
        alpha=alpha,
        mode=mode,
        bits=meta["bits"],
        source_mode=source_mode,
        format=im.format,
        icc_profile=meta["icc_profile"],
        dpi=dpi,
        exif=exif,
        frames=int(getattr(im, "n_frames", 1) or 1),
        notes=meta["notes"],
    )
    return img, orientation


def decode_pil(im: Image.Image, name: str = "image", warn: Warn | None = None) -> DecodedImage:
    """An already opened PIL image, decoded as `read_image` decodes a file (modes, palettes, transparency,
    16-bit gray). The pixels are taken as given: no EXIF rotation."""
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    meta: dict = {"notes": [], "bits": 8, "icc_profile": im.info.get("icc_profile") or None}
    rgb, alpha, mode = _decode_pillow(im, Path(name), meta, warn)
    return DecodedImage(rgb, alpha, mode, meta["bits"], im.mode, im.format, meta["icc_profile"], read_dpi(im))


def _read_tifffile_only(path: Path, max_pixels: int | None) -> tuple[DecodedImage, int]:
    rgb, alpha, mode, bits = decode_tiff(path, max_pixels)
    icc, dpi, orientation = tiff_metadata(path)
    source_mode = mode if bits == 8 else _MODE_16[mode]
    img = DecodedImage(rgb, alpha, mode, bits, source_mode, "TIFF", icc, dpi, None)
    return img, orientation
