"""`liif encode` and `liif render`: save an image's encoding (.liif) once, render any size or region later.

The two share their engine options (as `liif upscale` has them) and the output checks, hence one module.
"""

from __future__ import annotations

import click

from .app import handle_errors, main
from .options import (
    ALPHA,
    DEVICE,
    PIXELS,
    PRECISION,
    REGION,
    SCALE,
    SIDE,
    SIZE,
    batch_size_option,
    dry_run_option,
    lossless_option,
    max_out_pixels_option,
    progress_option,
    quality_option,
)


def _engine_options(precision_default: str):
    """--device, --precision, --tile, --threads, --allow-unverified, --offline, -q: as `liif upscale` has them."""
    decorators = [
        click.option("--device", type=DEVICE, help="auto, cpu, cuda, cuda:N or mps.  [default: auto]"),
        click.option("--precision", type=PRECISION, help=f"Engine precision.  [default: {precision_default}]"),
        click.option(
            "-t",
            "--tile",
            type=click.IntRange(min=0),
            metavar="PX",
            help="Tile size in input pixels; 0 = from free memory.",
        ),
        click.option("--threads", type=click.IntRange(1, 4096), metavar="N", help="CPU threads.  [default: all cores]"),
        click.option("--allow-unverified", is_flag=True, help="Use a model whose sha256 is not pinned."),
        click.option("--offline", is_flag=True, help="Never download; use the cache only."),
        click.option("-q", "--quiet", is_flag=True, help="No progress output; warnings and errors only."),
    ]

    def apply(fn):
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


def _load_options(device, precision, tile, threads, allow_unverified, offline, quiet) -> dict:
    given = {"device": device, "precision": precision, "tile": tile or None, "threads": threads}
    opts: dict = {k: v for k, v in given.items() if v is not None}
    return {**opts, "allow_unverified": allow_unverified, "offline": True if offline else None, "progress": not quiet}


def _refuse_existing(path, overwrite: bool) -> None:
    """Checked before any work: an existing output without --overwrite is exit 4, as `write_image` would say."""
    from ..errors import OutputError

    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (use --overwrite to replace it)")


@main.command("encode", short_help="Save an image's encoding (.liif) to render later at any size or region.")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("-o", "--output", metavar="PATH", help="The .liif file.  [default: INPUT's name with .liif, beside it]")
@click.option(
    "-n", "--model", default="edsr-baseline", show_default=True, metavar="NAME|PATH", help="Model name or .pth path."
)
@click.option("--alpha", type=ALPHA, default="model", show_default=True, help="Transparency upscaling.")
@click.option(
    "--max-pixels", type=PIXELS, default="100M", show_default=True, help="Largest input accepted (0: no limit)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing .liif file.")
@_engine_options("auto")
@handle_errors
def encode_cmd(input_path, output, model, alpha, max_pixels, overwrite, **engine) -> None:
    """Run the encoder over INPUT once and save its latent grid (safetensors) to render later.

    \b
      liif encode photo.jpg                             # photo.liif beside it
      liif render photo.liif --width 3840              # no input image, no encoder

    Takes 256 bytes per input pixel in fp32 (128 in half precision), twice that when alpha goes through
    the model. Alpha, gray and 16-bit inputs render as `liif upscale` makes them.
    """
    import time
    from pathlib import Path

    from .. import api, registry
    from ..errors import UsageError
    from ..imageio import read_image

    src = Path(input_path)
    out = Path(output) if output else src.with_suffix(".liif")
    if out.suffix.lower() != ".liif":
        raise UsageError(f"-o {out}: an encoding is written as a .liif file")
    _refuse_existing(out, overwrite)
    registry.check_model_ref(model)
    t0 = time.monotonic()
    img = read_image(src, max_pixels=max_pixels, warn=lambda msg: click.echo(f"warning: {msg}", err=True))
    upscaler = api.load_model(model, **_load_options(**engine))
    encoding = upscaler.encode(img, alpha=alpha)
    encoding.save(out, overwrite=overwrite)
    if not engine["quiet"]:
        h, w = encoding.in_hw
        seconds = time.monotonic() - t0
        click.echo(f"wrote {out} ({w}x{h}, {encoding.nbytes / 1e6:.1f} MB, {seconds:.1f} s)", err=True)


