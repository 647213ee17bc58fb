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
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import InputError, LiifError, ModelError, UsageError
from ..imageio import DEFAULT_MAX_INPUT_PIXELS, DEFAULT_MAX_OUTPUT_PIXELS
from .cache import ByteLRU, Evicted, TooLarge, Unknown
from .encodings import RenderRequest, encode_upload, render_bytes
from .jobs import JobCancelled, JobQueue, QueueFull
from .middleware import AccessLog, BodyLimit
from .upscale import UpscaleRequest, upscale_bytes

LOG = logging.getLogger("liif.serve")
STATIC = Path(__file__).parent / "static"
UPSCALE_FIELDS = frozenset({"image", "scale", "size", "width", "height", "format", "quality"})
RENDER_FIELDS = frozenset({"region", "scale", "size", "width", "height", "format", "quality"})


@dataclass(frozen=True)
class ServeConfig:
    """What `liif serve` was started with. The pixel limits are the CLI's defaults."""

    model: str = "edsr-baseline"
    devices: tuple[str, ...] = ("auto",)
    precision: str = "auto"
    backend: str = "torch"
    allow_unverified: bool = False
    offline: bool | None = None
    max_upload_bytes: int = 100 * 2**20
    max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS
    max_out_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS
    max_waiting: int = 16  # jobs waiting in the queue (beyond one running per device)
    max_cache_bytes: int = 2 * 2**30  # saved encodings (issue 10), least recently used evicted first


def _status(exc: LiifError) -> int:
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, InputError):
        return 422
    if isinstance(exc, ModelError):
        return 503
    return 500


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


def load_workers(config: ServeConfig) -> list:
    """One model per device, loaded now (a bad name or device fails here, before the server listens)."""
    from ..api import load_model
    from ..batch import LazyModel

    workers = []
    for device in config.devices:
        lazy = LazyModel(
            lambda device=device: load_model(
                config.model,
                backend=config.backend,
                device=device,
                precision=config.precision,
                allow_unverified=config.allow_unverified,
                offline=config.offline,
            )
        )
        lazy.get()
        workers.append(lazy)
    return workers


