"""An uploaded file in, the bytes `liif upscale` would write out: through the very same batch functions.

The upload is written into a private temporary folder that this module creates (never a path a request
names), planned and run by `liif_cli.batch` exactly as the CLI runs one file, and the written output is
read back. So decoding safety (bombs, truncated files, modes, EXIF, ICC, alpha, 16-bit), the size
limits, rounding and encoding cannot drift from the CLI's. Messages name the upload, not the temp path.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LiifError, UsageError
from ..naming import output_name

if TYPE_CHECKING:
    from ..api import LazyModel
    from ..batch import BatchOptions

FORMATS = ("auto", "png", "jpg", "jpeg", "webp", "tif", "tiff")
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".tif": "image/tiff"}


@dataclass(frozen=True)
class UpscaleRequest:
    """The options of one upscale, as the CLI's strings (the same syntax, the same checks)."""

    scale: str | None = None
    size: str | None = None
    width: str | None = None
    height: str | None = None
    format: str = "auto"
    quality: str = "95"

    def options(self, max_pixels: int | None, max_out_pixels: int | None) -> BatchOptions:
        """The CLI's BatchOptions for these strings; a UsageError names the bad field."""
        from ..batch import BatchOptions
        from ..specs import parse_int, parse_size_spec

        fmt = str(self.format).strip().lower()
        if fmt not in FORMATS:
            raise UsageError(f"{{format}} must be one of {', '.join(FORMATS)}, got {self.format!r}", param="format")
        return BatchOptions(  # errors name their parameter: the app names it as the form field
            spec=parse_size_spec(scale=self.scale, size=self.size, width=self.width, height=self.height),
            ext=fmt,
            quality=parse_int(self.quality, "quality", minimum=1, maximum=100),
            max_pixels=max_pixels,
            max_out_pixels=max_out_pixels,
            media=False,  # one still image per request: an animation's first frame, no videos
        )


@dataclass
class ImageResult:
    """An encoded image to send: an upscale's output, or a render of an encoding."""

    data: bytes
    media_type: str
    filename: str  # what `liif upscale` would have named it: <stem>_<tag>.<ext>
    size: tuple[int, int]  # (width, height)
    warnings: list[str] = field(default_factory=list)


def safe_name(filename: str | None) -> tuple[str, str]:
    """(stem, suffix) of an upload's name, for display only: no folders, no odd characters."""
    from ..imageio import READ_EXTENSIONS

    base = Path(str(filename or "").replace("\\", "/")).name
    suffix = Path(base).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(base).stem).strip("._")[:100] or "image"
    return stem, suffix if suffix in READ_EXTENSIONS else ""


@contextlib.contextmanager
def errors_named(named: Callable[[str], str]) -> Iterator[None]:
    """LiifErrors raised inside speak of files as `named(text)` rewrites them (their parameters are still
    to be named by the app): no server path reaches a client."""
    try:
        yield
    except LiifError as exc:
        if exc.args:
            exc.args = (named(str(exc.args[0])), *exc.args[1:])
        raise


def file_named(path: Path) -> Callable[[str], str]:
    """`named` for a file of the server's image folder: the file's name instead of its path."""
    return lambda text: text.replace(str(path), path.name)


@contextlib.contextmanager
def uploaded(data: bytes, filename: str | None) -> Iterator[tuple[Path, Callable[[str], str]]]:
    """The upload as a file in a fresh private folder (deleted afterwards), and `named(text)`, which
    rewrites a message about that file to name the upload instead (no server path reaches a client)."""
    stem, suffix = safe_name(filename)
    folder = Path(tempfile.mkdtemp(prefix="liif-serve-"))
    source = folder / f"upload{suffix}"

    def named(text: str) -> str:
        return text.replace(str(source), f"{stem}{suffix}").replace(str(folder) + "/", "")

    try:
        source.write_bytes(data)
        yield source, named
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def upscale_bytes(
    data: bytes,
    filename: str | None,
    request: UpscaleRequest,
    model: LazyModel,
    *,
    max_pixels: int | None,
    max_out_pixels: int | None,
    check: Callable[[], None] = lambda: None,
) -> ImageResult:
    """Upscale one uploaded file with `model` (a `batch.LazyModel`); errors are LiifErrors naming the upload.

    `check()` is called at every progress tick and may raise (the job queue's cancellation).
    """
    from ..batch import Reporter, plan_batch, raise_for_failures, run_batch

    options = request.options(max_pixels, max_out_pixels)
    stem, _ = safe_name(filename)
    warnings: list[str] = []

    class Tick(Reporter):
        def progress(self, done: int, total: int) -> None:
            check()

        def warn(self, message: str) -> None:
            warnings.append(message)

    with uploaded(data, filename) as (source, named):
        check()
        jobs = plan_batch([source], options)
        results = run_batch(jobs, options, model, Tick())
        with errors_named(named):
            raise_for_failures(results, single_input=True)
        out = results[0]
        written, out_hw = out.output, out.out_hw
        if out.status != "written" or written is None or out_hw is None:  # not a failure, yet nothing written
            raise RuntimeError(f"the upscale wrote nothing ({out.status})")
        ext = ".jpg" if written.suffix == ".jpeg" else ".tif" if written.suffix == ".tiff" else written.suffix
        return ImageResult(
            data=written.read_bytes(),
            media_type=MEDIA_TYPES[ext],
            filename=output_name(stem, options.specs[0].tag(), written.suffix),
            size=(out_hw[1], out_hw[0]),
            warnings=[named(w) for w in warnings],
        )
