"""`liif encode` and `liif render`: save an image's encoding (.liif) once, render any size or region later.

The two share the output checks, hence one module; their model options are the one block of
`options.load_options`, as every command that loads a model has it.
"""

from __future__ import annotations

import click

from .app import handle_errors, main
from .options import (
    ALPHA,
    load_options,
    lossless_option,
    max_out_pixels_option,
    max_pixels_option,
    quality_option,
    size_options,
)

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress output; warnings and errors only.")


def _refuse_existing(path, overwrite: bool) -> None:
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
def encode_cmd(input_path, output, model, alpha, max_pixels, overwrite, load, quiet) -> None:
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
    quality,
    lossless,
    max_out_pixels,
    overwrite,
    load,
    quiet,
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
    from pathlib import Path

    from rich.console import Console

    from ..api import load_encoding
    from ..errors import LiifError, UsageError
    from ..imageio import check_output_size, format_for_path, write_image
    from ..progress import work_progress
    from ..sizes import specs_of

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
    t0 = time.monotonic()
    encoding = load_encoding(src, model, load, progress=not quiet)
    sizes = [spec.resolve(encoding.in_hw, max_out_pixels) for spec in specs]
    for fmt, out_hw in zip(formats, sizes, strict=True):
        check_output_size(fmt, out_hw[1], out_hw[0])
    console = Console(stderr=True)
    warn = lambda msg: click.echo(f"warning: {msg}", err=True)  # noqa: E731
    for out, out_hw in zip(targets, sizes, strict=True):
        with work_progress(console=console, disable=quiet or not console.is_terminal) as progress:
            task = progress.add_task(f"{out_hw[1]}x{out_hw[0]}", total=out_hw[0] * out_hw[1], unit="px")
            result = encoding.render(
                size=(out_hw[1], out_hw[0]),
                region=region,
                progress=lambda done, total, task=task: progress.update(task, completed=done, total=max(total, 1)),
            )
        write_image(result, out, quality=quality, lossless=lossless, overwrite=overwrite, warn=warn)
        if not quiet:
            click.echo(f"wrote {out} ({out_hw[1]}x{out_hw[0]}, {time.monotonic() - t0:.1f} s)", err=True)
        t0 = time.monotonic()


def _render_targets(src, output, tags: list[str]) -> list:
    """One output path per size: `<name>_<tag>.png` beside the encoding (or in the folder -o names); -o may
    name a file only when there is one size."""
    from ..errors import UsageError

    names = [f"{src.stem}_{tag}.png" for tag in tags]
    if output is None:
        return [src.with_name(name) for name in names]
    if output.is_dir() or not output.suffix:
        return [output / name for name in names]
    if len(tags) > 1:
        raise UsageError(f"-o {output} names a file, but there are several sizes; give a folder")
    return [output]
