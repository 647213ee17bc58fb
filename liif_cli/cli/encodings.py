"""`liif encode` and `liif render`: save an image's encoding (.liif) once, render any size or region later.

The two share the output checks, hence one module; their model options are the one block of
`options.load_options`, as every command that loads a model has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .app import handle_errors, main
from .options import (
    ALPHA,
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
    from ..load_options import LoadOptions
    from ..sizes import Region, Scale

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress output; warnings and errors only.")


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """Checked before any work: an existing output without --overwrite, or a folder that cannot take it, is
    exit 4, as `write_image` would say."""
    from ..errors import OutputError
    from ..imageio import check_destination
    from ..imageio.target import exists

    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise exists(path)
    check_destination(path)


@main.command("encode", short_help="Save an image's encoding (.liif) to render later at any size or region.")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("-o", "--output", metavar="PATH", help="The .liif file.  [default: INPUT's name with .liif, beside it]")
@click.option(
    "-n", "--model", default="edsr-baseline", show_default=True, metavar="NAME|PATH", help="Model name or .pth path."
)
@click.option("--alpha", type=ALPHA, default="model", show_default=True, help="Transparency upscaling.")
@max_pixels_option
@click.option("--overwrite", is_flag=True, help="Replace an existing .liif file.")
@load_options()
@quiet_option
@handle_errors
def encode_cmd(
    input_path: str,
    output: str | None,
    model: str,
    alpha: str,
    max_pixels: int | None,
    overwrite: bool,
    load: LoadOptions,
    quiet: bool,
) -> None:
    """Run the encoder over INPUT once and save its latent grid (safetensors) to render later.

    \b
      liif encode photo.jpg                             # photo.liif beside it
      liif render photo.liif --width 3840              # no input image, no encoder

    Takes 256 bytes per input pixel in fp32 (128 in half precision), twice that when alpha goes through
    the model. Alpha, gray and 16-bit inputs render as `liif upscale` makes them.
    """
    import time

    from .. import api, registry
    from ..errors import UsageError
    from ..imageio import read_image
    from ..naming import ENCODING_EXTENSION, encoding_path

    src = Path(input_path)
    out = Path(output) if output else encoding_path(src)
    if out.suffix.lower() != ENCODING_EXTENSION:
        raise UsageError(f"-o {out}: an encoding is written as a .liif file")
    _refuse_existing(out, overwrite)
    registry.check_model_ref(model)
    t0 = time.monotonic()
    img = read_image(src, max_pixels=max_pixels, warn=lambda msg: click.echo(f"warning: {msg}", err=True))
    upscaler = api.load_model(model, load, progress=not quiet)
    encoding = upscaler.encode(img, alpha=alpha)
    encoding.save(out, overwrite=overwrite)
    if not quiet:
        h, w = encoding.in_hw
        seconds = time.monotonic() - t0
        click.echo(f"wrote {out} ({w}x{h}, {encoding.nbytes / 1e6:.1f} MB, {seconds:.1f} s)", err=True)


@main.command("render", short_help="Render a saved encoding (.liif) at any size, or a region of it.")
@click.argument("encoding_path", metavar="ENCODING", type=click.Path(dir_okay=False))
@size_options
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Output image, or a folder for several sizes.  [default: <name>_<size>.png beside ENCODING]",
)
@click.option("-n", "--model", metavar="NAME|PATH", help="Model to render with.  [default: the one that encoded it]")
@quality_option
@lossless_option
@max_out_pixels_option
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@load_options()
@quiet_option
@progress_option
@dry_run_option
@handle_errors
def render_cmd(
    encoding_path: str,
    scale: tuple[Scale, ...],
    size: tuple[tuple[int, int], ...],
    width: tuple[int, ...],
    height: tuple[int, ...],
    region: Region | None,
    output: str | None,
    model: str | None,
    quality: int,
    lossless: bool,
    max_out_pixels: int | None,
    overwrite: bool,
    load: LoadOptions,
    quiet: bool,
    progress_mode: str,
    dry_run: bool,
) -> None:
    """Render ENCODING (made by `liif encode`) without the input image or the encoder.

    \b
      liif render photo.liif --size 4000x3000 -o big.png
      liif render photo.liif --width 640 --width 1920    # photo_w640.png, photo_w1920.png
      liif render photo.liif --region 1200,800,64,48 --scale 20   # photo_r1200,800,64,48_x20.png

    The pixels are those `liif upscale` makes from the input. An encoding made by another model's
    weights is refused (exit 10); a corrupt, truncated or newer-format file too (exit 9).
    """
    import time

    from ..api import load_encoding, planning_model
    from ..batch import FileResult, Job
    from ..encoding import encoding_info
    from ..errors import LiifError, UsageError
    from ..imageio import check_output_size, format_for_path, write_image
    from ..sizes import specs_of
    from .options import notices
    from .report import ConsoleReporter

    for note in notices(click.get_current_context(silent=True)):
        click.echo(f"warning: {note}", err=True)
    specs = specs_of(scale=scale, size=size, width=width, height=height, region=region)
    for spec in specs:
        spec.check_limit(max_out_pixels)
    src = Path(encoding_path)
    targets = _render_targets(src, Path(output) if output else None, [spec.tag() for spec in specs])
    formats = []
    for out in targets:
        try:
            formats.append(format_for_path(out))
        except LiifError as exc:
            raise exc.as_kind(UsageError) from None
        _refuse_existing(out, overwrite)
    if dry_run:  # the header only: no tensor read, no model loaded, nothing written
        meta = encoding_info(src)
        w, h = meta["input_size"]
        name = model or meta.get("model") or "edsr-baseline"
        planner, encoder = planning_model(name, load.replace(precision=load.precision or meta.get("precision")))
        span = (h, w) if region is None else (int(-(-region[3] // 1)), int(-(-region[2] // 1)))
        for out, spec, fmt in zip(targets, specs, formats, strict=True):
            out_hw = spec.resolve((h, w), max_out_pixels)
            check_output_size(fmt, out_hw[1], out_hw[0])
            click.echo(f"write  {out}  ({src}, {planner.estimate(span, out_hw)}; rendering skips the encoder's share)")
        click.echo(
            f"dry run: {len(targets)} to write; model {name} not loaded, estimates for its {encoder} architecture"
        )
        return
    reporter = ConsoleReporter(quiet=quiet, mode=progress_mode.lower())
    jobs = [Job(src, out) for out in targets]
    t_start = time.monotonic()
    reporter.start(jobs)
    results = []
    try:
        encoding = load_encoding(src, model, load, progress=not quiet)
        sizes = [spec.resolve(encoding.in_hw, max_out_pixels) for spec in specs]
        for fmt, out_hw in zip(formats, sizes, strict=True):
            check_output_size(fmt, out_hw[1], out_hw[0])
        for index, (job, out_hw) in enumerate(zip(jobs, sizes, strict=True)):
            t0 = time.monotonic()
            reporter.file_start(index, job)
            reporter.file_sizes(encoding.in_hw, out_hw)
            result = encoding.render(size=(out_hw[1], out_hw[0]), region=region, progress=reporter.progress)
            write_image(result, job.output, quality=quality, lossless=lossless, overwrite=overwrite, warn=reporter.warn)
            done = FileResult(
                src, job.output, "written", seconds=time.monotonic() - t0, in_hw=encoding.in_hw, out_hw=out_hw
            )
            results.append(done)
            reporter.file_end(done)
    finally:
        reporter.close()
    reporter.finish(results, time.monotonic() - t_start)


def _render_targets(src: Path, output: Path | None, tags: list[str]) -> list[Path]:
    """One output path per size: `<name>_<tag>.png` beside the encoding (or in the folder -o names); -o may
    name a file only when there is one size."""
    from ..errors import UsageError
    from ..naming import render_name

    names = [render_name(src, tag) for tag in tags]
    if output is None:
        return [src.with_name(name) for name in names]
    if output.is_dir() or not output.suffix:
        return [output / name for name in names]
    if len(tags) > 1:
        raise UsageError(f"-o {output} names a file, but there are several sizes; give a folder")
    return [output]
