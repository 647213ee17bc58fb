"""Image files <-> float arrays, faithfully: modes, 8/16-bit depth, EXIF orientation, ICC, DPI, EXIF.

`read_image(path)` decodes any file Pillow can open into a `DecodedImage`: float32 RGB in [0, 1], an
optional float32 alpha, and what is needed to write the result back in the same spirit (mode, bit
depth, ICC profile, DPI, cleaned EXIF). `write_image(img, path)` encodes one atomically (temporary file
in the target folder, then a rename) and never over an input. `quantize` is the one float -> integer
conversion used everywhere.

Pillow reads 16-bit RGB(A) PNG and TIFF as 8-bit and cannot write them, so 16-bit PNG goes through
`pypng` and 16-bit TIFF through `tifffile`; everything else goes through Pillow.

Size limits are checked on the header's declared size before any pixel is decoded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .atomic import TargetExistsError, atomic_path
from .errors import InputError, OutputError, first_line

DEFAULT_MAX_INPUT_PIXELS = 100_000_000
"""Default input limit: 100 megapixels (a 12000x8000 photo fits; a decompression bomb does not)."""
DEFAULT_MAX_OUTPUT_PIXELS = 400_000_000
"""Default output limit: 400 megapixels (20000x20000), about 4.8 GB as float32 RGB before encoding."""

READ_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pnm", ".tga"}
)
"""Extensions collected from folders. Files named explicitly are tried whatever their extension."""

WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
"""Output extension -> format."""

MAX_SIDE = {"JPEG": 65500, "WEBP": 16383, "PNG": 2**31 - 1, "TIFF": 2**32 - 1}
"""Largest width or height each output format can hold."""

LUMA_601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R BT.601 luma, the weights of Pillow's convert('L'), used to turn RGB model output back to gray."""

# TIFF structure, thumbnail and orientation tags: they describe the input file, not the output image.
_EXIF_DROP = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280, 281, 284, 317, 320, 322, 323}
    | {324, 325, 330, 338, 339, 340, 341, 347, 513, 514, 529, 530, 531, 532, 700, 33723, 34377, 34675, 37724}
)
_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_X_RES, _Y_RES, _RES_UNIT = 282, 283, 296

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


# --- reading -------------------------------------------------------------------------------------

_pillow_limit_lock = threading.Lock()


def _open_without_pillow_bomb_check(fh) -> Image.Image:
    """`Image.open` with Pillow's decompression-bomb check lifted: ours (with the caller's limit) follows.

    Pillow's check reads a module global with its own fixed limit; it is lifted under a lock for the
    call and restored after. Should Pillow still warn or refuse, the caller turns it into an InputError.
    """
    with _pillow_limit_lock:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(fh)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


@contextlib.contextmanager
def _quiet_decoders():
    """Decoder warnings (Pillow's "Corrupt EXIF data", tifffile's log) would each print a line: a
    broken file gets one line, our InputError. A bomb warning becomes an error."""
    tifffile_log = logging.getLogger("tifffile")
    saved_level = tifffile_log.level
    tifffile_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        tifffile_log.setLevel(saved_level)


