"""Running a planned batch: load the model once (lazily), upscale each file, write it atomically, record.

    results = run_batch(jobs, options, LazyModel(lambda: load_model("edsr-baseline")))
    raise_for_failures(results)

The model is loaded once for the whole batch, and lazily: only when the first file that really needs
it has been read and checked, so a batch whose files are all skipped or all broken never loads (or
downloads) it. A bad file is recorded and the batch goes on; a model that cannot be loaded stops it.
What the user sees is up to the `Reporter` the caller passes (the CLI's prints to the console).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BatchError, LiifError, ModelError, UsageError, first_line
from ..imageio import DecodedImage, InputGuard, check_output_size, format_for_path, read_image, write_image
from .media import run_media_job
from .plan import ALPHA_METHODS, BatchOptions, Job

if TYPE_CHECKING:
    from ..api import Upscaler

BIG_JOB_PIXELS = 16_000_000
"""Outputs at least this large get an estimate of time and memory before they start (when available)."""

Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)


class LazyModel:
    """Loads the model on the first `get()`, once; `loads` counts loads. Load errors are ModelErrors."""

    def __init__(self, loader: Callable[[], Upscaler]):
        self._loader = loader
        self._upscaler: Upscaler | None = None
        self.loads = 0

    @property
    def loaded(self) -> bool:
        return self._upscaler is not None

    def get(self) -> Upscaler:
        if self._upscaler is None:
            from ..models import CheckpointError

            self.loads += 1
            try:
                self._upscaler = self._loader()
            except LiifError:
                raise
            except CheckpointError as exc:
                raise ModelError(str(exc)) from None
            except OSError as exc:
                raise ModelError(f"cannot load the model: {exc}") from None
        return self._upscaler


def upscale_image(
    img: DecodedImage,
    upscaler: Upscaler,
    out_hw: tuple[int, int],
    *,
    alpha: str = "model",
    progress: Progress | None = None,
) -> DecodedImage:
    """Upscale colour (and alpha) to `out_hw`, keeping the image's metadata; DPI scales with the size.

    An RGB image without alpha comes back already quantized (uint8, or uint16 for 16-bit input), as
    `imageio.quantize` would round it; anything else comes back as float32 in [0, 1].

    Alpha `model`: the alpha plane replicated to RGB goes through the model, and the mean of the three
    results is taken (clamped to [0, 1]); its edges stay as sharp as the colour's. `bicubic`: Pillow's
    bicubic resize of the float alpha; cheaper (one model pass instead of two). A constant alpha (e.g.
    fully opaque) is never run through anything.
    """
    if alpha not in ALPHA_METHODS:
        raise UsageError(f"alpha method must be one of {', '.join(ALPHA_METHODS)}, got {alpha!r}")
    two_passes = img.alpha is not None and alpha == "model" and float(img.alpha.min()) != float(img.alpha.max())

    def phase(offset: int) -> Progress | None:
        if progress is None:
            return None
        if not two_passes:
            return progress
        return lambda done, total: progress(offset * total + done, 2 * total)

    if img.mode == "RGB" and img.alpha is None:  # quantized tile by tile: a big result never exists in float
        rgb = upscaler.upscale_array(
            img.rgb, out_hw, progress=phase(0), dtype=np.uint16 if img.bits == 16 else np.uint8
        )
    else:  # gray (luma) and alpha compositing are computed from the float result
        rgb = np.asarray(upscaler.upscale_array(img.rgb, out_hw, progress=phase(0)), dtype=np.float32)
    out_alpha = None
    if img.alpha is not None:
        out_alpha = _upscale_alpha(img.alpha, upscaler, out_hw, alpha if two_passes else "bicubic", phase(1))
    return img.with_pixels(rgb, out_alpha)


def _upscale_alpha(a: np.ndarray, upscaler: Upscaler, out_hw: tuple[int, int], method: str, progress) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        return np.full(out_hw, lo, dtype=np.float32)
    if method == "model":
        out = upscaler.upscale_array(np.repeat(a[..., None], 3, axis=2), out_hw, progress=progress)
        return np.clip(np.asarray(out, dtype=np.float32).mean(axis=2), 0.0, 1.0).astype(np.float32)
    from PIL import Image

    resized = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32)).resize(
        (out_hw[1], out_hw[0]), Image.Resampling.BICUBIC
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


@dataclass
class FileResult:
    input: Path
    output: Path | None
    status: str  # "written", "skipped" or "failed"
    message: str = ""
    error: BaseException | None = None
    seconds: float = 0.0
    in_hw: tuple[int, int] | None = None
    out_hw: tuple[int, int] | None = None
    frames: int | None = None  # frames written, for a video or an animation


class Reporter:
    """What a batch tells its caller; every method is optional to override. The default is silent."""

    def start(self, jobs: Sequence[Job]) -> None: ...

    def file_start(self, index: int, job: Job) -> None: ...

    def file_sizes(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None: ...

    def progress(self, done: int, total: int) -> None: ...

    def frames(self, done: int, total: int | None) -> None:
        """Frames of a video or animation written so far (called from the video's encoder thread)."""

    def file_end(self, result: FileResult) -> None: ...

    def warn(self, message: str) -> None: ...

    def note(self, message: str) -> None: ...

    def finish(self, results: Sequence[FileResult], seconds: float) -> None: ...

    def close(self) -> None:
        """Called however the batch ends (also on an interrupt): release live displays."""


def run_batch(
    jobs: Sequence[Job],
    options: BatchOptions,
    model: LazyModel,
    reporter: Reporter | None = None,
    *,
    estimate: Callable[[tuple[int, int], tuple[int, int]], str | None] | None = None,
) -> list[FileResult]:
    """Process every job; a failing file is recorded and the batch goes on.

    Errors from loading the model (ModelError, a bad device...) stop the batch and propagate, as does
    KeyboardInterrupt (no partial output is left: files are written atomically at the end of each job).
    `estimate(in_hw, out_hw)` may return a line to print before outputs of BIG_JOB_PIXELS or more.
    """
    rep = reporter or Reporter()
    guard = InputGuard(j.input for j in jobs if j.input.exists() and not j.earlier_output)
    results: list[FileResult] = []
    t_batch = time.monotonic()
    rep.start(jobs)
    for index, job in enumerate(jobs):
        rep.file_start(index, job)
        t0 = time.monotonic()
        res = FileResult(job.input, job.output, "failed")
        if job.error is not None:
            res.message, res.error = str(job.error), job.error
        elif job.skip is not None:
            res.status, res.message = "skipped", job.skip
        elif job.kind != "still":
            res = run_media_job(job, options, model, rep, guard, res)
        else:
            res = _run_job(job, options, model, rep, guard, estimate, res)
        res.seconds = time.monotonic() - t0
        results.append(res)
        rep.file_end(res)
    rep.finish(results, time.monotonic() - t_batch)
    return results


def _run_job(job, options, model, rep, guard, estimate, res: FileResult) -> FileResult:
    def warn(msg: str) -> None:
        rep.warn(msg)

    try:
        img = read_image(job.input, max_pixels=options.max_pixels, warn=warn)
        out_hw = options.spec.resolve(img.hw, options.max_out_pixels)
        check_output_size(format_for_path(job.output), out_hw[1], out_hw[0])
    except LiifError as exc:
        res.message, res.error = str(exc), exc
        return res
    res.in_hw, res.out_hw = img.hw, out_hw
    if img.frames > 1:
        warn(f"{job.input}: only the first of its {img.frames} frames is upscaled")
    upscaler = model.get()  # errors here stop the batch: every other file would fail the same way
    rep.file_sizes(img.hw, out_hw)
    try:
        if estimate is not None and out_hw[0] * out_hw[1] >= BIG_JOB_PIXELS:
            line = _safe_estimate(estimate, img.hw, out_hw)
            if line:
                rep.note(f"{job.input}: {line}")
        result = upscale_image(img, upscaler, out_hw, alpha=options.alpha, progress=rep.progress)
        del img
        write_image(
            result,
            job.output,
            quality=options.quality,
            lossless=options.lossless,
            overwrite=options.overwrite,
            protect=guard,
            warn=warn,
        )
    except LiifError as exc:
        res.message, res.error = str(exc), exc
        return res
    except MemoryError as exc:
        res.message, res.error = "out of memory (try a smaller --tile, or a smaller output)", exc
        return res
    except Exception as exc:  # a bug or an engine failure: report it, keep going with the other files
        if _is_oom(exc):
            res.message = "out of memory on the device (try a smaller --tile or --batch-size)"
        else:
            res.message = f"internal error: {type(exc).__name__}: {first_line(exc)}"
            log.debug("%s: internal error", job.input, exc_info=exc)  # the CLI shows it with LIIF_DEBUG=1
        res.error = exc
        return res
    res.status, res.message = "written", str(job.output)
    return res


def _is_oom(exc: BaseException) -> bool:
    try:
        import torch

        return isinstance(exc, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        return False


def _safe_estimate(estimate, in_hw, out_hw) -> str | None:
    try:
        return estimate(in_hw, out_hw)
    except Exception:
        return None


def raise_for_failures(results: Sequence[FileResult], single_input: bool = False) -> None:
    """Raise when any file failed: its own error for a single input, else a BatchError (exit 1)."""
    failed = [r for r in results if r.status == "failed"]
    if not failed:
        return
    if single_input and len(results) == 1 and isinstance(failed[0].error, LiifError):
        raise failed[0].error
    if single_input and len(results) == 1:
        raise BatchError(failed[0].message)
    raise BatchError(f"{len(failed)} of {len(results)} files failed")


