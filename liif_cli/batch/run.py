"""Running a planned batch: load the model once (lazily), upscale each file, write it atomically, record.

    results = run_batch(jobs, options, LazyModel("edsr-baseline", LoadOptions(device="cpu")))
    raise_for_failures(results)

The model is loaded once for the whole batch, and lazily: only when the first file that really needs
it has been read and checked (`api.LazyModel`), so a batch whose files are all skipped or all broken never loads (or
downloads) it. A bad file is recorded and the batch goes on; a model that cannot be loaded stops it.
What the user sees is up to the `Reporter` the caller passes (the CLI's prints to the console).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..api import LazyModel
from ..errors import BatchError, LiifError
from ..imageio import DecodedImage, InputGuard, check_output_size, format_for_path, read_image, write_image
from .media import run_media_job
from .plan import BatchOptions, Job
from .results import FileResult, Reporter, record_failure

if TYPE_CHECKING:
    from ..api import Upscaler
    from ..encoding import Encoding

BIG_JOB_PIXELS = 16_000_000
"""Outputs at least this large get an estimate of time and memory before they start (when available)."""

Progress = Callable[[int, int], None]
Estimate = Callable[[tuple[int, int], tuple[int, int]], "str | None"]
"""(input hw, output hw) -> a line forecasting time and memory, or None."""
log = logging.getLogger(__name__)


def run_batch(
    jobs: Sequence[Job],
    options: BatchOptions,
    model: LazyModel,
    reporter: Reporter | None = None,
    *,
    estimate: Estimate | None = None,
    protect: Sequence[Job] | None = None,
) -> list[FileResult]:
    """Process every job; a failing file is recorded and the batch goes on.

    Errors from loading the model (ModelError, a bad device...) stop the batch and propagate, as does
    KeyboardInterrupt (no partial output is left: files are written atomically at the end of each job).
    `estimate(in_hw, out_hw)` may return a line to print before outputs of BIG_JOB_PIXELS or more.
    `protect`: the whole plan when `jobs` is a share of it (batch/shards.py): no output may replace any of its
    inputs, not only this share's.
    """
    rep = reporter or Reporter()
    guard = InputGuard(
        j.input for j in (jobs if protect is None else protect) if j.input.exists() and not j.earlier_output
    )
    shared = _SharedEncodings(jobs, options)
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
            res.status, res.message, res.error = "skipped", str(job.skip), job.skip
        elif job.kind != "still":
            res = run_media_job(job, options, model, rep, guard, res)
        else:
            res = _run_job(job, options, model, rep, guard, estimate, res, shared)
            shared.done(job)
        res.seconds = time.monotonic() - t0
        results.append(res)
        rep.file_end(res)
    rep.finish(results, time.monotonic() - t_batch)
    return results


class _SharedEncodings:
    """Inputs with several outputs to render (several sizes, none a region) are read and encoded once:
    the first output keeps the image and its `Encoding`, the others render from it (the decoder only),
    and the last one drops them. An input with one output to render streams as always, so a huge image
    never needs its whole feature map (256 bytes per input pixel in fp32)."""

    def __init__(self, jobs: Sequence[Job], options: BatchOptions):
        self._left = Counter(j.input for j in jobs if self._shares(j, options))
        self._kept: dict[Path, list] = {}  # input -> [DecodedImage, Encoding | None]

    @staticmethod
    def _shares(job: Job, options: BatchOptions) -> bool:
        return job.error is None and job.skip is None and (job.spec or options.specs[0]).region is None

    def wants(self, job: Job) -> bool:
        return self._left[job.input] > 1 or job.input in self._kept

    def image(self, job: Job, read: Callable[[], DecodedImage]) -> tuple[DecodedImage, bool]:
        """The input's decoded image, and whether it was read just now."""
        if job.input in self._kept:
            return self._kept[job.input][0], False
        img = read()
        self._kept[job.input] = [img, None]
        return img, True

    def encoding(self, job: Job, upscaler: Upscaler, alpha: str) -> Encoding:
        kept = self._kept[job.input]
        if kept[1] is None:
            kept[1] = upscaler.encode(kept[0], alpha=alpha)
        return kept[1]

    def done(self, job: Job) -> None:
        if self._left[job.input] > 0:
            self._left[job.input] -= 1
        if self._left[job.input] == 0:
            self._kept.pop(job.input, None)


def _run_job(
    job: Job,
    options: BatchOptions,
    model: LazyModel,
    rep: Reporter,
    guard: InputGuard,
    estimate: Estimate | None,
    res: FileResult,
    shared: _SharedEncodings,
) -> FileResult:
    def warn(msg: str) -> None:
        rep.warn(msg)

    def read() -> DecodedImage:
        return read_image(job.input, max_pixels=options.max_pixels, warn=warn)

    spec = job.spec or options.specs[0]
    several = shared.wants(job)
    try:
        img, fresh = shared.image(job, read) if several else (read(), True)
        out_hw = spec.resolve(img.hw, options.max_out_pixels)
        check_output_size(format_for_path(job.output), out_hw[1], out_hw[0])
    except LiifError as exc:
        res.message, res.error = str(exc), exc
        return res
    res.in_hw, res.out_hw = img.hw, out_hw
    if img.frames > 1 and fresh:
        warn(f"{job.input}: only the first of its {img.frames} frames is upscaled")
    upscaler = model.get()  # errors here stop the batch: every other file would fail the same way
    rep.file_sizes(img.hw, out_hw)
    try:
        if estimate is not None and out_hw[0] * out_hw[1] >= BIG_JOB_PIXELS:
            span = img.hw if spec.region is None else (math.ceil(spec.region[3]), math.ceil(spec.region[2]))
            line = _safe_estimate(estimate, span, out_hw)
            if line:
                rep.note(f"{job.input}: {line}")
        if several:
            encoding = shared.encoding(job, upscaler, options.alpha)
            result = encoding.render(size=(out_hw[1], out_hw[0]), progress=rep.progress)
        else:
            result = upscaler.upscale_image(img, out_hw, alpha=options.alpha, region=spec.region, progress=rep.progress)
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
    except Exception as exc:  # the file fails; the batch goes on with the others
        return record_failure(res, exc)
    res.status, res.message = "written", str(job.output)
    return res


def _safe_estimate(estimate: Estimate, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> str | None:
    try:
        return estimate(in_hw, out_hw)
    except Exception:
        return None


def raise_for_failures(results: Sequence[FileResult], single_input: bool = False) -> None:
    """Raise when any file failed: its own error for a single input that wrote nothing, else a BatchError (exit 1)."""
    failed = [r for r in results if r.status == "failed"]
    if not failed:
        return
    if single_input and len(failed) == len(results) and isinstance(failed[0].error, LiifError):
        raise failed[0].error  # one input (at one or several sizes), nothing written: its own error
    if single_input and len(results) == 1:
        error = failed[0].error
        raise error.as_kind(BatchError) if isinstance(error, LiifError) else BatchError(failed[0].message)
    raise BatchError(f"{len(failed)} of {len(results)} files failed")