def create_app(config: ServeConfig, workers: list | None = None) -> FastAPI:
    """The app for `config`; `workers` (one `batch.LazyModel` per device) default to `load_workers(config)`."""
    workers = workers if workers is not None else load_workers(config)
    jobs = JobQueue(workers, max_waiting=config.max_waiting)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.close()

    app = FastAPI(
        title="liif",
        version=__version__,
        description='Arbitrary-scale image super-resolution with LIIF. Errors are JSON: {"error": "..."}.',
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.jobs = jobs
    app.state.encodings = ByteLRU(config.max_cache_bytes)
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(AccessLog)

    @app.exception_handler(LiifError)
    async def liif_error(request: Request, exc: LiifError):
        return _error(_status(exc), str(exc))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull):
        return _error(429, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(Unknown)
    async def unknown_id(request: Request, exc: Unknown):
        key = exc.args[0] if exc.args else "?"
        if isinstance(exc, Evicted):
            return _error(
                404, f"encoding {key} was evicted from the server's cache to make room; upload the image again"
            )
        return _error(404, f"no encoding {key} (never created, or deleted)")

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, exc: TooLarge):
        return _error(413, f"this image's encoding is too large for the server's cache: {exc}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        what = first.get("msg", "invalid")
        if where == "image":
            what = "must be an uploaded file (multipart/form-data, field 'image'), not text or a path"
        return _error(400, f"{where}: {what}")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        LOG.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", summary="Liveness, the model and the queue")
    async def healthz():
        return {
            "status": "ok",
            "version": __version__,
            "model": config.model,
            "devices": [str(w.get().device) for w in workers],
            "precision": [w.get().precision for w in workers],
            "queue": {"waiting": jobs.waiting, "running": jobs.running, "max_waiting": config.max_waiting},
        }

    @app.get("/v1/models", summary="The named models and which one this server runs")
    async def models():
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

    async def run_job(request: Request, work):
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
        responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/tiff": {}}}},
    )
    async def upscale(
        request: Request,
        image: Annotated[UploadFile, File(description="The image file (PNG, JPEG, WebP, TIFF, BMP, GIF...).")],
        scale: Annotated[str | None, Form(description="S or SX,SY (2, 7.5, 2,3).")] = None,
        size: Annotated[str | None, Form(description="WIDTHxHEIGHT, e.g. 4000x3000.")] = None,
        width: Annotated[str | None, Form(description="Output width; the height keeps the aspect ratio.")] = None,
        height: Annotated[str | None, Form(description="Output height; the width keeps the aspect ratio.")] = None,
        format: Annotated[str, Form(description="auto (as the input), png, jpg, webp or tif.")] = "auto",
        quality: Annotated[str, Form(description="JPEG and WebP quality, 1-100.")] = "95",
    ):
        unknown = sorted(set((await request.form()).keys()) - UPSCALE_FIELDS)
        if unknown:
            raise UsageError(f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(UPSCALE_FIELDS))})")
        options = UpscaleRequest(scale, size, width, height, format, quality)
        options.options(config.max_pixels, config.max_out_pixels)  # bad options answer before the queue
        data = await image.read()
        filename = image.filename

        def work(model, job):
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
        if isinstance(result, Response):
            return result
        headers = {
            "Content-Disposition": f'attachment; filename="{result.filename}"',
            "X-Liif-Size": f"{result.size[0]}x{result.size[1]}",
        }
        if result.warnings:
            headers["X-Liif-Warnings"] = " | ".join(result.warnings).encode("ascii", "replace").decode()[:1000]
        return Response(result.data, media_type=result.media_type, headers=headers)

    # --- encodings (the zoom viewer): encode once, render any region; kept in a byte-bounded LRU ---------

    encodings: ByteLRU = app.state.encodings

    @app.post(
        "/v1/encodings",
        summary="Encode an image once; render regions of it at any size with GET /v1/encodings/{id}/render",
        status_code=201,
    )
    async def create_encoding(
        request: Request,
        image: Annotated[UploadFile, File(description="The image file, decoded as `liif upscale` decodes it.")],
    ):
        unknown = sorted(set((await request.form()).keys()) - {"image"})
        if unknown:
            raise UsageError(f"unknown field {unknown[0]!r} (the only field is 'image')")
        data = await image.read()
        filename = image.filename

        def work(model, job):
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
        responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/tiff": {}}}},
    )
    async def render_encoding(
        request: Request,
        encoding_id: str,
        region: str | None = None,
        scale: str | None = None,
        size: str | None = None,
        width: str | None = None,
        height: str | None = None,
        format: str = "auto",
        quality: str = "95",
    ):
        unknown = sorted(set(request.query_params.keys()) - RENDER_FIELDS)
        if unknown:
            raise UsageError(f"unknown parameter {unknown[0]!r} (parameters: {', '.join(sorted(RENDER_FIELDS))})")
        stored = encodings.get(encoding_id)
        options = RenderRequest(scale, size, width, height, format, quality, region=region)
        options.plan(stored, config.max_out_pixels)  # a bad region or size answers before the queue

        def work(model, job):
            return render_bytes(stored, options, model, max_out_pixels=config.max_out_pixels, check=job.check)

        result = await run_job(request, work)
        if isinstance(result, Response):
            return result
        headers = {
            "Content-Disposition": f'inline; filename="{result.filename}"',
            "X-Liif-Size": f"{result.size[0]}x{result.size[1]}",
            "Cache-Control": "private, max-age=3600",  # an id's pixels never change
        }
        return Response(result.data, media_type=result.media_type, headers=headers)

    @app.delete("/v1/encodings/{encoding_id}", summary="Forget an encoding and free its memory", status_code=204)
    async def delete_encoding(encoding_id: str):
        encodings.delete(encoding_id)
        return Response(status_code=204)

    return app


async def _wait(request: Request, job):
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
