"""16-bit PNG and TIFF: the files Pillow cannot decode or encode faithfully.

Pillow reads 16-bit RGB(A) PNG and TIFF as 8-bit and cannot write them, so 16-bit PNG goes through
`pypng` and 16-bit TIFF (and TIFF layouts Pillow cannot open at all, e.g. 16-bit gray + alpha) through
`tifffile`. Both are imported inside the functions, so only the files that need them pay for them. The
header sniffing that decides whether a file takes this path is here as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import InputError
from .image import check_pixels, from_u8, from_u16, gray_to_rgb

if TYPE_CHECKING:
    import tifffile


def png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None if the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def tiff_bits(im: Image.Image) -> int:
    """The largest bits per sample a TIFF declares (8 when it says nothing readable)."""
    from PIL.TiffImagePlugin import TiffImageFile

    if not isinstance(im, TiffImageFile):
        return 8
    try:
        bits = im.tag_v2.get(258)
        bits = bits if isinstance(bits, tuple | list) else (bits,)
        return max(int(b) for b in bits) if bits and bits[0] is not None else 8
    except Exception:
        return 8


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def decode_png16(path: Path) -> tuple[np.ndarray, np.ndarray | None, str]:
    import png  # pypng

    reader = png.Reader(filename=str(path))
    w, h, rows, info = reader.read()
    planes = int(info["planes"])
    a = np.empty((h, w * planes), dtype=np.uint16)
    for i, row in enumerate(rows):
        a[i] = row
    a = a.reshape(h, w, planes)
    alpha = None
    if info.get("alpha"):
        alpha = from_u16(a[..., -1])
        a = a[..., :-1]
    elif info.get("transparent") is not None:  # tRNS: one fully transparent colour
        key = np.array(info["transparent"], dtype=np.uint16).reshape(1, 1, -1)
        alpha = (~np.all(a == key, axis=2)).astype(np.float32)
    f = from_u16(a)
    gray = bool(info.get("greyscale"))
    rgb = gray_to_rgb(f[..., 0]) if gray else f
    mode = ("LA" if gray else "RGBA") if alpha is not None else ("L" if gray else "RGB")
    return rgb, alpha, mode


def _tiff_page_size(page: tifffile.TiffPage) -> tuple[int, int]:
    return int(page.imagewidth), int(page.imagelength)


def tiff_size(path: Path) -> tuple[int, int]:
    """(width, height) as stored, of a TIFF's first page, from its header through tifffile (no pixel read)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return _tiff_page_size(_first_page(tif))


def _first_page(tif: tifffile.TiffFile) -> tifffile.TiffPage:
    """pages[0] as a TiffPage (a TiffFrame only refers to its key page)."""
    import tifffile

    page = tif.pages[0]
    if not isinstance(page, tifffile.TiffPage):  # a TiffFrame: only when frames are asked for, never here
        raise InputError(f"{tif.filename}: no first TIFF page")
    return page


