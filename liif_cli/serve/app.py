"""The FastAPI app: routes parse the request and shape the answer; the library does the work.

    app = create_app(ServeConfig(model="edsr-baseline", devices=("cpu",)))

Every error is JSON, `{"error": "<one line>"}`, with a 4xx status for anything the client can fix:
400 bad options, fields or region, 404 unknown path or unknown / evicted encoding, 413 upload over
the byte limit, 422 a file that is not a readable image or is over the pixel limit, 429 queue full
(with Retry-After), 503 the model cannot be loaded. A 500 is a bug, and is logged with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import InputError, LiifError, ModelError, OutputError, UsageError
from ..imageio import DEFAULT_MAX_INPUT_PIXELS, DEFAULT_MAX_OUTPUT_PIXELS
from ..load_options import LoadOptions
from .cache import ByteLRU, Evicted, TooLarge, Unknown
from .docs import DocsPolicy, errors
from .docs import openapi as described_openapi
from .encodings import RenderRequest, StoredEncoding, encode_upload, render_bytes
from .iiif import IIIFCors
from .iiif import add_routes as add_iiif_routes
from .jobs import JobCancelled, JobQueue, QueueFull
from .middleware import AccessLog, BearerToken, BodyLimit
from .upscale import MEDIA_TYPES, ImageResult, UpscaleRequest, upscale_bytes

if TYPE_CHECKING:
    from ..api import LazyModel
    from .jobs import Job

T = TypeVar("T")
LOG = logging.getLogger("liif.serve")
STATIC = Path(__file__).parent / "static"
SCALE_DOC = "Exactly one of scale, size, width, height. The factor: S, or SX,SY for each axis."
SIZE_DOC = "Exactly one of scale, size, width, height. The output size, WIDTHxHEIGHT."
WIDTH_DOC = "Exactly one of scale, size, width, height. The output width; the height keeps the aspect ratio."
HEIGHT_DOC = "Exactly one of scale, size, width, height. The output height; the width keeps the aspect ratio."
FORMAT_DOC = "auto (the input's format), png, jpg, webp or tif: the formats `liif upscale` writes."
QUALITY_DOC = "JPEG and WebP quality, 1-100."
REGION_DOC = "x,y,w,h in input pixels (fractions allowed), inside the image; default the whole image."
IMAGE_200: dict[int | str, dict[str, Any]] = {200: {"content": {media: {} for media in MEDIA_TYPES.values()}}}
"""The image answer of a route, as the OpenAPI schema declares it: the formats `liif upscale` writes."""
UPSCALE_FIELDS = frozenset({"image", "scale", "size", "width", "height", "format", "quality"})
RENDER_FIELDS = frozenset({"region", "scale", "size", "width", "height", "format", "quality"})


@dataclass(frozen=True)
class ServeConfig:
    """What `liif serve` was started with: how the model loads (`load`, the option block every command that
    loads a model shares), the devices it runs on, and the server's own settings. The pixel limits are the
    CLI's defaults."""

    model: str = "edsr-baseline"
    devices: tuple[str, ...] = ("auto",)  # one worker each; each loads the model with `load` on its device
    load: LoadOptions = LoadOptions()  # backend, precision, tile, threads, batch size...; its device: `devices`
    max_upload_bytes: int = 100 * 2**20
    max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS
    max_out_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS
    max_waiting: int = 16  # jobs waiting in the queue (beyond one running per device)
    max_cache_bytes: int = 2 * 2**30  # saved encodings (issue 10), least recently used evicted first

    images: Path | None = None  # `--images DIR`: the folder served over IIIF (`iiif`)
    token: str | None = None  # `--token`: every route but /healthz needs `Authorization: Bearer TOKEN`
    no_auth: bool = False  # `--no-auth`: serve off loopback without a token, on purpose
    cors_origins: tuple[str, ...] = ()  # `--cors-origin`: origins allowed to call the API (IIIF is always *)
    forwarded_allow_ips: str = "127.0.0.1"  # proxies whose X-Forwarded-* headers are trusted

    def worker_options(self, device: str) -> LoadOptions:
        """The LoadOptions of the worker on `device`: `load`, on that device."""
        return self.load.replace(device=device)


def _status(exc: LiifError) -> int:
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, OutputError) and any(_field(p) for p in exc.params):
        return 400  # about an option the client sent (a format that cannot hold the size); else the server's
    if isinstance(exc, InputError):
        return 422
    if isinstance(exc, ModelError):
        return 503
    return 500