@main.command("render", short_help="Render a saved encoding (.liif) at any size, or a region of it.")
@click.argument("encoding_path", metavar="ENCODING", type=click.Path(dir_okay=False))
@click.option("-s", "--scale", type=SCALE, help="Scale factor S (2, 7.5...) or SX,SY.")
@click.option("--size", type=SIZE, help="Output size WIDTHxHEIGHT (the aspect ratio follows the numbers).")
@click.option("--width", type=SIDE, help="Output width in pixels; the height keeps the aspect ratio.")
@click.option("--height", type=SIDE, help="Output height in pixels; the width keeps the aspect ratio.")
@click.option("--region", type=REGION, help="Render only this window (input pixels, floats allowed).")
@click.option("-o", "--output", metavar="PATH", help="Output image.  [default: <name>_<size>.png beside ENCODING]")
@click.option("-n", "--model", metavar="NAME|PATH", help="Model to render with.  [default: the one that encoded it]")
@batch_size_option
@quality_option
@lossless_option
@max_out_pixels_option
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@_engine_options("the encoding's")
@progress_option
@dry_run_option
@handle_errors
def render_cmd(
    encoding_path,
    scale,
    size,
    width,
    height,
    region,
    output,
    model,
    batch_size,
    quality,
    lossless,
    max_out_pixels,
    overwrite,
    progress_mode,
    dry_run,
    **engine,
) -> None:
    """Render ENCODING (made by `liif encode`) without the input image or the encoder.

    \b
      liif render photo.liif --size 4000x3000 -o big.png
      liif render photo.liif --region 1200,800,64,48 --scale 20   # photo_r1200,800,64,48_x20.png

    The pixels are those `liif upscale` makes from the input. An encoding made by another model's
    weights is refused (exit 10); a corrupt, truncated or newer-format file too (exit 9).
    """
    import dataclasses
    import time
    from pathlib import Path

    from ..batch import FileResult, Job
    from ..encoding import encoding_info, load_encoding
    from ..errors import LiifError, UsageError
    from ..imageio import check_output_size, format_for_path, write_image
    from ..specs import size_spec
    from .options import notices
    from .report import ConsoleReporter

    for note in notices(click.get_current_context(silent=True)):
        click.echo(f"warning: {note}", err=True)
    spec = dataclasses.replace(size_spec(scale=scale, size=size, width=width, height=height), region=region)
    src = Path(encoding_path)
    out = Path(output) if output else src.with_name(f"{src.stem}_{spec.tag()}.png")
    try:
        fmt = format_for_path(out)
    except LiifError as exc:
        raise UsageError(str(exc)) from None
    _refuse_existing(out, overwrite)
    opts = _load_options(**engine)
    if batch_size is not None:
        opts["batch_size"] = batch_size
    if dry_run:  # the header only: no tensor read, no model loaded, nothing written
        from .. import api

        meta = encoding_info(src)
        w, h = meta["input_size"]
        out_hw = spec.resolve((h, w), max_out_pixels)
        check_output_size(fmt, out_hw[1], out_hw[0])
        name = model or meta.get("model") or "edsr-baseline"
        planner, encoder = api.planning_model(name, **{"precision": meta.get("precision", "auto"), **opts})
        span = (h, w) if region is None else (int(-(-region[3] // 1)), int(-(-region[2] // 1)))
        click.echo(f"write  {out}  ({src}, {planner.estimate(span, out_hw)}; rendering skips the encoder's share)")
        click.echo(f"dry run: 1 to write; model {name} not loaded, estimates for its {encoder} architecture")
        return
    reporter = ConsoleReporter(quiet=engine["quiet"], mode=progress_mode.lower())
    job = Job(src, out)
    t0 = time.monotonic()
    reporter.start([job])
    try:
        reporter.file_start(0, job)
        encoding = load_encoding(src, model=model, **opts)
        out_hw = spec.resolve(encoding.in_hw, max_out_pixels)
        check_output_size(fmt, out_hw[1], out_hw[0])
        reporter.file_sizes(encoding.in_hw, out_hw)
        result = encoding.render(size=(out_hw[1], out_hw[0]), region=region, progress=reporter.progress)
        write_image(result, out, quality=quality, lossless=lossless, overwrite=overwrite, warn=reporter.warn)
    finally:
        reporter.close()
    done = FileResult(src, out, "written", seconds=time.monotonic() - t0, in_hw=encoding.in_hw, out_hw=out_hw)
    reporter.file_end(done)
    reporter.finish([done], done.seconds)
