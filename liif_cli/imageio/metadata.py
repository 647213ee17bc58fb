"""What travels with the pixels: EXIF orientation, ICC profile, DPI and the EXIF block carried to the output.

Kept apart from the decoders because the same rules hold whichever one produced the pixels (Pillow, pypng,
tifffile) and again on the way out: tags that describe the input file (its structure, thumbnail and
orientation) are dropped, and the carried EXIF's dimensions and resolution are updated to the output's.
A broken metadata block never makes an image unreadable: it is dropped, with a warning where it matters.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .image import Warn

# TIFF structure, thumbnail and orientation tags: they describe the input file, not the output image.
_EXIF_DROP = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280, 281, 284, 317, 320, 322, 323}
    | {324, 325, 330, 338, 339, 340, 341, 347, 513, 514, 529, 530, 531, 532, 700, 33723, 34377, 34675, 37724}
)
_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_X_RES, _Y_RES, _RES_UNIT = 282, 283, 296


def exif_orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not make the image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an (H, W, ...) array as EXIF orientation says; same result as `ImageOps.exif_transpose`."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, k=-1)
    if orientation == 7:
        return a[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(a, k=1)
    return a


def clean_exif(im: Image.Image, warn: Warn) -> bytes | None:
    """EXIF to carry to the output: orientation, thumbnail (IFD1) and TIFF structure tags dropped."""
    try:
        exif = im.getexif()
        if not len(exif) and _EXIF_IFD not in exif:
            return None
        for tag in list(exif):
            if tag in _EXIF_DROP:
                del exif[tag]
        exif.get_ifd(_EXIF_IFD)  # load the Exif sub-IFD so that it is written back
        data = exif.tobytes()  # Pillow writes IFD0 and its sub-IFDs, never IFD1 (the thumbnail)
    except Exception as exc:
        warn(f"EXIF metadata could not be parsed and is dropped ({type(exc).__name__})")
        return None
    return data if len(data) > 14 else None


def read_dpi(im: Image.Image) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    if dpi is None:
        return None
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (x, y) if x > 0 and y > 0 and np.isfinite(x) and np.isfinite(y) else None


def icc_space(icc: bytes | None) -> str | None:
    """The ICC profile's colour space signature ('RGB', 'GRAY', 'CMYK'...), or None."""
    if not icc or len(icc) < 20:
        return None
    return icc[16:20].decode("latin-1").strip()


def exif_for_output(exif: bytes | None, w: int, h: int, dpi: tuple[float, float] | None) -> bytes | None:
    """Update the carried EXIF's pixel dimensions and resolution to the output's."""
    if not exif:
        return None
    try:
        e = Image.Exif()
        e.load(exif)
        sub = e.get_ifd(_EXIF_IFD)
        if _PIXEL_X in sub:
            sub[_PIXEL_X] = w
        if _PIXEL_Y in sub:
            sub[_PIXEL_Y] = h
        if dpi is not None and (_X_RES in e or _Y_RES in e):
            from PIL.TiffImagePlugin import IFDRational

            e[_X_RES], e[_Y_RES] = IFDRational(round(dpi[0], 4)), IFDRational(round(dpi[1], 4))
            e[_RES_UNIT] = 2
        return e.tobytes()
    except Exception:
        return exif
