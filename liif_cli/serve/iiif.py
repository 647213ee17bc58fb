"""The IIIF Image API 3.0 (compliance level 2, plus `sizeUpscaling` and mirroring) under `/iiif/3`.

    GET /iiif/3/{identifier}                                  303 to its info.json (base URI redirect)
    GET /iiif/3/{identifier}/info.json                        the image information (JSON-LD)
    GET /iiif/3/{identifier}/{region}/{size}/{rotation}/{quality}.{format}

Built as the spec and Cantaloupe split the work, each part once:

- `parse_image_request` reads the URL's four segments into an `ImageRequest` (the IIIF grammar; a syntax
  error is 400, a valid request for something this server does not do is 501). Nothing else parses them.
- `Resolver` turns an identifier into a `Source`: a file's name in `--images DIR` (with or without its
  extension), resolved strictly inside DIR (no separators, no dot files, no symlink leaving it), or the id
  of an encoding uploaded to `POST /v1/encodings`. `{id}@{K}x` (K from 2 to `MAX_MAGNIFICATION`) is the
  same image K times larger: its info.json advertises K times the width and height, so a viewer that never
  sends `^` sizes still zooms into the super-resolved image.
- `ImageRequest.plan` resolves region and size against the (possibly magnified) image and decides who
  renders: when the output has no more pixels than the source pixels under the region, the source pixels
  themselves (exactly, at the region's own size; otherwise Pillow's Lanczos resampling, on the request's
  own thread: no model, no job queue). When it has more (a `^` size above the region, or any tile of a
  `@Kx` identifier finer than the source), the library's region render of a cached encoding
  (`encodings.render_region`, one job on the model queue): the pixels `liif upscale --region --size` makes.
- `finish` applies mirroring, rotation (multiples of 90), quality (default, color, gray, bitonal) and
  writes jpg, png or webp.

Errors are the server's JSON body, `{"error": "..."}`, with the spec's codes (400, 404, 501); every
response under `/iiif/` carries `Access-Control-Allow-Origin: *` (`IIIFCors`), as the spec requires.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol, TypeVar
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from PIL import Image

    from ..batch import LazyModel
    from .app import ServeConfig
    from .cache import ByteLRU
    from .encodings import StoredEncoding
    from .jobs import Job

T = TypeVar("T")


class RunJob(Protocol):
    """The app's `run_job(request, work)`: `work(model, job)`'s result from the model queue, or the Response
    to send for a cancelled job."""

    async def __call__(self, request: Request, work: Callable[[LazyModel, Job], T], /) -> T | Response: ...


CONTEXT = "http://iiif.io/api/image/3/context.json"
PROFILE_URI = "http://iiif.io/api/image/3/level2.json"
PREFIX = "/iiif/3"
MAX_MAGNIFICATION = 32  # the largest K of `{id}@{K}x`
MAX_AREA = 4096 * 4096  # the largest output (pixels) one request may ask for; `maxArea` in info.json
TILE = 512  # the tile size advertised in info.json
QUALITIES = ("default", "color", "gray", "bitonal")
FORMATS = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
KNOWN_FORMATS = ("tif", "gif", "pdf", "jp2")  # in the spec, not served: 501
EXTRA_FEATURES = [  # beyond level 2 (which already has the region, size and rotation-by-90 forms)
    "canonicalLinkHeader",
    "mirroring",
    "profileLinkHeader",
    "sizeUpscaling",
]

Identifier = Annotated[
    str,
    PathParam(
        description="A file name in the server's image folder (with or without its extension), or an encoding "
        f"id from POST /v1/encodings; append @Kx (K from 2 to {MAX_MAGNIFICATION}) for the image K times larger.",
        examples=["photo", "photo@8x"],
    ),
]
RegionParam = Annotated[
    str,
    PathParam(
        description="full, square, x,y,w,h (pixels) or pct:x,y,w,h (percent of the image)",
        examples=["full", "0,0,512,512", "pct:25,25,50,50"],
    ),
]
SizeParam = Annotated[
    str,
    PathParam(
        description="max, w,, ,h, pct:n, w,h or !w,h; with a leading ^ it may exceed the region "
        "(rendered by LIIF); without, a size above the region is a 400",
        examples=["max", "512,", "^2048,", "!800,600"],
    ),
]
RotationParam = Annotated[
    str,
    PathParam(description="0, 90, 180 or 270 degrees clockwise; ! first mirrors the image", examples=["0", "!90"]),
]
QualityFormatParam = Annotated[
    str,
    PathParam(
        description="quality (default, color, gray, bitonal) . format (jpg, png, webp)",
        examples=["default.jpg", "gray.png"],
    ),
]

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_REGION_PX = re.compile(r"(\d+),(\d+),(\d+),(\d+)")
_REGION_PCT = re.compile(rf"pct:({_NUM}),({_NUM}),({_NUM}),({_NUM})")
_SIZE = re.compile(rf"(\^)?(?:(max)|pct:({_NUM})|(\d+),|,(\d+)|(!)?(\d+),(\d+))")
_ROTATION = re.compile(rf"(!)?({_NUM})")
_QUALITY_FORMAT = re.compile(r"([a-z]+)\.([a-z0-9]+)")
_MAGNIFIED = re.compile(r"(.+)@(\d+)x")


def bad(message: str) -> HTTPException:
    return HTTPException(400, message)


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


@dataclass(frozen=True)
class ImageRequest:
    """One image request, parsed: region, size, rotation, quality and format, as the URL said them."""

    region: tuple  # ("full",) | ("square",) | ("px", x, y, w, h) | ("pct", x, y, w, h)
    size: tuple  # ("max",) | ("pct", n) | ("w", w) | ("h", h) | ("wh", w, h) | ("confined", w, h)
    upscale: bool  # the size had `^`
    mirror: bool
    rotation: int  # 0, 90, 180 or 270 (clockwise)
    quality: str
    format: str

    def plan(self, width: int, height: int, k: int = 1, max_area: int = MAX_AREA) -> Plan:
        """Region and size resolved against the image of `width` x `height` source pixels shown at `k` times
        its size; a region outside the image, an empty size, a size above the region without `^`, or one
        over `max_area` is a 400."""
        big_w, big_h = width * k, height * k
        x, y, w, h = self._region(big_w, big_h)
        out_w, out_h = self._size(w, h, max_area)
        if out_w < 1 or out_h < 1:
            raise bad(f"size {self.size_text()} is empty for the {w}x{h} region")
        if not self.upscale and (out_w > w or out_h > h):
            raise bad(f"size {out_w}x{out_h} is larger than the {w}x{h} region: ask for it with ^ (sizeUpscaling)")
        if out_w * out_h > max_area:
            raise bad(f"size {out_w}x{out_h} is over the server's maxArea of {max_area} pixels")
        box = (x / k, y / k, (x + w) / k, (y + h) / k)  # in source pixels
        model = out_w > (box[2] - box[0]) * (1 + 1e-9) or out_h > (box[3] - box[1]) * (1 + 1e-9)
        full = (x, y, w, h) == (0, 0, big_w, big_h)
        return Plan((x, y, w, h), (out_w, out_h), box, model, full)

    def _region(self, big_w: int, big_h: int) -> tuple[int, int, int, int]:
        kind = self.region[0]
        if kind == "full":
            return 0, 0, big_w, big_h
        if kind == "square":
            side = min(big_w, big_h)
            return (big_w - side) // 2, (big_h - side) // 2, side, side
        if kind == "px":
            x, y, w, h = self.region[1:]
        else:  # pct
            px, py, pw, ph = self.region[1:]
            x, y = _round(px * big_w / 100), _round(py * big_h / 100)
            w, h = max(1, _round(pw * big_w / 100)), max(1, _round(ph * big_h / 100))
        if x >= big_w or y >= big_h:
            raise bad(f"region {self.region_text()} is outside the {big_w}x{big_h} image")
        return x, y, min(w, big_w - x), min(h, big_h - y)

    def _size(self, w: int, h: int, max_area: int) -> tuple[int, int]:
        kind = self.size[0]
        if kind == "max":
            s = min(1.0, math.sqrt(max_area / (w * h))) if not self.upscale else math.sqrt(max_area / (w * h))
            if s == 1.0:
                return w, h
            return max(1, math.floor(w * s)), max(1, math.floor(h * s))
        if kind == "pct":
            n = self.size[1]
            return _round(w * n / 100), _round(h * n / 100)
        if kind == "w":
            return self.size[1], max(1, _round(h * self.size[1] / w))
        if kind == "h":
            return max(1, _round(w * self.size[1] / h)), self.size[1]
        if kind == "wh":
            return self.size[1], self.size[2]
        bw, bh = self.size[1], self.size[2]  # confined: the largest size that fits, keeping the aspect ratio
        s = min(bw / w, bh / h)
        return max(1, min(bw, _round(w * s))), max(1, min(bh, _round(h * s)))

    def region_text(self) -> str:
        kind = self.region[0]
        if kind in ("full", "square"):
            return kind
        values = ",".join(f"{v:g}" for v in self.region[1:])
        return values if kind == "px" else f"pct:{values}"

    def size_text(self) -> str:
        up = "^" if self.upscale else ""
        kind, *v = self.size
        if kind == "max":
            return up + "max"
        if kind == "pct":
            return f"{up}pct:{v[0]:g}"
        if kind == "w":
            return f"{up}{v[0]},"
        if kind == "h":
            return f"{up},{v[0]}"
        return f"{up}{'!' if kind == 'confined' else ''}{v[0]},{v[1]}"  # wh, confined

    def canonical(self, plan: Plan) -> str:
        """The canonical path after the identifier (the spec's section 4.7)."""
        x, y, w, h = plan.region
        region = "full" if plan.full else f"{x},{y},{w},{h}"
        out_w, out_h = plan.size
        size = ("^" if out_w > w or out_h > h else "") + ("max" if (out_w, out_h) == (w, h) else f"{out_w},{out_h}")
        rotation = f"{'!' if self.mirror else ''}{self.rotation}"
        return f"{region}/{size}/{rotation}/{self.quality}.{self.format}"


@dataclass(frozen=True)
class Plan:
    region: tuple[int, int, int, int]  # in the (magnified) image's pixels
    size: tuple[int, int]  # (width, height) of the output before rotation
    box: tuple[float, float, float, float]  # the region in source pixels: left, top, right, bottom
    model: bool  # more output pixels than source pixels under the region: LIIF renders it
    full: bool


def parse_image_request(region: str, size: str, rotation: str, quality_format: str) -> ImageRequest:
    """The URL's last four segments as an ImageRequest: 400 for bad syntax, 501 for what is not served."""
    # region
    if region in ("full", "square"):
        parsed_region: tuple = (region,)
    elif m := _REGION_PX.fullmatch(region):
        parsed_region = ("px", *(int(v) for v in m.groups()))
    elif m := _REGION_PCT.fullmatch(region):
        parsed_region = ("pct", *(float(v) for v in m.groups()))
        if any(v > 100 for v in parsed_region[1:]):
            raise bad(f"region {region}: percentages are at most 100")
    else:
        raise bad(f"region must be full, square, x,y,w,h or pct:x,y,w,h; got {region!r}")
    if parsed_region[0] in ("px", "pct") and (parsed_region[3] <= 0 or parsed_region[4] <= 0):
        raise bad(f"region {region} is empty: its width and height must be > 0")
    # size
    m = _SIZE.fullmatch(size)
    if not m:
        raise bad(f"size must be max, w,, ,h, pct:n, w,h or !w,h (each with an optional ^); got {size!r}")
    up, is_max, pct, w_only, h_only, confined, w, h = m.groups()
    if is_max:
        parsed_size: tuple = ("max",)
    elif pct is not None:
        parsed_size = ("pct", float(pct))
        if parsed_size[1] <= 0:
            raise bad(f"size {size}: the percentage must be > 0")
    elif w_only is not None:
        parsed_size = ("w", int(w_only))
    elif h_only is not None:
        parsed_size = ("h", int(h_only))
    else:
        parsed_size = ("confined" if confined else "wh", int(w), int(h))
    if any(v == 0 for v in parsed_size[1:]):
        raise bad(f"size {size} is empty: every dimension must be > 0")
    # rotation
    m = _ROTATION.fullmatch(rotation)
    if not m:
        raise bad(f"rotation must be a number from 0 to 360, optionally after !; got {rotation!r}")
    degrees = float(m.group(2))
    if degrees > 360:
        raise bad(f"rotation must be from 0 to 360, got {rotation!r}")
    if degrees % 90:
        raise HTTPException(501, f"rotation {rotation}: only multiples of 90 are served")
    mirror = m.group(1) is not None
    # quality.format
    m = _QUALITY_FORMAT.fullmatch(quality_format)
    if not m:
        raise bad(f"the last segment must be quality.format (e.g. default.jpg); got {quality_format!r}")
    quality, fmt = m.groups()
    if quality not in QUALITIES:
        raise bad(f"quality must be one of {', '.join(QUALITIES)}; got {quality!r}")
    if fmt not in FORMATS:
        if fmt in KNOWN_FORMATS:
            raise HTTPException(501, f"format {fmt} is not served (formats: {', '.join(FORMATS)})")
        raise bad(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return ImageRequest(parsed_region, parsed_size, bool(up), mirror, int(degrees) % 360, quality, fmt)


# --- the resolver: identifier -> source ----------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A resolved identifier: a file of the image folder or an uploaded encoding, at magnification `k`."""

    identifier: str
    k: int
    path: Path | None = None
    key: tuple | None = None  # (path, mtime_ns, size): a file's identity, for the caches
    stored: StoredEncoding | None = None  # an uploaded encoding

    def file(self) -> tuple[Path, tuple]:
        """(path, key) of a file of the image folder; a ValueError for an uploaded encoding (a caller's bug)."""
        if self.path is None or self.key is None:
            raise ValueError(f"{self.identifier!r} is an uploaded encoding, not a file of the image folder")
        return self.path, self.key


class Resolver:
    """`Resolver(images_dir, encodings, max_pixels)`: identifiers to sources, and their cached pixels and
    encodings. Encodings of folder images share the server's encoding cache (`ByteLRU`) with uploads."""

    def __init__(self, images: Path | None, encodings: ByteLRU, max_pixels: int | None):
        from .cache import ByteLRU

        self.root = None if images is None else Path(images).resolve(strict=True)
        self.encodings = encodings
        self.max_pixels = max_pixels
        self._encoded: dict[tuple, str] = {}  # file key -> id in `encodings`
        self._pending: dict[tuple, asyncio.Future[StoredEncoding | Response]] = {}
        self._sources = ByteLRU(512 * 2**20)  # decoded source pixels of folder images
        self._source_ids: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def resolve(self, identifier: str) -> Source:
        """The source named by `identifier` (404 when there is none; 400 for a bad `@Kx`)."""
        found = self._find(identifier, 1)
        if found is not None:
            return found
        m = _MAGNIFIED.fullmatch(identifier)
        if m:
            k = int(m.group(2))
            if not 2 <= k <= MAX_MAGNIFICATION:
                raise bad(f"{identifier}: the magnification @Kx takes K from 2 to {MAX_MAGNIFICATION}")
            found = self._find(m.group(1), k)
            if found is not None:
                return found
        where = "in the served folder, nor an encoding" if self.root is not None else "(an encoding id)"
        raise HTTPException(404, f"no image {identifier!r} {where}")

    def _find(self, name: str, k: int) -> Source | None:
        path = self._file(name)
        if path is not None:
            st = path.stat()
            return Source(name, k, path, (str(path), st.st_mtime_ns, st.st_size))
        from .cache import Evicted

        try:
            return Source(name, k, stored=self.encodings.get(name))
        except Evicted:
            raise
        except KeyError:
            return None

    def _file(self, name: str) -> Path | None:
        """`name` (or `name` + a readable extension) as a regular file directly inside the folder."""
        from ..imageio import READ_EXTENSIONS

        if self.root is None or not name or name.startswith(".") or any(c in name for c in "/\\\0"):
            return None
        if Path(name).suffix.lower() in READ_EXTENSIONS:
            candidates = [name]
        else:
            candidates = [name + e for ext in sorted(READ_EXTENSIONS) for e in {ext, ext.upper()}]
        found = []
        for candidate in candidates:
            path = self.root / candidate
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if real.parent == self.root and real.is_file():
                found.append(real)
        if len(set(found)) > 1:
            names = ", ".join(sorted(p.name for p in set(found)))
            raise HTTPException(404, f"{name!r} is ambiguous ({names}): name the file with its extension")
        return found[0] if found else None

    def size(self, source: Source) -> tuple[int, int]:
        """(width, height) in source pixels, as `liif upscale` sees the file (EXIF orientation applied)."""
        if source.stored is not None:
            return source.stored.size
        return self.pixels(source).size

    def pixels(self, source: Source) -> Image.Image:
        """The source pixels (PIL, rounded as `liif upscale` writes them): kept with an encoding, or read
        through the guarded reader and cached (512 MiB of them, least recently used out first)."""
        if source.stored is not None:
            return source.stored.source
        path, key = source.file()
        stored = self._cached_encoding(key)
        if stored is not None:
            return stored.source
        from .cache import Unknown
        from .encodings import read_source

        with self._lock:
            known = self._source_ids.get(key)
        if known is not None:
            try:
                return self._sources.get(known).image
            except Unknown:
                pass
        image = read_source(path, max_pixels=self.max_pixels)
        with self._lock:
            self._source_ids[key] = self._sources.add(_Pixels(image))
        return image

    def _cached_encoding(self, key: tuple) -> StoredEncoding | None:
        from .cache import Unknown

        with self._lock:
            known = self._encoded.get(key)
        if known is None:
            return None
        try:
            return self.encodings.get(known)
        except Unknown:
            return None

    async def encoding(self, source: Source, run_job: RunJob, request: Request) -> StoredEncoding | Response:
        """The source's encoding: an upload's own, a folder image's from the cache, or made now by one job
        on the model queue (concurrent requests for the same image wait for that one job). May return the
        Response `run_job` gives for a cancelled job."""
        from .encodings import encode_file

        if source.stored is not None:
            return source.stored
        path, key = source.file()
        stored = self._cached_encoding(key)
        if stored is not None:
            return stored
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[StoredEncoding | Response] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            max_pixels = self.max_pixels

            def work(model: LazyModel, job: Job) -> StoredEncoding:
                return encode_file(path, model, max_pixels=max_pixels, check=job.check)

            result = await run_job(request, work)
            if not isinstance(result, Response):
                with self._lock:
                    self._encoded[key] = self.encodings.add(result)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._pending.pop(key, None)


@dataclass
class _Pixels:
    image: Image.Image

    @property
    def nbytes(self) -> int:
        return len(self.image.getbands()) * self.image.width * self.image.height


# --- the processor ---------------------------------------------------------------------------------------


def from_source(pixels: Image.Image, plan: Plan) -> Image.Image:
    """The plan's region from the source pixels: exactly them at the region's own size, else resampled
    down with Pillow's Lanczos filter (over the region's exact box, fractional for `@Kx`)."""
    from PIL import Image

    if pixels.mode == "I;16":
        pixels = _to_8bit(pixels)
    left, top, right, bottom = plan.box
    whole = all(float(v).is_integer() for v in plan.box)
    if whole and plan.size == (right - left, bottom - top):
        return pixels.crop((int(left), int(top), int(right), int(bottom)))
    return pixels.resize(plan.size, Image.Resampling.LANCZOS, box=plan.box)


def _to_8bit(image: Image.Image) -> Image.Image:
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.rint(np.asarray(image, dtype=np.float32) / 257).astype(np.uint8))


def finish(image: Image.Image, request: ImageRequest) -> bytes:
    """Mirror, rotate (clockwise), apply the quality and encode in the requested format."""
    from PIL import Image

    if image.mode == "I;16":
        image = _to_8bit(image)
    if request.mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    turn = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}
    if request.rotation:
        image = image.transpose(turn[request.rotation])
    alpha = image.mode in ("RGBA", "LA")
    if request.quality == "color":
        image = image.convert("RGBA" if alpha else "RGB")
    elif request.quality == "gray":
        image = image.convert("LA" if alpha else "L")
    elif request.quality == "bitonal":
        image = image.convert("L").point(lambda v: 255 if v >= 128 else 0, "1")
    if request.format == "jpg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB" if image.mode in ("RGBA", "P") else "L")
    elif request.format == "webp" and image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if image.mode == "LA" else "RGB")
    out = io.BytesIO()
    if request.format == "jpg":
        image.save(out, "JPEG", quality=95)
    elif request.format == "webp":
        image.save(out, "WEBP", quality=95)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def info(identifier_url: str, width: int, height: int, k: int, max_area: int) -> dict:
    """The image information of an image of `width` x `height` source pixels shown `k` times larger."""
    big_w, big_h = width * k, height * k
    factors = [1]
    while TILE * factors[-1] < max(big_w, big_h):
        factors.append(factors[-1] * 2)
    sizes = []  # whole-image sizes made from the source pixels (cheap), from the source's own size down to ~64
    f = 1
    while True:
        w, h = math.ceil(big_w / f), math.ceil(big_h / f)
        if w <= width and h <= height:
            sizes.append({"width": w, "height": h})
        if (max(w, h) <= 64 and w <= width and h <= height) or f >= 2**20:
            break
        f *= 2
    sizes.reverse()  # the spec lists them smallest first
    return {
        "@context": CONTEXT,
        "id": identifier_url,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": "level2",
        "width": big_w,
        "height": big_h,
        "maxArea": max_area,
        "sizes": sizes,
        "tiles": [{"width": TILE, "height": TILE, "scaleFactors": factors}],
        "extraQualities": [q for q in QUALITIES if q != "default"],
        "extraFormats": ["webp"],
        "extraFeatures": EXTRA_FEATURES,
    }