SETTINGS = {"max_pixels": "max-pixels", "max_out_pixels": "max-out-pixels", "max_upload": "max-upload"}
"""The server's own limits (`liif serve --max-pixels`...): a web or API user cannot change them."""
FIELD_OF = {"ext": "format"}
"""Library parameters whose form or query field has another name (the CLI's `--ext` is the API's `format`)."""


def _field(param: str) -> str | None:
    """How the server names a parameter: its form or query field; None for what a client cannot change."""
    param = FIELD_OF.get(param, param)
    return param if param in UPSCALE_FIELDS | RENDER_FIELDS else None


def describe(exc: LiifError) -> str:
    """A library error in the server's words: parameters named as form fields; a limit of the server is named
    as the server's setting, with no advice a client cannot follow (the CLI's `raise it with --max-pixels`)."""
    text = exc.render(_field)
    settings = [SETTINGS[p] for p in exc.params if p in SETTINGS]
    return f"{text} (the server's {settings[0]} setting)" if settings else text


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


def _image(result: ImageResult, disposition: str, headers: dict[str, str] | None = None) -> Response:
    """The answer for an image: its bytes and type, its file name (`attachment` or `inline`), its size in
    `X-Liif-Size` and its warnings (one ASCII line) in `X-Liif-Warnings`; `headers` added."""
    sent = {
        "Content-Disposition": f'{disposition}; filename="{result.filename}"',
        "X-Liif-Size": f"{result.size[0]}x{result.size[1]}",
        **(headers or {}),
    }
    if result.warnings:
        sent["X-Liif-Warnings"] = " | ".join(result.warnings).encode("ascii", "replace").decode()[:1000]
    return Response(result.data, media_type=result.media_type, headers=sent)


def load_workers(config: ServeConfig) -> list[LazyModel]:
    """One model per device, loaded now (a bad name or device fails here, before the server listens)."""
    from ..api import LazyModel

    workers = []
    for device in config.devices:
        lazy = LazyModel(config.model, config.worker_options(device))
        lazy.get()
        workers.append(lazy)
    return workers