def _check_path(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot access ({exc.strerror or exc})") from None
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image (folders are scanned only when given as inputs)")
    if st.st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP" if pixels >= 100_000 else f"{pixels} pixels"


def check_pixels(w: int, h: int, limit: int | None, what: str, flag: str) -> None:
    """Raise InputError when w x h exceeds `limit` (None or 0: no limit)."""
    if limit and w * h > limit:
        raise InputError(f"{what} {w}x{h} ({_mp(w * h)}) is over the limit of {_mp(limit)} (raise it with {flag})")


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None if the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _orientation(im: Image.Image) -> int:
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


def _clean_exif(im: Image.Image, warn: Warn) -> bytes | None:
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


def _dpi(im: Image.Image) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (x, y) if x > 0 and y > 0 and np.isfinite(x) and np.isfinite(y) else None


def _icc_space(icc: bytes | None) -> str | None:
    """The ICC profile's colour space signature ('RGB', 'GRAY', 'CMYK'...), or None."""
    if not icc or len(icc) < 20:
        return None
    return icc[16:20].decode("latin-1").strip()


def _u8(a: np.ndarray) -> np.ndarray:
    # Divide, as torchvision's ToTensor does: x * (1/255) differs from x / 255 in the last bit for some x,
    # and the official outputs are reproduced bit for bit only from the same inputs.
    return a.astype(np.float32) / np.float32(255)


def _u16(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / np.float32(65535)


def _gray_to_rgb(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[..., None], 3, axis=2)


def _decode_pillow(im: Image.Image, path: Path, meta: dict, warn: Warn) -> tuple[np.ndarray, np.ndarray | None, str]:
    """8-bit (and 16-bit gray) decoding through Pillow -> (rgb, alpha, out mode)."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        g = _u16(np.asarray(im).astype(np.uint16))
        meta["bits"] = 16
        return _gray_to_rgb(g), None, "L"
    if mode in ("I", "F"):
        raise InputError(f"{path}: {'32-bit integer' if mode == 'I' else '32-bit float'} images are not supported")
    if mode == "CMYK":
        icc = meta.get("icc_profile")
        rgb_im = None
        if _icc_space(icc) == "CMYK":
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
        return _u8(np.asarray(rgb_im)), None, "RGB"
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
        if _icc_space(meta.get("icc_profile")) not in (None, "RGB"):
            meta["icc_profile"] = None
    a = np.asarray(im)
    if im.mode == "RGB":
        return _u8(a), None, "RGB"
    if im.mode == "RGBA":
        return _u8(a[..., :3]), _u8(a[..., 3]), "RGBA"
    if im.mode == "L":
        return _gray_to_rgb(_u8(a)), None, "L"
    return _gray_to_rgb(_u8(a[..., 0])), _u8(a[..., 1]), "LA"  # LA


def _decode_png16(path: Path) -> tuple[np.ndarray, np.ndarray | None, str]:
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
        alpha = _u16(a[..., -1])
        a = a[..., :-1]
    elif info.get("transparent") is not None:  # tRNS: one fully transparent colour
        key = np.array(info["transparent"], dtype=np.uint16).reshape(1, 1, -1)
        alpha = (~np.all(a == key, axis=2)).astype(np.float32)
    f = _u16(a)
    gray = bool(info.get("greyscale"))
    rgb = _gray_to_rgb(f[..., 0]) if gray else f
    mode = ("LA" if gray else "RGBA") if alpha is not None else ("L" if gray else "RGB")
    return rgb, alpha, mode


def _tiff_page_size(page) -> tuple[int, int]:
    return int(page.imagewidth), int(page.imagelength)


def _decode_tiff(path: Path, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray | None, str, int]:
    """8- or 16-bit gray / RGB TIFF (with alpha) through tifffile -> (rgb, alpha, mode, bits)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        w, h = _tiff_page_size(page)
        check_pixels(w, h, max_pixels, f"{path}: image of", "--max-pixels")
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
    f = _u16(data) if bits == 16 else _u8(data)
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
    rgb = _gray_to_rgb(col[..., 0]) if gray else col
    mode = ("LA" if gray else "RGBA") if alpha is not None else ("L" if gray else "RGB")
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha, mode, bits


def _tiff_metadata(path: Path) -> tuple[bytes | None, tuple[float, float] | None, int]:
    """ICC profile, DPI and orientation of a TIFF that Pillow cannot open, read with tifffile."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        icc = tags.get(34675)
        icc = bytes(icc.value) if icc is not None else None
        dpi = None
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


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


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
    _check_path(path)
    try:
        with _quiet_decoders(), open(path, "rb") as fh:
            try:
                im = _open_without_pillow_bomb_check(fh)
            except UnidentifiedImageError:
                if not _is_tiff(path):
                    raise InputError(f"{path}: not an image, or a format that cannot be read") from None
                im = None  # a TIFF layout Pillow does not know (e.g. 16-bit gray + alpha): tifffile alone
            img, orientation = (
                _read_tifffile_only(path, max_pixels) if im is None else _read(im, path, max_pixels, warn)
            )
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path}: refused as a possible decompression bomb ({first_line(exc)})") from None
    except MemoryError:
        raise InputError(f"{path}: not enough memory to decode this image") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: truncated or corrupt image ({first_line(exc)})") from None
    except Exception as exc:  # decoders raise all sorts (pypng's FormatError, zlib.error...)
        raise InputError(f"{path}: cannot decode image ({type(exc).__name__}: {first_line(exc)})") from None
    if orientation != 1:
        img.rgb = np.ascontiguousarray(apply_orientation(img.rgb, orientation))
        if img.alpha is not None:
            img.alpha = np.ascontiguousarray(apply_orientation(img.alpha, orientation))
        if img.dpi is not None and orientation >= 5:
            img.dpi = (img.dpi[1], img.dpi[0])
    return img


_MODE_16 = {"RGB": "RGB;16", "RGBA": "RGBA;16", "L": "I;16", "LA": "LA;16"}


def _read(im: Image.Image, path: Path, max_pixels: int | None, warn: Warn) -> tuple[DecodedImage, int]:
    """Through Pillow (pixels of 16-bit PNG / TIFF through pypng / tifffile) -> (image, orientation)."""
    w, h = im.size
    check_pixels(w, h, max_pixels, f"{path}: image of", "--max-pixels")
    png = _png_header(path) if im.format == "PNG" else None
    png16 = png is not None and png[0] == 16
    tiff16 = im.format == "TIFF" and _tiff_bits(im) == 16
    if not tiff16:
        im.load()  # for 16-bit PNG too: validates the data and reaches an eXIf chunk after IDAT
    meta: dict = {"notes": [], "bits": 8, "icc_profile": im.info.get("icc_profile") or None}
    orientation = _orientation(im)
    dpi = _dpi(im)
    exif = _clean_exif(im, warn)
    if png16:
        rgb, alpha, mode = _decode_png16(path)
        meta["bits"] = 16
        source_mode = {0: "I;16", 2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}.get(png[1], im.mode)
    elif tiff16:
        rgb, alpha, mode, meta["bits"] = _decode_tiff(path)
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
    return DecodedImage(rgb, alpha, mode, meta["bits"], im.mode, im.format, meta["icc_profile"], _dpi(im))


def _read_tifffile_only(path: Path, max_pixels: int | None) -> tuple[DecodedImage, int]:
    rgb, alpha, mode, bits = _decode_tiff(path, max_pixels)
    icc, dpi, orientation = _tiff_metadata(path)
    source_mode = mode if bits == 8 else _MODE_16[mode]
    img = DecodedImage(rgb, alpha, mode, bits, source_mode, "TIFF", icc, dpi, None)
    return img, orientation


def _tiff_bits(im: Image.Image) -> int:
    try:
        bits = im.tag_v2.get(258)
        bits = bits if isinstance(bits, tuple | list) else (bits,)
        return max(int(b) for b in bits) if bits and bits[0] is not None else 8
    except Exception:
        return 8


# --- writing -------------------------------------------------------------------------------------


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
    """OutputError when the format cannot hold a w x h image (JPEG 65500 px, WebP 16383 px a side)."""
    side = MAX_SIDE.get(fmt)
    if side is not None and max(w, h) > side:
        raise OutputError(f"{fmt} cannot hold a {w}x{h} image (at most {side} pixels a side); use PNG or TIFF")


class InputGuard:
    """The set of input files, to refuse writing over any of them (by resolved path and by inode)."""

    def __init__(self, paths: Iterable[str | os.PathLike] = ()):
        self._paths: set[str] = set()
        self._inodes: set[tuple[int, int]] = set()
        for p in paths:
            self.add(p)

    def add(self, path: str | os.PathLike) -> None:
        p = Path(path)
        self._paths.add(os.path.normcase(str(p.resolve())))
        with contextlib.suppress(OSError):
            st = p.stat()
            self._inodes.add((st.st_dev, st.st_ino))

    def covers(self, path: str | os.PathLike) -> bool:
        p = Path(path)
        if os.path.normcase(str(p.resolve())) in self._paths:
            return True
        try:
            st = p.stat()
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self._inodes


def as_float(a: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from float, uint8 or uint16 pixels."""
    if a.dtype == np.uint8:
        return _u8(a)
    if a.dtype == np.uint16:
        return _u16(a)
    return np.asarray(a, dtype=np.float32)


def _gray(img: DecodedImage) -> np.ndarray:
    return as_float(img.rgb) @ LUMA_601


def _exif_for_output(exif: bytes | None, w: int, h: int, dpi: tuple[float, float] | None) -> bytes | None:
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


@contextlib.contextmanager
def atomic_target(
    path: Path, *, overwrite: bool = False, protect: InputGuard | Iterable[str | os.PathLike] | None = None
) -> Iterator[Path]:
    """Yield a temporary file in `path`'s folder to write into; on success it is renamed to `path`.

    The checks come first (an input in `protect` is always refused, an existing file unless `overwrite`).
    On any exception or interrupt the temporary file is removed, so no partial output is ever left; an
    OSError while writing becomes an OutputError.
    """
    path = Path(path)
    guard = protect if isinstance(protect, InputGuard) else InputGuard(protect or ())
    if guard.covers(path):
        raise OutputError(f"{path}: refusing to write over an input file")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (use --overwrite to replace it)")
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:  # no-clobber unless overwrite
            yield tmp
    except TargetExistsError:
        raise OutputError(f"{path}: already exists (use --overwrite to replace it)") from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or first_line(exc)})") from None


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
        if _icc_space(icc) == "GRAY":
            icc = None
    if icc and _icc_space(icc) == "GRAY" and not gray:
        icc = None
    planes = colour if alpha is None else np.concatenate([as_float(colour), alpha[..., None]], axis=2)
    q = quantize(planes, bits)
    exif = _exif_for_output(img.exif, w, h, img.dpi)
    if bits == 16 and fmt == "PNG":
        _write_png16(tmp, q, gray=gray, has_alpha=alpha is not None, icc=icc, dpi=img.dpi, exif=exif)
        return
    if bits == 16 and fmt == "TIFF":
        _write_tiff16(tmp, q, gray=gray, has_alpha=alpha is not None, icc=icc, dpi=img.dpi)
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


def _write_png16(
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


def _write_tiff16(
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


__all__ = [
    "DEFAULT_MAX_INPUT_PIXELS",
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "LUMA_601",
    "decode_pil",
    "READ_EXTENSIONS",
    "WRITE_FORMATS",
    "DecodedImage",
    "InputGuard",
    "apply_orientation",
    "check_output_size",
    "atomic_target",
    "check_pixels",
    "format_for_path",
    "quantize",
    "read_image",
    "write_image",
]
