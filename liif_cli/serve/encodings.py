"""Encodings for the zoom viewer: an upload encoded once, then any window of it rendered at any size.

    stored = encode_upload(data, "photo.jpg", model, max_pixels=...)     # the encoder runs once
    tile = render_bytes(stored, RenderRequest(region="1200,800,8,8", size="256x256", format="png"), model, ...)

The upload is decoded as `liif upscale` decodes a file (`upscale.uploaded`: the same bombs, modes, EXIF,
ICC, alpha and 16-bit handling), encoded by the library (`Upscaler.encode`), and a render is the library's
region render (`Encoding.render(region=...)`) written by `imageio.write_image`: the same pixels as
`Upscaler.upscale(image, region=...)`. A tile costs its own pixels, whatever the zoom: the encoder never
runs again and the decoder reads only the latents under the region. The IIIF routes (`iiif`) use the same
two steps for a file of `--images DIR` (`encode_file`, `render_region`), and keep the decoded source pixels
beside the latents (`StoredEncoding.source`) for the sizes that need no model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import OutputError, UsageError
from ..naming import output_name
from .upscale import MEDIA_TYPES, ImageResult, UpscaleRequest, errors_named, file_named, safe_name, uploaded

if TYPE_CHECKING:
    from PIL import Image

    from ..api import LazyModel
    from ..encoding import Encoding
    from ..imageio import DecodedImage

# An encoding's format as the extension `--ext auto` would give it (PNG for what cannot be written).
_AUTO_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif"}


@dataclass
class StoredEncoding:
    """What the cache keeps: the library's Encoding, the upload's display name, and its source pixels
    rounded as `liif upscale` writes them (`decoded.to_pil`; about 2% of the latents' bytes)."""

    encoding: Encoding
    stem: str
    suffix: str
    source: Image.Image

    @property
    def nbytes(self) -> int:  # the cache is bounded by this
        return self.encoding.nbytes + len(self.source.getbands()) * self.source.width * self.source.height

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the encoded image, in input pixels."""
        h, w = self.encoding.in_hw
        return w, h


def encode_upload(
    data: bytes,
    filename: str | None,
    model: LazyModel,
    *,
    max_pixels: int | None,
    check: Callable[[], None] = lambda: None,
) -> StoredEncoding:
    """Decode the upload as the CLI does and encode it with `model` (an `api.LazyModel`)."""
    from ..imageio import read_image

    warnings: list[str] = []
    with uploaded(data, filename) as (source, named):
        check()
        with errors_named(named):
            img = read_image(source, max_pixels=max_pixels, warn=warnings.append)
        check()
        encoding = model.get().encode(img)
    stem, suffix = safe_name(filename)
    return StoredEncoding(encoding, stem, suffix, _source_pixels(img))


def _source_pixels(img: DecodedImage) -> Image.Image:
    from ..decoded import to_pil

    return to_pil(img)


def read_source(path: Path, *, max_pixels: int | None) -> Image.Image:
    """A file's pixels as `liif upscale` decodes them (the guarded reader), rounded as it writes them."""
    from ..imageio import read_image

    with errors_named(file_named(path)):
        return _source_pixels(read_image(path, max_pixels=max_pixels, warn=lambda message: None))


def encode_file(
    path: Path, model: LazyModel, *, max_pixels: int | None, check: Callable[[], None] = lambda: None
) -> StoredEncoding:
    """A file of the server's image folder, decoded as `liif upscale` decodes it and encoded with `model`."""
    from ..imageio import read_image

    with errors_named(file_named(path)):
        img = read_image(path, max_pixels=max_pixels, warn=lambda message: None)
    check()
    encoding = model.get().encode(img)
    stem, suffix = safe_name(path.name)
    return StoredEncoding(encoding, stem, suffix, _source_pixels(img))


def render_region(
    stored: StoredEncoding,
    region: tuple[float, float, float, float] | None,
    size: tuple[int, int],
    model: LazyModel,
    check: Callable[[], None] = lambda: None,
) -> DecodedImage:
    """The library's region render of `stored` at `size` = (width, height), on `model`'s device: the same
    pixels as `Upscaler.upscale(image, region=region, size=size)` (and `liif upscale --region --size`)."""
    # The encoding may have been made on another worker's device: render it with this worker's model.
    encoding = replace(stored.encoding, upscaler=model.get())
    return encoding.render(size=size, region=region, progress=lambda done, total: check())


@dataclass(frozen=True)
class RenderRequest(UpscaleRequest):
    """One render of a stored encoding: an optional region and the CLI's size and format strings.

    The size (exactly one of scale / size / width / height) is of the region, as `--region` with `liif upscale`.
    """

    region: str | None = None  # the upscale's fields, plus the window to render

    def plan(
        self, stored: StoredEncoding, max_out_pixels: int | None
    ) -> tuple[tuple[float, float, float, float] | None, tuple[int, int], str, int]:
        """(region or None, out_hw, extension, quality), every check done; a UsageError names the bad field."""
        from ..imageio import WRITE_FORMATS, check_output_size
        from ..specs import parse_region

        options = self.options(None, max_out_pixels)
        encoding = stored.encoding
        region = None if self.region is None else parse_region(self.region)
        out_hw = replace(options.specs[0], region=region).resolve(encoding.in_hw, max_out_pixels)  # region checked
        if options.ext == "auto":
            ext = _AUTO_EXT.get(str(encoding.meta.get("format") or "").upper(), ".png")
        else:
            ext = {"jpeg": ".jpg", "tiff": ".tif"}.get(options.ext, f".{options.ext}")
        try:
            check_output_size(WRITE_FORMATS[ext], out_hw[1], out_hw[0])
        except OutputError as exc:  # a format that cannot hold the size: a bad option value, as the upscale's
            raise exc.as_kind(UsageError) from None
        return region, out_hw, ext, options.quality

    def tag(self) -> str:
        """The name suffix `liif upscale` would use for this size (x2, 256x256, w1920, h1080)."""
        from ..specs import parse_size_spec

        return parse_size_spec(scale=self.scale, size=self.size, width=self.width, height=self.height).tag()


def render_bytes(
    stored: StoredEncoding,
    request: RenderRequest,
    model: LazyModel,
    *,
    max_out_pixels: int | None,
    check: Callable[[], None] = lambda: None,
) -> ImageResult:
    """Render (a region of) `stored` on `model`'s device and encode it as `liif upscale` writes files."""
    from ..imageio import write_image

    region, out_hw, ext, quality = request.plan(stored, max_out_pixels)
    image = render_region(stored, region, (out_hw[1], out_hw[0]), model, check)
    with tempfile.TemporaryDirectory(prefix="liif-serve-") as folder:
        target = Path(folder) / f"render{ext}"
        write_image(image, target, quality=quality, warn=lambda message: None)
        data = target.read_bytes()
    return ImageResult(data, MEDIA_TYPES[ext], output_name(stored.stem, request.tag(), ext), (out_hw[1], out_hw[0]))
