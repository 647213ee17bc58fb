"""`liif upscale`: files, folders, videos and animations in one batch; under torchrun or srun each
process takes its share and rank 0 prints the summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .app import handle_errors, main
from .options import (
    ALPHA,
    CODEC,
    EXT,
    FRAMES,
    TIME,
    dry_run_option,
    load_options,
    lossless_option,
    max_out_pixels_option,
    max_pixels_option,
    progress_option,
    quality_option,
    size_options,
)

if TYPE_CHECKING:
    from ..batch import BatchOptions
    from ..batch.shards import ShardOutcome
    from ..distributed import Group
    from ..load_options import LoadOptions
    from ..sizes import Region, Scale


@main.command("upscale", short_help="Upscale image files and folders to any size.")
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option(
    "-i", "--input", "more_inputs", multiple=True, metavar="PATH", help="An input, as the positional INPUT; repeatable."
)
@size_options
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Output file (one input), '-' for stdout, or folder (input folders are mirrored inside it). "
    "Default: beside each input.",
)
@click.option(
    "-n",
    "--model",
    default="edsr-baseline",
    show_default=True,
    metavar="NAME|PATH",
    help="Model name (see 'liif models'), .pth path, or ONNX export folder (--backend onnxruntime).",
)
@load_options()
@click.option("--alpha", type=ALPHA, default="model", show_default=True, help="Transparency upscaling.")
@click.option("--ext", type=EXT, default="auto", show_default=True, help="Output format (auto: as the input).")
@quality_option
@lossless_option
@click.option(
    "--suffix",
    metavar="TEXT",
    help="Output name <name>_<suffix>.<ext>; '' for none.  [default: x2, x7.5, 4000x3000...]",
)
@click.option("-r", "--recursive", is_flag=True, help="Also collect images and videos in sub-folders of input folders.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (inputs are never overwritten).")
@max_pixels_option
@max_out_pixels_option
@click.option("--codec", type=CODEC, help="Video codec.  [default: h264; vp9 for WebM]")
@click.option(
    "--crf", type=click.IntRange(0, 63), metavar="N", help="Video quality (lower is better).  [default: per codec]"
)
@click.option("--pix-fmt", metavar="FMT", help="Video pixel format (yuv420p, yuv444p...).  [default: the input's]")
@click.option("--frames", "frame_range", type=FRAMES, help="Only video frames A <= n < B (from 0; 'A:' to the end).")
@click.option("--time", "time_range", type=TIME, help="Only seconds T0 <= t < T1 of a video ('T0:' to the end).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output; warnings and errors only (--progress none).")
@progress_option
@dry_run_option
@handle_errors
def upscale_cmd(
    inputs: tuple[str, ...],
    more_inputs: tuple[str, ...],
    scale: tuple[Scale, ...],
    size: tuple[tuple[int, int], ...],
    width: tuple[int, ...],
    height: tuple[int, ...],
    region: Region | None,
    output: str | None,
    model: str,
    load: LoadOptions,
    alpha: str,
    ext: str,
    quality: int,
    lossless: bool,
    suffix: str | None,
    recursive: bool,
    overwrite: bool,
    max_pixels: int | None,
    max_out_pixels: int | None,
    codec: str | None,
    crf: int | None,
    pix_fmt: str | None,
    frame_range: tuple[int, int | None] | None,
    time_range: tuple[float, float | None] | None,
    quiet: bool,
    progress_mode: str,
    dry_run: bool,
) -> None:
    """Upscale image files and folders (PNG, JPEG, WebP, TIFF, BMP, GIF... in; PNG, JPEG, WebP, TIFF out),
    videos (MP4, MKV, MOV, WebM, AVI; same container out) and animated GIF, WebP and APNG.

    \b
      liif upscale photo.jpg --scale 2                 # photo_x2.jpg beside it
      liif upscale scans/ -r --width 4000 -o big/      # big/ mirrors scans/
      liif upscale logo.png --size 1920x1080 -o hd.png
      liif upscale photo.jpg --width 640 --width 1920  # encoded once: photo_w640.jpg, photo_w1920.jpg
      liif upscale photo.jpg --region 1200,800,64,48 --scale 20   # photo_r1200,800,64,48_x20.jpg
      liif upscale clip.mp4 --height 1080 --time 10:15  # a 5-second preview

    Mode, bit depth (16-bit stays 16-bit in PNG/TIFF), transparency, ICC profile, DPI and EXIF are
    kept; EXIF orientation is applied. Videos keep frame rate, timestamps, rotation, colour tags and audio;
    --codec, --crf, --pix-fmt, --frames and --time apply to videos only. A bad file is reported and the
    others go on; exit 1 if any failed. `-` as the input reads stdin; `-o -` writes the one output to stdout
    (PNG unless --ext says otherwise).
    """
    import tempfile
    from pathlib import Path

    from .. import registry
    from ..batch import BatchOptions, LazyModel, VideoOptions, plan_batch, raise_for_failures, run_batch
    from ..sizes import specs_of
    from .pipes import STDIN_NAMES, spool_stdin, stdout_target, write_stdout
    from .report import ConsoleReporter

    paths = list(inputs) + list(more_inputs)
    if not paths:
        raise click.UsageError("missing INPUT: give one or more files or folders (or -i PATH; '-' reads stdin)")
    if output is None and any(i in STDIN_NAMES for i in paths):
        raise click.UsageError(
            "an input read from stdin has no folder to write beside: give -o FILE, or -o - for stdout"
        )
    pipe_dir = tempfile.TemporaryDirectory(prefix="liif-pipe-")
    spec = specs_of(scale=scale, size=size, width=width, height=height, region=region)
    to_stdout = output == "-"
    if to_stdout:
        output, ext = stdout_target(paths, spec, ext, Path(pipe_dir.name))
    if dry_run:
        paths = [i for i in paths if i not in STDIN_NAMES] or paths  # stdin is not read for a plan
    else:
        paths = [str(spool_stdin(Path(pipe_dir.name))) if i in STDIN_NAMES else i for i in paths]
    options = BatchOptions(
        spec=spec,
        output=Path(output) if output else None,
        ext=ext,
        suffix=suffix,
        recursive=recursive,
        overwrite=overwrite,
        alpha=alpha,
        quality=quality,
        lossless=lossless,
        max_pixels=max_pixels,
        max_out_pixels=max_out_pixels,
        video=VideoOptions(codec=codec, crf=crf, pix_fmt=pix_fmt, frames=frame_range, time=time_range),
    )
    reporter = ConsoleReporter(quiet=quiet, mode=progress_mode.lower())
    from .options import notices

    for note in notices(click.get_current_context(silent=True)):
        reporter.warn(note)
    progress = reporter.mode != "none" and reporter.mode != "json"  # download progress
    registry.check_model_ref(model)  # an unknown model fails now (exit 5), even if every output exists
    from .. import distributed

    with pipe_dir:
        if dry_run:
            from .plan import print_plan

            return print_plan(paths, options, model, load)
        if distributed.detect_launch().distributed:  # under torchrun or srun (docs/scale-out.md)
            return _upscale_shards(list(paths), options, model, load, quiet)
        jobs = plan_batch(list(paths), options)
        if to_stdout:
            reporter.aliases[options.output] = "stdout"
        for job in jobs:
            if job.input.parent == Path(pipe_dir.name):
                reporter.aliases[job.input] = "stdin"
        try:
            lazy = LazyModel(model, load, progress=progress)  # torch: imported only when a file needs the model
            results = run_batch(jobs, options, lazy, reporter, estimate=lazy.estimate)
        finally:
            reporter.close()
        raise_for_failures(results, single_input=len({job.input for job in jobs}) == 1)
        if to_stdout and options.output is not None:
            write_stdout(options.output)


def _upscale_shards(inputs: list[str], options: BatchOptions, model: str, load: LoadOptions, quiet: bool) -> None:
    """`liif upscale` as one of several processes: this rank's share, then rank 0 prints the job's summary."""
    import os
    import signal
    import sys

    from .. import distributed
    from ..batch.shards import run_shards
    from ..errors import LiifError
    from .report import ConsoleReporter, print_job_summary

    rank = distributed.detect_launch().rank
    reporter = ConsoleReporter(quiet=quiet, interactive=False, label=f"rank {rank}: ")  # no live bars: N consoles

    def say_why_not_merged(group: Group) -> None:
        if group.warning and group.is_main:  # said once, by rank 0
            reporter.warn(group.warning)

    def summarize(outcome: ShardOutcome) -> None:
        """Say everything while the ranks still wait for each other: torchrun stops the other processes
        as soon as one exits with an error, so a rank may get SIGTERM as soon as this returns."""
        reporter.close()
        if outcome.merged and outcome.rank == 0 and not (quiet and not outcome.exit_code):
            print_job_summary(reporter.console, outcome)
        try:
            outcome.raise_for_status()
        except LiifError as exc:
            click.echo(f"error: {exc}", err=True)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(outcome.exit_code))  # the job's status, whatever comes

    try:
        outcome = run_shards(
            inputs,
            options,
            model,
            load,
            reporter,
            progress=not quiet,
            on_group=say_why_not_merged,
            on_outcome=summarize,
        )
    finally:
        reporter.close()
    if outcome.exit_code:
        sys.exit(outcome.exit_code)  # its error line is out already