def create_app(config: ServeConfig, workers: list[LazyModel] | None = None) -> FastAPI:
    """The app for `config`; `workers` (one `api.LazyModel` per device) default to `load_workers(config)`."""
    workers = workers if workers is not None else load_workers(config)
    jobs = JobQueue(workers, max_waiting=config.max_waiting)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.close()

    from fastapi_offline import FastAPIOffline  # Swagger UI and ReDoc served from the package: no CDN

    app = FastAPIOffline(
        title="liif",
        version=__version__,
        description='Arbitrary-scale image super-resolution with LIIF. Errors are JSON: {"error": "..."}.',
        lifespan=lifespan,
    )
    # FastAPI's documented way to shape the schema ("Extending OpenAPI"): replace the instance's `openapi`.
    app.openapi = lambda: described_openapi(app)  # type: ignore[method-assign]  # an attribute FastAPI expects set
    app.state.config = config
    app.state.jobs = jobs
    app.state.encodings = ByteLRU(config.max_cache_bytes)
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    if config.token:
        app.add_middleware(BearerToken, token=config.token)
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization"],
            expose_headers=["Content-Disposition", "X-Liif-Size", "X-Liif-Warnings", "Retry-After"],
        )
    app.add_middleware(DocsPolicy)
    app.add_middleware(AccessLog)
    app.add_middleware(IIIFCors)  # outermost: every /iiif/ answer, a 401 included, says `*`

    @app.exception_handler(LiifError)
    async def liif_error(request: Request, exc: LiifError) -> JSONResponse:
        return _error(_status(exc), describe(exc))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return _error(429, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(Unknown)
    async def unknown_id(request: Request, exc: Unknown) -> JSONResponse:
        key = exc.args[0] if exc.args else "?"
        if isinstance(exc, Evicted):
            return _error(
                404, f"encoding {key} was evicted from the server's cache to make room; upload the image again"
            )
        return _error(404, f"no encoding {key} (never created, or deleted)")

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, exc: TooLarge) -> JSONResponse:
        return _error(413, f"this image's encoding is too large for the server's cache: {exc}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        what = first.get("msg", "invalid")
        if where == "image":
            what = "must be an uploaded file (multipart/form-data, field 'image'), not text or a path"
        return _error(400, f"{where}: {what}")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        LOG.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", summary="Liveness, the model and the queue", response_model=None)
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "model": config.model,
            "devices": [str(w.get().device) for w in workers],
            "precision": [w.get().precision for w in workers],
            "queue": {"waiting": jobs.waiting, "running": jobs.running, "max_waiting": config.max_waiting},
        }

    @app.get("/v1/models", summary="The named models and which one this server runs", response_model=None)
    async def models() -> dict[str, Any]:
        from ..registry import DEFAULT_MODEL, cache_status, load_registry

        listed = []
        for name, entry in load_registry().items():
            status = cache_status(entry)
            listed.append(
                {
                    "name": name,
                    "encoder": entry.encoder,
                    "description": entry.description,
                    "default": name == DEFAULT_MODEL,
                    "cached": status.cached,
                    "served": name == config.model,
                }
            )
        return {"served": config.model, "models": listed}

    @app.get(
        "/v1/estimate",
        summary="The library's forecast for an upscale of this size: seconds and working memory (the page shows it)",
        responses=errors(400),
        response_model=None,
    )
    async def estimate(
        in_size: Annotated[str, Query(alias="input", description="Input WIDTHxHEIGHT.", examples=["1000x750"])],
        out_size: Annotated[str, Query(alias="output", description="Output WIDTHxHEIGHT.", examples=["4000x3000"])],
    ) -> dict[str, Any]:
        sizes = []
        for name, text in (("input", in_size), ("output", out_size)):
            m = re.fullmatch(r"([1-9]\d{0,5})x([1-9]\d{0,5})", text.strip())
            if not m:
                raise UsageError(f"{name} must be WIDTHxHEIGHT in whole pixels (e.g. 1000x750), got {text!r}")
            sizes.append((int(m.group(2)), int(m.group(1))))  # (h, w)
        upscaler = workers[0].get()
        seconds, _ = await run_in_threadpool(upscaler.renderer.estimate, sizes[0], sizes[1])
        return {"seconds": round(seconds, 2), "text": upscaler.estimate(sizes[0], sizes[1])}

    async def run_job(request: Request, work: Callable[[LazyModel, Job], T]) -> T | Response:
        """`work(model, job)`'s result from the queue, or the Response to send when it was cancelled:
        503 when the server is shutting down, 499 (read by nobody) when the client has gone."""
        try:
            return await _wait(request, jobs.submit(work))
        except JobCancelled:
            if jobs.closing:
                return _error(503, "the server is shutting down; try again when it is back")
            return Response(status_code=499)

    @app.post(
        "/v1/upscale",
        summary="Upscale one image: the same bytes `liif upscale` writes for the same file and options",
        response_class=Response,
        responses={**IMAGE_200, **errors(400, 413, 422, 429, 503)},
    )
    async def upscale(
        request: Request,
        image: Annotated[UploadFile, File(description="The image file (PNG, JPEG, WebP, TIFF, BMP, GIF...).")],
        scale: Annotated[str | None, Form(description=SCALE_DOC, examples=["2", "7.5", "2,3"])] = None,
        size: Annotated[str | None, Form(description=SIZE_DOC, examples=["4000x3000"])] = None,
        width: Annotated[str | None, Form(description=WIDTH_DOC, examples=["1920"])] = None,
        height: Annotated[str | None, Form(description=HEIGHT_DOC, examples=["1080"])] = None,
        format: Annotated[str, Form(description=FORMAT_DOC, examples=["png", "webp"])] = "auto",
        quality: Annotated[int, Form(description=QUALITY_DOC, ge=1, le=100, examples=[90])] = 95,
    ) -> Response:
        unknown = sorted(set((await request.form()).keys()) - UPSCALE_FIELDS)
        if unknown:
            raise UsageError(f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(UPSCALE_FIELDS))})")
        options = UpscaleRequest(scale, size, width, height, format, str(quality))
        options.options(config.max_pixels, config.max_out_pixels)  # bad options answer before the queue
        data = await image.read()
        filename = image.filename

        def work(model: LazyModel, job: Job) -> ImageResult:
            return upscale_bytes(
                data,
                filename,
                options,
                model,
                max_pixels=config.max_pixels,
                max_out_pixels=config.max_out_pixels,
                check=job.check,
            )

        result = await run_job(request, work)
        return result if isinstance(result, Response) else _image(result, "attachment")

    # --- encodings (the zoom viewer): encode once, render any region; kept in a byte-bounded LRU ---------

    encodings: ByteLRU = app.state.encodings

    @app.post(
        "/v1/encodings",
        summary="Encode an image once; render regions of it at any size with GET /v1/encodings/{id}/render",
        status_code=201,
        responses={201: {"description": "Encoded: {id, width, height, bytes}"}, **errors(400, 413, 422, 429, 503)},
    )
    async def create_encoding(
        request: Request,
        image: Annotated[UploadFile, File(description="The image file, decoded as `liif upscale` decodes it.")],
    ) -> Response:
        unknown = sorted(set((await request.form()).keys()) - {"image"})
        if unknown:
            raise UsageError(f"unknown field {unknown[0]!r} (the only field is 'image')")
        data = await image.read()
        filename = image.filename

        def work(model: LazyModel, job: Job) -> StoredEncoding:
            return encode_upload(data, filename, model, max_pixels=config.max_pixels, check=job.check)

        stored = await run_job(request, work)
        if isinstance(stored, Response):
            return stored
        key = encodings.add(stored)
        width, height = stored.size
        return JSONResponse(
            {"id": key, "width": width, "height": height, "bytes": stored.nbytes},
            status_code=201,
            headers={"Location": f"/v1/encodings/{key}"},
        )

    @app.get(
        "/v1/encodings/{encoding_id}/render",
        summary="Render a region (x,y,w,h in input pixels) of an encoding at one of scale, size, width, height",
        response_class=Response,
        responses={**IMAGE_200, **errors(400, 404, 429, 503)},
    )
    async def render_encoding(
        request: Request,
        encoding_id: str,
        region: Annotated[str | None, Query(description=REGION_DOC, examples=["0,0,64,48", "10.5,8,16,16"])] = None,
        scale: Annotated[str | None, Query(description=SCALE_DOC, examples=["4", "2,3"])] = None,
        size: Annotated[str | None, Query(description=SIZE_DOC, examples=["256x256"])] = None,
        width: Annotated[str | None, Query(description=WIDTH_DOC, examples=["512"])] = None,
        height: Annotated[str | None, Query(description=HEIGHT_DOC, examples=["512"])] = None,
        format: Annotated[str, Query(description=FORMAT_DOC, examples=["png"])] = "auto",
        quality: Annotated[int, Query(description=QUALITY_DOC, ge=1, le=100, examples=[90])] = 95,
    ) -> Response:
        unknown = sorted(set(request.query_params.keys()) - RENDER_FIELDS)
        if unknown:
            raise UsageError(f"unknown parameter {unknown[0]!r} (parameters: {', '.join(sorted(RENDER_FIELDS))})")
        stored = encodings.get(encoding_id)
        options = RenderRequest(scale, size, width, height, format, str(quality), region=region)
        options.plan(stored, config.max_out_pixels)  # a bad region or size answers before the queue

        def work(model: LazyModel, job: Job) -> ImageResult:
            return render_bytes(stored, options, model, max_out_pixels=config.max_out_pixels, check=job.check)

        result = await run_job(request, work)
        if isinstance(result, Response):
            return result
        return _image(result, "inline", {"Cache-Control": "private, max-age=3600"})  # an id's pixels never change

    @app.delete(
        "/v1/encodings/{encoding_id}",
        summary="Forget an encoding and free its memory",
        status_code=204,
        responses=errors(404),
    )
    async def delete_encoding(encoding_id: str) -> Response:
        encodings.delete(encoding_id)
        return Response(status_code=204)

    add_iiif_routes(app, config, run_job)  # /iiif/3: the image folder and the encodings over IIIF
    return app


async def _wait(request: Request, job: Job) -> Any:
    """The job's result; if the client disconnects first, the job is cancelled and JobCancelled raised
    (also cancelled when this request's task is, as at the end of a graceful shutdown)."""
    future = asyncio.wrap_future(job.future)
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=0.1)
            if done:
                return future.result()
            if await request.is_disconnected():
                raise JobCancelled()
    except (JobCancelled, asyncio.CancelledError):  # the client left, or the server is shutting down
        job.cancel()
        future.cancel()  # nobody will read the outcome: detach from it
        raise
