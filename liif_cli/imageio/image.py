"""The in-memory image and the numbers both directions agree on.

`DecodedImage` is what reading produces and writing consumes; `quantize` and `as_float` are the one
float <-> integer conversion pair; the limits (input and output pixels, each format's largest side) and
the extensions read and written are here too. Reading and writing both depend on this module and it on
neither, so it is the place to look up what a pixel value or a limit means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..sizes import megapixels

DEFAULT_MAX_INPUT_PIXELS = 100_000_000
"""Default input limit: 100 megapixels (a 12000x8000 photo fits; a decompression bomb does not)."""

READ_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".tif", ".tiff", ".bmp", ".dib", ".gif", ".ppm", ".pgm"}
    | {".pbm", ".pnm", ".pam", ".tga", ".sgi", ".rgb", ".bw", ".qoi", ".ico", ".dds", ".pcx", ".jp2", ".j2k", ".avif"}
)
"""Extensions collected from folders (what a file is, is decided by its content: `inputs.identify`). Files
named explicitly are tried whatever their extension."""

WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
"""Output extension -> format."""

MAX_SIDE = {"JPEG": 65500, "WEBP": 16383, "PNG": 2**31 - 1, "TIFF": 2**32 - 1}
"""Largest width or height each output format can hold."""

LUMA_601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R BT.601 luma, the weights of Pillow's convert('L'), used to turn RGB model output back to gray."""


Warn = Callable[[str], None]


def quantize(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """Float in [0, 1] -> uint8 / uint16: `rint(clip(x, 0, 1) * (2**bits - 1))`.

    Rounds half to even, like MMEditing's `tensor2img` (the official LIIF demo truncates instead).
    NaN becomes 0. The input array is not modified. A uint8 / uint16 array is taken as already
    quantized: returned as is at its own depth, or converted exactly (x257) / rounded (/257) between depths.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    x = np.asarray(x)
    if x.dtype in (np.uint8, np.uint16):
        if x.dtype.itemsize * 8 == bits:
            return x
        if bits == 16:
            return x.astype(np.uint16) * np.uint16(257)
        return np.rint(x / 257.0).astype(np.uint8)
    if x.dtype.kind in "iub":
        raise ValueError(f"quantize expects floats in [0, 1] or uint8/uint16, got {x.dtype}")
    y = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    y = np.clip(y, 0.0, 1.0)
    y *= float(2**bits - 1)
    np.rint(y, out=y)
    return y.astype(np.uint8 if bits == 8 else np.uint16)


@dataclass
class DecodedImage:
    """Pixels as float32 in [0, 1] plus what is needed to write an output faithful to the input.

    `rgb` is always (H, W, 3) (gray inputs are replicated); `mode` is what will be written:
    "RGB", "RGBA", "L" (gray, written as BT.601 luma of `rgb`) or "LA". Orientation is already applied.
    `rgb` may also hold already quantized uint8 / uint16 values (a large upscaled RGB result is made
    that way, tile by tile, so that it never exists in float).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    mode: str = "RGB"
    bits: int = 8
    source_mode: str = "RGB"
    format: str | None = None
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    exif: bytes | None = None
    frames: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])

    @property
    def has_alpha(self) -> bool:
        return self.alpha is not None

    def with_pixels(self, rgb: np.ndarray, alpha: np.ndarray | None) -> DecodedImage:
        """The same metadata around new pixels (e.g. upscaled); DPI scales with the size."""
        (h0, w0), (h1, w1) = self.hw, rgb.shape[:2]
        dpi = None if self.dpi is None else (self.dpi[0] * w1 / w0, self.dpi[1] * h1 / h0)
        return replace(self, rgb=rgb, alpha=alpha, dpi=dpi, notes=list(self.notes))


def check_pixels(w: int, h: int, limit: int | None, what: str, param: str = "max_pixels") -> None:
    """Raise InputError when w x h exceeds `limit` (None or 0: no limit); the error names `param`, the limit
    (a flag spelling, `--max-pixels`, is read as its parameter)."""
    param = param.lstrip("-").replace("-", "_")
    if limit and w * h > limit:
        raise InputError(
            f"{what} {w}x{h} ({megapixels(w * h)}) is over the limit of {megapixels(limit)}",
            param=param,
            hint="raise it with {" + param + "}",
        )


def from_u8(a: np.ndarray) -> np.ndarray:
    # Divide, as torchvision's ToTensor does: x * (1/255) differs from x / 255 in the last bit for some x,
    # and the official outputs are reproduced bit for bit only from the same inputs.
    return a.astype(np.float32) / np.float32(255)


def from_u16(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / np.float32(65535)


def gray_to_rgb(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[..., None], 3, axis=2)


def as_float(a: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from float, uint8 or uint16 pixels."""
    if a.dtype == np.uint8:
        return from_u8(a)
    if a.dtype == np.uint16:
        return from_u16(a)
    return np.asarray(a, dtype=np.float32)
