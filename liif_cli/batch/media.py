"""Videos and animated images in a batch: which kind each input is, its output name, and how it is run.

    kind = media_kind(Path("clip.mp4"))       # "video", "animation", "still" or "encoding", by content

A batch treats a video or an animation like a still: the same size spec, output names (`liif_cli.naming`) and
limits, the same lazily loaded model, the same reporter, and a failure in one file does not stop the others. The
work itself is `liif_cli.video.upscale_video` and `liif_cli.animated.upscale_animation`; this module only picks
the kind and the options, and turns the result into the batch's FileResult.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, LiifError, UsageError
from ..imageio import DEFAULT_MAX_INPUT_PIXELS, identify
from ..naming import ANIMATED_SUFFIXES
from ..video import CONTAINER_FORMATS, VIDEO_EXTENSIONS

if TYPE_CHECKING:
    from ..api import LazyModel
    from ..imageio import InputGuard
    from .plan import BatchOptions, Job
    from .results import FileResult, Reporter


MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | {".apng"}
"""Extensions a folder scan collects beside the still-image ones."""


@dataclass(frozen=True)
class VideoOptions:
    """What `liif upscale` passes to `video.upscale_video` for each video (stills and animations ignore it)."""

    codec: str | None = None  # None: h264, vp9 for WebM
    crf: int | None = None  # None: the codec's default
    pix_fmt: str | None = None  # None: the input's when the codec takes it
    frames: tuple[int, int | None] | None = None
    time: tuple[float, float | None] | None = None

    def __post_init__(self) -> None:
        from ..video.reading import range_check
        from ..video.writing import check_crf, choose_codec

        range_check(self.frames, self.time)
        if self.codec is not None:
            check_crf(choose_codec("", self.codec), self.crf)

    def fields(self) -> dict[str, Any]:
        """The options as `video.upscale_video`'s keywords (codec=, crf=, pix_fmt=, frames=, time=)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def given(self) -> list[str]:
        """The parameters set (for the error when no input is a video)."""
        return [name for name, value in self.fields().items() if value is not None]


def media_kind(path: Path, *, max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS) -> str:
    """'video', 'animation' (GIF / WebP / PNG with several frames), 'still' or 'encoding', by the file's
    content (`imageio.identify`); InputError (one line) for a file liif does not read."""
    return identify(path, max_pixels=max_pixels).kind


def check_output_file(out: Path, kind: str) -> None:
    """`-o FILE` for a single video or animation: its extension must be one that kind can be written as."""
    suffix = out.suffix.lower()
    if kind == "video" and suffix not in CONTAINER_FORMATS:
        raise UsageError(f"{{output}} {out}: a video is written as {', '.join(CONTAINER_FORMATS)}", param="output")
    if kind == "animation" and suffix not in ANIMATED_SUFFIXES:
        formats = ", ".join(sorted(ANIMATED_SUFFIXES))
        raise UsageError(f"{{output}} {out}: an animation is written as {formats}", param="output")


def check_video_options(jobs: list[Job], video: VideoOptions) -> None:
    """Video options with no video among the inputs are a mistake worth stopping for (exit 2)."""
    given = video.given()
    if given and not any(j.kind == "video" for j in jobs):
        verb = "applies" if len(given) == 1 else "apply"
        named = ", ".join("{" + p + "}" for p in given)
        raise UsageError(f"{named} {verb} to videos only, and no input is a video", param=given)


def run_media_job(
    job: Job, options: BatchOptions, model: LazyModel, rep: Reporter, guard: InputGuard, res: FileResult
) -> FileResult:
    """Upscale one video or animation into `job.output`; errors are recorded in `res` (the batch goes on).

    The input is probed and the output size checked before the model is asked for, so a batch of broken
    files never loads it. KeyboardInterrupt and model-loading errors propagate, as for stills.
    """
    try:
        spec = job.spec or options.specs[0]
        if spec.region is not None:
            raise UsageError(
                f"{job.input}: {{region}} renders a window of a still image, not of a video or animation",
                param="region",
            )
        in_hw = _input_size(job, options)
        out_hw = spec.resolve(in_hw, options.max_out_pixels)
    except LiifError as exc:
        res.message, res.error = str(exc), exc
        return res
    res.in_hw, res.out_hw = in_hw, out_hw
    upscaler = model.get()
    rep.file_sizes(in_hw, out_hw)
    try:
        if job.kind == "video":
            result = upscaler.upscale_video(
                job.input,
                job.output,
                out_hw=out_hw,
                **options.video.fields(),
                progress=rep.frames,
                warn=rep.warn,
                overwrite=options.overwrite,
                protect=guard,
                max_pixels=options.max_pixels,
                max_out_pixels=options.max_out_pixels,
            )
            res.frames = result.frames
            if result.copied:
                rep.note(f"{job.input}: copied unchanged: {', '.join(result.copied)}")
        else:
            from ..animated import upscale_animation

            count = {"frames": 0}

            def progress(done: int, total: int | None) -> None:
                count["frames"] = done
                rep.frames(done, total)

            upscale_animation(
                upscaler,
                job.input,
                job.output,
                size=lambda _hw: out_hw,
                quality=None if options.lossless else options.quality,
                overwrite=options.overwrite,
                protect=guard,
                progress=progress,
                max_pixels=options.max_pixels,
                warn=rep.warn,
            )
            res.frames = count["frames"]
    except Exception as exc:  # as for stills: the file fails, the batch goes on
        from .results import record_failure

        return record_failure(res, exc)
    res.status, res.message = "written", str(job.output)
    return res


def _input_size(job: Job, options: BatchOptions) -> tuple[int, int]:
    """(h, w) of the stored frames, checked against `max_pixels` (and a video's frame or time range against
    its length); InputError for a file that cannot be read."""
    if job.kind == "video":
        from ..video import probe
        from ..video.reading import check_range

        try:
            import av  # noqa: F401
        except ImportError:
            raise InputError(f"{job.input}: videos need PyAV (pip install 'liif-cli[video]')") from None
        info = probe(job.input, max_pixels=options.max_pixels)
        check_range(info, options.video.frames, options.video.time)
        return info.height, info.width
    found = identify(job.input, max_pixels=options.max_pixels)
    if found.hw is None:
        raise InputError(f"{job.input}: no size in its header")
    return found.hw
