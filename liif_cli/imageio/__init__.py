"""Image files <-> float arrays, faithfully: modes, 8/16-bit depth, EXIF orientation, ICC, DPI, EXIF.

`read_image(path)` decodes any file Pillow can open into a `DecodedImage`: float32 RGB in [0, 1], an
optional float32 alpha, and what is needed to write the result back in the same spirit (mode, bit
depth, ICC profile, DPI, cleaned EXIF). `write_image(img, path)` encodes one atomically (temporary file
in the target folder, then a rename) and never over an input. `quantize` is the one float -> integer
conversion used everywhere.

Pillow reads 16-bit RGB(A) PNG and TIFF as 8-bit and cannot write them, so 16-bit PNG goes through
`pypng` and 16-bit TIFF through `tifffile`; everything else goes through Pillow.

Size limits are checked on the header's declared size before any pixel is decoded; `header_size(path)` is the
(width, height) `read_image` would give (EXIF orientation applied), from the header alone.

`identify(path)` says what a user's file is by its content (still, animation, video, `.liif` encoding), and
`inputs` is the one door every user file comes through (see its docstring).

One module per concern: `inputs` (the door: kinds, guards, library exceptions), `image` (DecodedImage, quantize, limits, extensions), `metadata` (EXIF orientation,
ICC, DPI), `read` (files -> DecodedImage), `highdepth` (16-bit PNG / TIFF through pypng / tifffile),
`write` (DecodedImage -> files) and `target` (never over an input, never half-written).
"""

from __future__ import annotations

from ..sizes import DEFAULT_MAX_OUTPUT_PIXELS
from .image import (
    DEFAULT_MAX_INPUT_PIXELS,
    LUMA_601,
    READ_EXTENSIONS,
    WRITE_FORMATS,
    DecodedImage,
    as_float,
    check_pixels,
    quantize,
)
from .inputs import Identified, decoding, identify, open_container, open_image, open_pillow
from .metadata import apply_orientation
from .read import decode_pil, header_size, read_image
from .target import InputGuard, atomic_target, check_destination
from .write import check_output_size, format_for_path, write_image

__all__ = [
    "DEFAULT_MAX_INPUT_PIXELS",
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "LUMA_601",
    "decode_pil",
    "READ_EXTENSIONS",
    "WRITE_FORMATS",
    "DecodedImage",
    "Identified",
    "decoding",
    "identify",
    "open_container",
    "open_image",
    "open_pillow",
    "InputGuard",
    "apply_orientation",
    "as_float",
    "check_destination",
    "check_output_size",
    "atomic_target",
    "check_pixels",
    "format_for_path",
    "header_size",
    "quantize",
    "read_image",
    "write_image",
]
