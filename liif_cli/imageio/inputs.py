"""The one door for a user's file: what it is (by its content), and the guards every decoder runs under.

    found = identify("upload.bin")            # Identified(kind="still" | "animation" | "video" | "encoding", ...)
    with open_image(path, max_pixels=...) as im: ...   # a PIL image, its declared size checked
    with decoding(path, warn): ...            # any library exception inside becomes one InputError line

Every module that reads a user's file goes through here: the still reader (`read.py`), animations
(`liif_cli.animated`), videos (`liif_cli.video.reading`), the batch planner, the training and benchmark
loaders. This is the only module that calls `Image.open` or `av.open` (PyAV writes our own temporary video
through `open_container` too), so the guards cannot be forgotten by a new feature:

* the path: missing, a folder, an empty file: one line each (`check_path`);
* size: Pillow's own bomb check is lifted while a file is opened and ours, with the caller's `--max-pixels`,
  runs on the declared size before any pixel is decoded; an animation's later frames are checked as they come;
* library exceptions (Pillow, PyAV/FFmpeg, libtiff through Pillow, tifffile, pypng, zlib, numpy) are mapped
  to `InputError` here and nowhere else (`decoding`); a text chunk that inflates past Pillow's limit and an
  image declaring too many pixels are refused as possible decompression bombs;
* decoder messages: libtiff writes its warnings and errors to the C `stderr`, under `-q` too; its handlers
  are replaced (once, through ctypes: Pillow offers no hook) by one that hands each message to the `warn`
  of the file being decoded in this thread, as `FILE: module: message` (the CLI prints `warning: ...`);
  Pillow's and tifffile's log records (warnings and errors) go the same way. At most MAX_DECODER_MESSAGES a file, then a count. Pillow's
  Python warnings are silenced for the call (a corrupt file gets its one refusal line, not a trail).

The kind is decided by content: a `.liif` encoding by its safetensors header; an image by Pillow (GIF, PNG
and WebP with several frames are animations; every other format Pillow reads is a still, whatever its
name); a video by FFmpeg when Pillow does not know the file. The extension only breaks a tie: a file Pillow
reads as a still but named like a video (`.mp4`, `.mkv`...) is a video when FFmpeg finds a video stream in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, overload

from PIL import Image, UnidentifiedImageError

from ..errors import InputError, LiifError, first_line
from .image import DEFAULT_MAX_INPUT_PIXELS, Warn, check_pixels

if TYPE_CHECKING:
    from av.container import InputContainer, OutputContainer

KINDS = ("still", "animation", "video", "encoding")
ANIMATED_FORMATS = frozenset({"GIF", "PNG", "WEBP"})
"""Pillow formats whose several frames are upscaled as an animation (other multi-frame files: the first frame)."""
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi"})
"""Extensions a folder scan treats as video; for a file Pillow also reads, the tie-breaker."""
NOT_STILL_FORMATS = frozenset({"MPEG"})
"""Formats Pillow recognises but cannot decode (an MPEG-1 stream): left to FFmpeg."""
PICTURE_DEMUXERS = frozenset({"image2", "gif", "apng", "webp", "ico", "alias_pix", "brender_pix", "tty"})
"""FFmpeg demuxers (beside the `*_pipe` ones) that read pictures or text: a file only they read is not a video."""
MAX_DECODER_MESSAGES = 5
"""Decoder messages shown per file; the rest are counted in one more line."""


@dataclass(frozen=True)
class Identified:
    """What `identify` found: the kind, the format (Pillow's, FFmpeg's container name, or "LIIF"), the
    declared size (h, w) and the frame count when the header says it."""

    path: Path
    kind: str
    format: str
    hw: tuple[int, int] | None = None
    frames: int | None = None


def check_path(path: Path) -> None:
    """InputError for a missing, unreachable or empty file, or a folder (symlinks are followed)."""
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


# --- decoder messages ------------------------------------------------------------------------------


class _Messages:
    """Decoder messages of the file being decoded in this thread, capped at MAX_DECODER_MESSAGES."""

    def __init__(self, path: Path, warn: Warn):
        self.path, self.warn, self.count = path, warn, 0

    def add(self, text: str) -> None:
        self.count += 1
        if self.count <= MAX_DECODER_MESSAGES:
            self.warn(f"{self.path}: {' '.join(text.split())[:300]}")

    def close(self) -> None:
        if self.count > MAX_DECODER_MESSAGES:
            self.warn(f"{self.path}: {self.count - MAX_DECODER_MESSAGES} more decoder messages")


_local = threading.local()
_libtiff_lock = threading.Lock()
_libtiff_state: dict = {}


def _libtiff_message(module: bytes | None, fmt: bytes | None, ap: int | None) -> None:
    """libtiff's warning and error handler: the message goes to this thread's file, else to `warnings`."""
    try:
        buf = ctypes.create_string_buffer(1024)
        _libtiff_state["vsnprintf"](buf, len(buf), fmt or b"", ap)
        text = buf.value.decode("utf-8", "replace")
        if module:
            text = f"{module.decode('utf-8', 'replace')}: {text}"
        sink: _Messages | None = getattr(_local, "messages", None)
        if sink is not None:
            sink.add(text)
        else:
            from ..errors import LiifWarning

            warnings.warn(f"libtiff: {text}", LiifWarning, stacklevel=2)
    except Exception:  # an exception may not cross back into C
        pass


def _find_libtiff() -> str | None:
    """The libtiff Pillow's decoder is linked to (its wheel bundles one; a system Pillow uses the system's)."""
    from PIL import _imaging  # noqa: F401  (loads the libraries it links)

    with contextlib.suppress(OSError):
        with open("/proc/self/maps") as fh:
            for line in fh:
                if "libtiff" in line:
                    return line.split()[-1]
    return ctypes.util.find_library("tiff")


def _install_libtiff_handlers() -> None:
    """Route libtiff's messages to `_libtiff_message`, once per process; where that is not possible (no
    libtiff found, an ABI we cannot call), libtiff keeps printing as before."""
    if _libtiff_state:
        return
    with _libtiff_lock:
        if _libtiff_state:
            return
        _libtiff_state["installed"] = False
        for name in ("PIL", "tifffile"):
            logging.getLogger(name).addHandler(_DecoderLog())
        try:
            path = _find_libtiff()
            if path is None:
                return
            lib = ctypes.CDLL(path)
            libc = ctypes.CDLL(ctypes.util.find_library("c") if sys.platform != "win32" else "msvcrt")
            vsnprintf = libc.vsnprintf
            vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
            handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
            handler = handler_type(_libtiff_message)
            for name in ("TIFFSetWarningHandler", "TIFFSetErrorHandler"):
                setter = getattr(lib, name)
                setter.argtypes, setter.restype = [handler_type], ctypes.c_void_p
                setter(handler)
            _libtiff_state.update(vsnprintf=vsnprintf, handler=handler, lib=lib, installed=True)
        except (OSError, AttributeError, TypeError):
            return


# --- the guard -------------------------------------------------------------------------------------


def _default_warn(msg: str) -> None:
    warnings.warn(msg, stacklevel=4)


_DATA_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError, zlib.error)
"""What decoders raise on bad data (Pillow: SyntaxError for a broken header, OSError for truncation...)."""
_LIBRARIES = frozenset({"PIL", "av", "png", "tifffile", "imagecodecs"})
"""Libraries whose own exception classes mean a bad file (PyAV's FFmpegError, pypng's FormatError...)."""


def input_error(path: Path, exc: BaseException) -> InputError | None:
    """A library exception raised while reading `path` as the InputError the user sees (one line); None for
    an exception that says nothing about the file (AttributeError, NameError...: a bug, reported as one)."""
    library = type(exc).__module__.split(".")[0]
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return InputError(f"{path}: refused as a possible decompression bomb ({first_line(exc)})")
    if isinstance(exc, ValueError) and "too large" in str(exc) and "MAX_TEXT" in str(exc):
        return InputError(f"{path}: refused: a metadata chunk inflates past the safe limit (a decompression bomb?)")
    if isinstance(exc, MemoryError):
        return InputError(f"{path}: not enough memory to decode this file")
    if library == "av":
        return InputError(f"{path}: not a readable video ({first_line(exc)})")
    if isinstance(exc, _DATA_ERRORS + (ArithmeticError, RecursionError)) or library in _LIBRARIES:
        return InputError(f"{path}: truncated or corrupt file ({first_line(exc)})")
    return None


@contextlib.contextmanager
def decoding(path: str | os.PathLike, warn: Warn | None = None, *, quiet: bool = True) -> Iterator[None]:
    """Run decoding code for `path`: an exception that a bad file causes (`input_error`) becomes one
    InputError; libtiff's messages in this thread go to `warn` as `PATH: module: message`.

    `quiet` also silences Pillow's Python warnings and tifffile's log for the call (the warnings filters are
    process-wide: a decoding thread running beside others, the video reader's, passes False). A Pillow
    decompression-bomb warning becomes a refusal.
    """
    path = Path(path)
    _install_libtiff_handlers()
    outer = getattr(_local, "messages", None)
    messages = _Messages(path, warn or _default_warn)
    _local.messages = messages
    try:
        with _quiet(quiet):
            yield
    except LiifError:
        raise
    except Exception as exc:
        mapped = input_error(path, exc)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        _local.messages = outer
        messages.close()


@contextlib.contextmanager
def _quiet(on: bool) -> Iterator[None]:
    if not on:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


class _DecoderLog(logging.Handler):
    """Pillow and tifffile log what they find wrong in a file: a decoder message of the file being decoded in
    this thread. (With this handler present, Python's last-resort handler no longer prints their records bare
    on stderr; records still propagate to handlers an application set up.)"""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        sink: _Messages | None = getattr(_local, "messages", None)
        if sink is not None:
            sink.add(f"{record.name.split('.')[0]}: {record.getMessage()}")


# --- opening ---------------------------------------------------------------------------------------

_pillow_limit_lock = threading.Lock()


def pillow_open(fh: IO[bytes] | str, path: Path) -> Image.Image | None:
    """`Image.open` of an open file (or of `str(path)`) with Pillow's bomb check lifted (ours, with the caller's limit, follows).

    None for a TIFF whose layout Pillow does not know (tifffile alone reads it); InputError for anything
    else Pillow does not identify. Pillow's check reads a module global: it is lifted under a lock.
    """
    with _pillow_limit_lock:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(fh)
        except UnidentifiedImageError:
            if _is_tiff(path):
                return None
            raise InputError(f"{path}: not an image, or a format that cannot be read") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def open_pillow(
    path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS, warn: Warn | None = None
) -> Image.Image:
    """A user's image file opened by Pillow (the caller closes it), its declared size checked against
    `max_pixels` (None or 0: no limit); InputError for anything else. Decoding it later goes under `decoding`."""
    path = Path(path)
    check_path(path)
    with decoding(path, warn):
        im = pillow_open(str(path), path)  # Pillow owns the file handle: closing the image closes it
        if im is None:
            raise InputError(f"{path}: a TIFF layout only the still reader decodes")
        try:
            check_pixels(im.width, im.height, max_pixels, f"{path}: image of")
        except BaseException:
            im.close()
            raise
        return im


@contextlib.contextmanager
def open_image(
    path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS, warn: Warn | None = None
) -> Iterator[Image.Image]:
    """`open_pillow` as a context: everything done inside the block runs under `decoding` too."""
    im = open_pillow(path, max_pixels=max_pixels, warn=warn)
    with decoding(path, warn), im:
        yield im


@overload
def open_container(path: str | os.PathLike, mode: Literal["r"] = "r", **options: Any) -> InputContainer: ...
@overload
def open_container(path: str | os.PathLike, mode: Literal["w"], **options: Any) -> OutputContainer: ...


def open_container(
    path: str | os.PathLike, mode: Literal["r", "w"] = "r", **options: Any
) -> InputContainer | OutputContainer:
    """`av.open`: a user's file for reading (InputError when FFmpeg cannot open it), or our own temporary
    output for writing (`mode="w"`, `format=...`). PyAV must be installed (the `video` extra)."""
    import av

    path = Path(path)
    if mode == "w":
        return av.open(str(path), "w", **options)
    check_path(path)
    with decoding(path, quiet=False):
        return av.open(str(path), "r", **options)


# --- identifying -----------------------------------------------------------------------------------


def _is_encoding(head: bytes, size: int) -> bool:
    """A safetensors file (what `Encoding.save` writes): an 8-byte header length, then a JSON object."""
    if len(head) < 10:
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def identify(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS,
    media: bool = True,
    warn: Warn | None = None,
) -> Identified:
    """What a user's file is, from its content; InputError (one line) for anything liif does not read.

    Header only: no pixel is decoded (a GIF's second frame is looked for, which reads the first one's blocks). With
    `media=False` every image is a still and videos are refused (`liif serve`'s rule).
    """
    path = Path(path)
    check_path(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if _is_encoding(head, path.stat().st_size):
        return Identified(path, "encoding", "LIIF")
    still: Identified | None = None
    with decoding(path, warn), open(path, "rb") as fh:
        try:
            im, pillow_reads = pillow_open(fh, path), True
        except InputError:
            im, pillow_reads = None, False  # not an image: perhaps a video
        if pillow_reads and im is None:
            return Identified(path, "still", "TIFF")  # a layout for tifffile: the reader checks its size
        if im is not None:
            with im:
                fmt = str(im.format)
                if fmt not in NOT_STILL_FORMATS:
                    check_pixels(im.width, im.height, max_pixels, f"{path}: image of")
                    moving = fmt in ANIMATED_FORMATS and bool(getattr(im, "is_animated", False))
                    kind = "animation" if media and moving else "still"
                    still = Identified(path, kind, fmt, (im.height, im.width), None if moving else 1)
    if still is not None and not (media and path.suffix.lower() in VIDEO_EXTENSIONS):
        return still
    if media:
        video = _identify_video(path, max_pixels, quiet=still is not None)
        if video is not None:
            return video
    if still is not None:
        return still
    raise InputError(f"{path}: not an image{', a video' if media else ''} or an encoding that liif reads")


def _identify_video(path: Path, max_pixels: int | None, *, quiet: bool) -> Identified | None:
    """A video by FFmpeg's reading of the header; None when FFmpeg does not read it as one (`quiet`: a tie
    being broken, so no error either). A still format FFmpeg reads and Pillow does not stays refused."""
    try:
        import av  # noqa: F401
    except ImportError:
        if quiet:
            return None
        raise InputError(f"{path}: not an image; videos need PyAV (pip install 'liif-cli[video]')") from None
    try:
        container = open_container(path)
    except InputError:
        if path.suffix.lower() in VIDEO_EXTENSIONS and not quiet:
            raise  # named as a video: FFmpeg's reason is the one to give
        return None
    with container, decoding(path, quiet=False):
        fmt = container.format.name
        if set(fmt.split(",")) & PICTURE_DEMUXERS or fmt.endswith("_pipe"):
            return None  # one picture in a format Pillow cannot decode, or text: not a video
        if not container.streams.video:
            if quiet:
                return None
            raise InputError(f"{path}: has no video stream")
        cc = container.streams.video[0].codec_context
        hw = (cc.height, cc.width) if cc is not None and cc.width and cc.height else None
        if hw is not None:
            check_pixels(hw[1], hw[0], max_pixels, f"{path}: video of")
        return Identified(path, "video", fmt, hw, container.streams.video[0].frames or None)