def decode_tiff(path: Path, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray | None, str, int]:
    """8- or 16-bit gray / RGB TIFF (with alpha) through tifffile -> (rgb, alpha, mode, bits)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = _first_page(tif)
        w, h = _tiff_page_size(page)
        check_pixels(w, h, max_pixels, f"{path}: image of")
        photometric = int(page.photometric)
        extras = tuple(int(e) for e in (page.extrasamples or ()))
        try:
            data = page.asarray()
        except ValueError as exc:
            if "imagecodecs" in str(exc):
                raise InputError(
                    f"{path}: this TIFF's compression needs the optional 'imagecodecs' package "
                    "(pip install imagecodecs)"
                ) from None
            raise
        axes = page.axes
    if data.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: TIFF sample type {data.dtype} is not supported (8 or 16-bit unsigned only)")
    bits = 8 if data.dtype == np.uint8 else 16
    if axes.startswith("S") and data.ndim == 3:
        data = np.moveaxis(data, 0, -1)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise InputError(f"{path}: TIFF layout {axes} is not supported")
    if photometric not in (0, 1, 2):  # MINISWHITE, MINISBLACK, RGB
        raise InputError(f"{path}: {bits}-bit TIFF with photometric {photometric} is not supported (gray and RGB only)")
    colour = 3 if photometric == 2 else 1
    if data.shape[2] < colour:
        raise InputError(f"{path}: TIFF has {data.shape[2]} samples, expected at least {colour}")
    f = from_u16(data) if bits == 16 else from_u8(data)
    col = f[..., :colour]
    if photometric == 0:
        col = 1.0 - col
    alpha = None
    if extras and extras[0] in (1, 2) and f.shape[2] > colour:  # associated / unassociated alpha
        alpha = f[..., colour]
        if extras[0] == 1:  # premultiplied: undo it
            col = np.where(alpha[..., None] > 0, col / np.maximum(alpha[..., None], 1e-12), 0.0)
            col = np.clip(col, 0.0, 1.0).astype(np.float32)
    gray = colour == 1
    rgb = gray_to_rgb(col[..., 0]) if gray else col
    mode = ("LA" if gray else "RGBA") if alpha is not None else ("L" if gray else "RGB")
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha, mode, bits


def tiff_metadata(path: Path) -> tuple[bytes | None, tuple[float, float] | None, int]:
    """ICC profile, DPI and orientation of a TIFF that Pillow cannot open, read with tifffile."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tags = _first_page(tif).tags
        icc_tag = tags.get(34675)
        icc = bytes(icc_tag.value) if icc_tag is not None else None
        dpi: tuple[float, float] | None = None
        try:
            xr, yr = tags[282].value, tags[283].value
            unit = int(tags[296].value) if 296 in tags else 2
            x, y = xr[0] / xr[1], yr[0] / yr[1]
            if unit in (2, 3) and x > 0 and y > 0:
                dpi = (x, y) if unit == 2 else (x * 2.54, y * 2.54)
        except (KeyError, ZeroDivisionError, TypeError, IndexError):
            pass
        orientation = int(tags[274].value) if 274 in tags else 1
    return icc, dpi, orientation if 1 <= orientation <= 8 else 1


def write_png16(
    tmp: Path,
    q: np.ndarray,
    *,
    gray: bool,
    has_alpha: bool,
    icc: bytes | None,
    dpi: tuple[float, float] | None,
    exif: bytes | None,
) -> None:
    import zlib

    import png  # pypng

    extra: list[tuple[bytes, bytes]] = []
    if icc:
        extra.append((b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        extra.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))

    class _Writer(png.Writer):
        def write_preamble(self, outfile):  # IHDR (and pHYs), then our iCCP / eXIf, before any IDAT
            super().write_preamble(outfile)
            for tag, data in extra:
                png.write_chunk(outfile, tag, data)

    h, w, planes = q.shape
    ppm = None if dpi is None else (round(dpi[0] / 0.0254), round(dpi[1] / 0.0254))
    writer = _Writer(
        w,
        h,
        greyscale=gray,
        alpha=has_alpha,
        bitdepth=16,
        compression=6,
        x_pixels_per_unit=ppm[0] if ppm else None,
        y_pixels_per_unit=ppm[1] if ppm else None,
        unit_is_meter=ppm is not None,
    )
    rows = q.reshape(h, w * planes)
    with open(tmp, "wb") as f:
        writer.write(f, rows)


def write_tiff16(
    tmp: Path, q: np.ndarray, *, gray: bool, has_alpha: bool, icc: bytes | None, dpi: tuple[float, float] | None
) -> None:
    import tifffile

    data = q[..., 0] if q.shape[2] == 1 else q
    kwargs: dict = {
        "photometric": "minisblack" if gray else "rgb",
        "compression": "zlib",
        "predictor": True,
        "metadata": None,
    }
    if has_alpha:
        kwargs["extrasamples"] = ["unassalpha"]
        kwargs["planarconfig"] = "contig"
    if icc:
        kwargs["iccprofile"] = icc
    if dpi:
        kwargs["resolution"] = (dpi[0], dpi[1])
        kwargs["resolutionunit"] = "INCH"
    tifffile.imwrite(tmp, data, **kwargs)