# --- CORS and the routes ---------------------------------------------------------------------------------


class IIIFCors:
    """`Access-Control-Allow-Origin: *` on every response under /iiif/ (errors included), and the answer
    to a browser's preflight (OPTIONS), which may ask to send `Authorization` (a server with a token)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/iiif/"):
            return await self.app(scope, receive, send)
        if scope.get("method") == "OPTIONS":
            headers = [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
                (b"access-control-allow-headers", b"Authorization"),
                (b"access-control-max-age", b"600"),
                (b"content-length", b"0"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"access-control-allow-origin"]
                message = {**message, "headers": [*kept, (b"access-control-allow-origin", b"*")]}
            await send(message)

        await self.app(scope, receive, sending)


def add_routes(app: FastAPI, config: ServeConfig, run_job: RunJob) -> Resolver:
    """The IIIF routes on `app` (`run_job` is the app's: a job on the model queue, or the Response for a
    cancelled one). Returns the resolver (also `app.state.iiif`)."""
    from starlette.concurrency import run_in_threadpool

    from ..decoded import to_pil
    from .docs import errors
    from .encodings import render_region

    resolver = Resolver(config.images, app.state.encodings, config.max_pixels)
    app.state.iiif = resolver
    max_area = min(MAX_AREA, config.max_out_pixels or MAX_AREA)

    def base(request: Request, identifier: str) -> str:
        return f"{str(request.base_url).rstrip('/')}{PREFIX}/{quote(identifier, safe='@')}"

    @app.get(
        f"{PREFIX}/{{identifier}}",
        summary="IIIF: the base URI redirects to info.json",
        status_code=303,
        response_class=RedirectResponse,
        responses={303: {"description": "to info.json"}, **errors(400, 404, 422)},
        tags=["IIIF"],
    )
    async def iiif_base(request: Request, identifier: Identifier) -> RedirectResponse:
        resolver.resolve(identifier)
        return RedirectResponse(f"{base(request, identifier)}/info.json", status_code=303)

    @app.get(
        f"{PREFIX}/{{identifier}}/info.json",
        summary="IIIF Image API 3.0 image information",
        responses={200: {"content": {"application/json": {}, "application/ld+json": {}}}, **errors(400, 404, 422)},
        tags=["IIIF"],
    )
    async def iiif_info(request: Request, identifier: Identifier) -> JSONResponse:
        source = resolver.resolve(identifier)
        width, height = await run_in_threadpool(resolver.size, source)
        body = info(base(request, identifier), width, height, source.k, max_area)
        ld = "application/ld+json" in request.headers.get("accept", "")
        media = f'application/ld+json;profile="{CONTEXT}"' if ld else "application/json"
        return JSONResponse(body, media_type=media, headers={"Link": f'<{PROFILE_URI}>;rel="profile"'})

    @app.get(
        f"{PREFIX}/{{identifier}}/{{region}}/{{size}}/{{rotation}}/{{quality_format}}",
        summary="IIIF Image API 3.0 image request",
        response_class=Response,
        responses={200: {"content": {m: {} for m in FORMATS.values()}}, **errors(400, 404, 413, 422, 429, 501, 503)},
        tags=["IIIF"],
    )
    async def iiif_image(
        request: Request,
        identifier: Identifier,
        region: RegionParam,
        size: SizeParam,
        rotation: RotationParam,
        quality_format: QualityFormatParam,
    ) -> Response:
        parsed = parse_image_request(region, size, rotation, quality_format)
        source = resolver.resolve(identifier)
        width, height = await run_in_threadpool(resolver.size, source)
        plan = parsed.plan(width, height, source.k, max_area)
        if plan.model:
            stored = await resolver.encoding(source, run_job, request)
            if isinstance(stored, Response):
                return stored
            left, top, right, bottom = plan.box
            window = (left, top, right - left, bottom - top)

            def work(model: LazyModel, job: Job) -> bytes:
                return finish(to_pil(render_region(stored, window, plan.size, model, job.check)), parsed)

            data = await run_job(request, work)
            if isinstance(data, Response):
                return data
        else:
            pixels = await run_in_threadpool(resolver.pixels, source)
            data = await run_in_threadpool(lambda: finish(from_source(pixels, plan), parsed))
        links = f'<{PROFILE_URI}>;rel="profile", <{base(request, identifier)}/{parsed.canonical(plan)}>;rel="canonical"'
        return Response(
            data, media_type=FORMATS[parsed.format], headers={"Link": links, "Cache-Control": "max-age=3600"}
        )

    return resolver
