"""The `liif` command line: parse, call the library, report. No logic here that the Python API lacks."""

from __future__ import annotations

import logging

import click

from .cli_options import ALPHA, CODEC, DEVICE, EXT, FRAMES, PIXELS, PRECISION, REGION, SCALE, SIDE, SIZE, TIME
from .encoders import ENCODER_NAMES, NORMALIZATION_NAMES


class _OneLineErrors(click.Group):
    """Click parses every option; a bad value is one line, `error: ...`, with exit 2 like any usage error."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        import sys

        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            from .errors import INTERRUPTED_EXIT_CODE

            click.echo("interrupted", err=True)
            sys.exit(INTERRUPTED_EXIT_CODE)
        except click.ClickException as exc:
            click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="liif-cli", prog_name="liif")
def main() -> None:
    """Arbitrary-scale image super-resolution with LIIF."""
    _prepare_process()


def _prepare_process() -> None:
    """What the application (not the library) decides before a command runs.

    The library warns with `warnings` (LiifWarning) and informs with `logging`; here both become one line
    on stderr. PyTorch's CPU allocator is asked for transparent huge pages (read once, before its first
    allocation: fresh 4 KiB pages fault one by one, which made a new 64 MiB tensor 3x slower to fill).
    """
    import os
    import warnings

    from .errors import LiifWarning

    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    warnings.simplefilter("always", LiifWarning)
    debug = bool(os.environ.get("LIIF_DEBUG"))
    warnings.showwarning = lambda message, *_args, **_kw: click.echo(f"warning: {message}", err=True)
    log = logging.getLogger("liif_cli")
    if not any(isinstance(h, _EchoHandler) for h in log.handlers):
        log.addHandler(_EchoHandler())
    log.setLevel(logging.DEBUG if debug else logging.INFO)


class _EchoHandler(logging.Handler):
    """Log records as bare lines on the current stderr (click's, so that test runners capture them)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


# --- errors: one line on stderr and a documented exit code -------------------------------------------


def handle_errors(fn):
    """Decorator for command bodies: errors become one line on stderr and the documented exit code.

    LiifError -> `error: <message>`, exit `exc.exit_code`; KeyboardInterrupt -> `interrupted`, exit 130;
    anything else -> `internal error: ...` and a hint, exit 1 (the traceback only with LIIF_DEBUG=1).
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import os
        import sys
        import traceback

        from .errors import INTERRUPTED_EXIT_CODE, LiifError

        def one_line(exc: BaseException) -> str:
            text = " ".join(str(exc).split())
            return text or type(exc).__name__

        try:
            return fn(*args, **kwargs)
        except LiifError as exc:
            click.echo(f"error: {one_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(INTERRUPTED_EXIT_CODE)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("LIIF_DEBUG"):
                traceback.print_exc()
            click.echo(f"internal error: {type(exc).__name__}: {one_line(exc)}", err=True)
            click.echo(
                "this is a bug in liif; please report it with the command you ran (LIIF_DEBUG=1 shows the traceback)",
                err=True,
            )
            sys.exit(1)

    return wrapper


# --- commands -------------------------------------------------------------------------------------


# --- liif models (registry and download cache) ------------------------------------------------------


_VERIFIED_TEXT = {
    "verified": "sha256 ok",
    "prefix-verified": "prefix ok",
    "unpinned": "hash unknown",
    "mismatch": "MISMATCH",
    "missing": "-",
}


def _verified_text(status) -> str:
    if status.state == "missing" and not status.entry.pinned:
        return "hash unknown"
    return _VERIFIED_TEXT[status.state]


@main.group("models", invoke_without_command=True, short_help="List, download and verify the named models.")
@click.pass_context
@handle_errors
def models_cmd(ctx: click.Context) -> None:
    """List the named models (weights.toml) and whether each is cached and verified."""
    if ctx.invoked_subcommand is not None:
        return
    from rich import box
    from rich.console import Console
    from rich.filesize import decimal
    from rich.table import Table

    from . import registry

    entries = registry.load_registry()
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True, min_width=max(map(len, entries)) + 1)
    for column in ("encoder", "format", "size", "sources", "cached"):
        table.add_column(column, no_wrap=True)
    table.add_column("verified", no_wrap=True, min_width=len("hash unknown"))
    table.add_column("description", min_width=16)
    for name, entry in entries.items():
        status = registry.cache_status(entry)
        table.add_row(
            f"{name}*" if name == registry.DEFAULT_MODEL else name,
            entry.encoder,
            entry.format,
            decimal(status.size) if status.size else "?",
            ", ".join(dict.fromkeys(s.kind for s in entry.sources)),
            "yes" if status.cached else "no",
            _verified_text(status),
            entry.description,
        )
    console = Console()
    if not console.is_terminal:  # piped: a line cut at 80 columns helps nobody
        console = Console(width=160)
    console.print(table)
    console.print(f"* default model; cache: {registry.cache_dir() / 'weights'}", highlight=False)


_allow_unverified = click.option(
    "--allow-unverified", is_flag=True, help="Use a model whose sha256 is not pinned (its hash is printed)."
)
_quiet = click.option("-q", "--quiet", is_flag=True, help="No progress output.")


@models_cmd.command("download")
@click.argument("name")
@_allow_unverified
@_quiet
@handle_errors
def models_download_cmd(name: str, allow_unverified: bool, quiet: bool) -> None:
    """Download model NAME into the cache and verify it (nothing to do if it is cached and intact)."""
    from . import registry

    entry = registry.get_entry(name)
    path = registry.fetch(entry, allow_unverified=allow_unverified, progress=not quiet)
    click.echo(f"{name}: {path} ({entry.hash_note()})")


@models_cmd.command("path")
@click.argument("name")
@_allow_unverified
@_quiet
@handle_errors
def models_path_cmd(name: str, allow_unverified: bool, quiet: bool) -> None:
    """Print the local file of model NAME, downloading it first if needed."""
    from . import registry

    entry = registry.get_entry(name)
    click.echo(registry.fetch(entry, allow_unverified=allow_unverified, progress=not quiet))


@models_cmd.command("verify")
@click.argument("name", required=False)
@handle_errors
def models_verify_cmd(name: str | None) -> None:
    """Re-hash the cached file of NAME (default: every cached model); exit 7 if one does not match."""
    from . import registry
    from .errors import ChecksumError

    entries = [registry.get_entry(name)] if name else list(registry.load_registry().values())
    bad = []
    for entry in entries:
        status = registry.cache_status(entry, rehash=True)
        if not status.cached:
            click.echo(f"{entry.name}: not cached")
            continue
        if status.state == "mismatch":
            bad.append(entry.name)
        click.echo(f"{entry.name}: {_verified_text(status)}, sha256 {status.sha256} ({status.path})")
    if bad:
        raise ChecksumError(f"{', '.join(bad)} failed verification; 'liif models download NAME' fetches a fresh copy")


# --- liif bench (benchmark sets, protocols, published figures) --------------------------------------


@main.command("bench", short_help="Score models on standard SR benchmark sets (PSNR/SSIM).")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    type=click.Choice(["set5", "set14", "b100", "urban100", "div2k"], case_sensitive=False),
    help="Benchmark set (repeatable). div2k is the DIV2K validation set.",
)
@click.option(
    "-n",
    "--model",
    "models",
    multiple=True,
    default=("edsr-baseline",),
    show_default=True,
    help="Model name or checkpoint path (repeatable).",
)
@click.option(
    "--scales",
    default=None,
    help="Comma-separated integer scales [mmagic: 2,3,4,6,18,30; paper: 2,3,4,6,8, DIV2K 2,3,4,6,12,18,24,30].",
)
@click.option(
    "--protocol",
    type=click.Choice(["mmagic", "paper"]),
    default="mmagic",
    show_default=True,
    help="mmagic: GTmod12, PIL-bicubic LR, uint8 output, RGB PSNR/SSIM. paper: official test.py, Y-channel PSNR.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Local sets in the standard layout (<Name>/HR, <Name>/LR_bicubic/X{s}); never downloads.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images of each set.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(allow_dash=True),
    default=None,
    help="Write results (with per-image scores) as JSON ('-' for stdout).",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(allow_dash=True),
    default=None,
    help="Write one CSV row per model, dataset and scale ('-' for stdout).",
)
@click.option(
    "--save-images",
    type=click.Path(file_okay=False),
    default=None,
    help="Write outputs as DIR/<model>/<Set>/x<s>/<image>.png.",
)
@click.option("--device", type=DEVICE, default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--precision",
    type=PRECISION,
    default="fp32",
    show_default=True,
    help="Engine precision; fp32 is the reference math (the others trade accuracy for speed).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all cores).")
@click.option("--offline", is_flag=True, help="Never download sets; use the cache or --data-dir (also LIIF_OFFLINE=1).")
@click.option("-q", "--quiet", "bench_quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a self-contained HTML report (tables, plots, crops); adds the bicubic baseline.",
)
@handle_errors
def bench_cmd(
    datasets,
    models,
    scales,
    protocol,
    data_dir,
    limit,
    json_path,
    csv_path,
    save_images,
    device,
    precision,
    threads,
    offline,
    bench_quiet,
    report,
) -> None:
    """Score models on standard SR benchmark sets under the mmagic or the paper protocol.

    Prints PSNR / SSIM per model and scale beside the published figures, plus throughput and wall time.
    Sets are fetched into the cache on first use unless --data-dir is given.
    """

    from rich.console import Console
    from rich.progress import TextColumn

    from .bench import parse_scales, run_bench
    from .bench.report import render, write_csv, write_json
    from .progress import work_progress

    err = Console(stderr=True)
    progress = work_progress(TextColumn("{task.fields[item]}"), console=err, disable=bench_quiet)
    tasks: list = []

    def hook(event: str, info: dict) -> None:
        if event == "start":
            tasks.append(progress.add_task(info["description"], total=info["total"], item="", mpx=0.0))
        elif event == "advance":
            mpx = progress.tasks[-1].fields["mpx"] + info.get("out_pixels", 0) / 1e6
            progress.update(tasks[-1], advance=1, mpx=mpx, item=f"x{info['scale']} {info['image']}")
        elif event == "end":
            progress.remove_task(tasks[-1])

    with progress:
        result = run_bench(
            [d.lower() for d in datasets],
            list(models),
            protocol=protocol,
            scales=parse_scales(scales),
            data_dir=data_dir,
            limit=limit,
            save_images=save_images,
            device=device,
            precision=precision,
            threads=threads,
            progress=hook,
            offline=True if offline else None,
            report=report,
        )
    if result.rank != 0:  # under torchrun/srun rank 0 prints and writes the merged result
        return
    to_stdout = "-" in (str(json_path), str(csv_path))
    render(result, err if to_stdout else Console())
    if json_path is not None:
        write_json(result, json_path)
    if csv_path is not None:
        write_csv(result, csv_path)


# --- liif train (train and fine-tune; torchrun for several processes) --------------------------------


def _dflt(name: str) -> str:
    """'  [default: X]' for help texts: the options default to None so that a --config file can set them."""
    from .train.config import TrainConfig

    value = getattr(TrainConfig(), name)
    if isinstance(value, list):
        shown = ",".join(f"{v:g}" for v in value)
    else:
        shown = f"{value:g}" if isinstance(value, float) else value
    return f"  [default: {shown}]"


@main.group("train", invoke_without_command=True, short_help="Train or fine-tune LIIF (official recipe).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of settings (flags win).")
@click.option("--data", type=click.Path(file_okay=False), help="Folder of HR training images (or with an HR/ folder).")
@click.option(
    "--val", type=click.Path(file_okay=False), help="Validation folder: HR images, or HR/ + LR_bicubic/X{s}/."
)
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (checkpoints, log.jsonl, config.toml).")
@click.option("--encoder", type=click.Choice(ENCODER_NAMES), help="Encoder when training from scratch.")
@click.option("--init", help="Registry name or checkpoint to fine-tune from (keeps its normalization).")
@click.option("--normalization", type=click.Choice(NORMALIZATION_NAMES), help="Override the input normalization.")
@click.option(
    "--resume",
    is_flag=False,
    flag_value="auto",
    default=None,
    help="Continue a run: a checkpoint (or run dir); bare --resume continues OUT/last.pth when present.",
)
@click.option("--overwrite", is_flag=True, default=None, help="Start afresh in an OUT that holds a run.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs to train." + _dflt("epochs"))
@click.option(
    "--iters-per-epoch",
    type=click.IntRange(min=1),
    help="Iterations (optimizer steps of one global batch) per epoch." + _dflt("iters_per_epoch"),
)
@click.option(
    "--batch-size",
    "--batch",
    type=click.IntRange(min=1),
    help="Global batch size, split over processes." + _dflt("batch_size"),
)
@click.option("--inp-size", type=click.IntRange(min=1), help="LR patch side." + _dflt("inp_size"))
@click.option("--scale-min", type=float, help="Smallest training scale." + _dflt("scale_min"))
@click.option("--scale-max", type=float, help="Largest training scale." + _dflt("scale_max"))
@click.option("--sample-q", type=click.IntRange(min=1), help="HR queries per sample." + _dflt("sample_q"))
@click.option("--augment/--no-augment", default=None, help="Random flips and transpose.  [default: augment]")
@click.option("--lr", type=float, help="Adam learning rate." + _dflt("lr"))
@click.option("--lr-milestones", help="Epochs after which lr is multiplied by gamma." + _dflt("lr_milestones"))
@click.option("--lr-gamma", type=float, help="Learning-rate decay factor." + _dflt("lr_gamma"))
@click.option("--workers", type=click.IntRange(min=0), help="DataLoader workers per process." + _dflt("workers"))
@click.option(
    "--decoded-cache",
    type=click.Path(file_okay=False),
    help="Keep decoded training images as .npy here and read crops by memory map (much faster on 2K PNGs).",
)
@click.option("--seed", type=int, help="Seed for weights and data." + _dflt("seed"))
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps." + _dflt("device"))
@click.option("--threads", type=click.IntRange(min=0), help="CPU threads per process (0: torch's default, all cores).")
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), help="Mixed precision." + _dflt("amp"))
@click.option("--save-every", type=click.IntRange(min=0), help="last.pth every N epochs." + _dflt("save_every"))
@click.option(
    "--keep-every",
    type=click.IntRange(min=0),
    help="Keep epoch-N.pth every N epochs (0 never)." + _dflt("keep_every"),
)
@click.option("--val-every", type=click.IntRange(min=0), help="Validate every N epochs." + _dflt("val_every"))
@click.option("--val-scales", help="Comma-separated integer validation scales." + _dflt("val_scales"))
@click.option(
    "--val-protocol",
    type=click.Choice(["benchmark", "div2k"]),
    help="benchmark: Y PSNR, shave s; div2k: RGB PSNR, shave s+6." + _dflt("val_protocol"),
)
@click.option("--val-max-images", type=click.IntRange(min=0), help="Validate on the first N images only.")
@click.option("--log-every", type=click.IntRange(min=1), help="Log every N iterations." + _dflt("log_every"))
@click.option("--export", type=click.Path(dir_okay=False), help="Also write the final weights as .safetensors.")
@click.option("--debug-param-hash", is_flag=True, default=None, help="Log every rank's parameter hash each epoch.")
@click.option("-q", "--quiet", "train_quiet", is_flag=True, help="No progress bar.")
@click.pass_context
@handle_errors
def train_cmd(ctx: click.Context, config_file, train_quiet, **options) -> None:
    """Train LIIF from scratch, or fine-tune with --init, with the official recipe as defaults.

    Every setting can also come from --config FILE (TOML); flags override it. Under
    `torchrun --nproc_per_node N -m liif_cli train ...` the same command trains with
    DistributedDataParallel; only rank 0 logs and writes checkpoints.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .train import resolve_config, train
    from .train.config import parse_list

    if options.get("lr_milestones") is not None:
        options["lr_milestones"] = parse_list(options["lr_milestones"], int, "--lr-milestones")
    if options.get("val_scales") is not None:
        options["val_scales"] = parse_list(options["val_scales"], int, "--val-scales")
    options["batch_size"] = options.pop("batch_size", None)
    for flag in ("overwrite", "debug_param_hash"):
        options[flag] = options[flag] or None  # an absent flag leaves the config file's value
    options["progress"] = False if train_quiet else None
    result = train(resolve_config(options, config_file))
    if result.rank == 0:
        best = f", best val PSNR {result.best_psnr:.3f} dB" if result.best_psnr is not None else ""
        loss = f", loss {result.last_loss:.4f}" if result.last_loss is not None else ""
        click.echo(
            f"epoch {result.epoch}, iteration {result.iteration}{loss}{best}: {result.out / 'last.pth'}", err=True
        )


@train_cmd.command("export", short_help="Write a checkpoint's weights as .safetensors.")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--normalization", type=click.Choice(NORMALIZATION_NAMES), help="Override the stored normalization.")
@handle_errors
def train_export_cmd(checkpoint: str, output: str, normalization: str | None) -> None:
    """Write CHECKPOINT's weights (no optimizer) to OUTPUT.safetensors for sharing."""
    from .train import export_safetensors

    loaded = export_safetensors(checkpoint, output, normalization=normalization)
    click.echo(f"{output}: {loaded.encoder} weights, normalization sub={loaded.normalization.sub}", err=True)


# --- liif upscale (files, folders, batches) --------------------------------------------------------


@main.command("upscale", short_help="Upscale image files and folders to any size.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-s", "--scale", type=SCALE, multiple=True, help="Scale factor S (2, 7.5...) or SX,SY; repeatable.")
@click.option("--size", type=SIZE, multiple=True, help="Output size WIDTHxHEIGHT (aspect ratio as given); repeatable.")
@click.option("--width", type=SIDE, multiple=True, help="Output width in pixels (height keeps the aspect); repeatable.")
@click.option(
    "--height", type=SIDE, multiple=True, help="Output height in pixels (width keeps the aspect); repeatable."
)
@click.option("--region", type=REGION, help="Render only this window of the input (input pixels, floats allowed).")
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Output file (one input) or folder (input folders are mirrored inside it). Default: beside each input.",
)
@click.option(
    "-n",
    "--model",
    default="edsr-baseline",
    show_default=True,
    metavar="NAME|PATH",
    help="Model name (see 'liif models') or .pth path.",
)
@click.option("--device", type=DEVICE, help="auto, cpu, cuda, cuda:N or mps.  [default: auto]")
@click.option("--precision", type=PRECISION, help="Engine precision.  [default: auto]")
@click.option(
    "-t",
    "--tile",
    type=click.IntRange(min=0),
    metavar="PX",
    help="Tile size in input pixels; 0 = from free memory.  [default: 0]",
)
@click.option("--threads", type=click.IntRange(1, 4096), metavar="N", help="CPU threads.  [default: all cores]")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N", help="Query points per decoder batch.")
@click.option("--alpha", type=ALPHA, default="model", show_default=True, help="Transparency upscaling.")
@click.option("--ext", type=EXT, default="auto", show_default=True, help="Output format (auto: as the input).")
@click.option(
    "--quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    metavar="Q",
    help="JPEG and WebP quality, 1-100.",
)
@click.option("--lossless", is_flag=True, help="Write WebP losslessly.")
@click.option(
    "--suffix",
    metavar="TEXT",
    help="Output name <name>_<suffix>.<ext>; '' for none.  [default: x2, x7.5, 4000x3000...]",
)
@click.option("-r", "--recursive", is_flag=True, help="Also collect images and videos in sub-folders of input folders.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (inputs are never overwritten).")
@click.option(
    "--max-pixels", type=PIXELS, default="100M", show_default=True, help="Largest input accepted (0: no limit)."
)
@click.option(
    "--max-out-pixels", type=PIXELS, default="400M", show_default=True, help="Largest output accepted (0: no limit)."
)
@click.option("--codec", type=CODEC, help="Video codec.  [default: h264; vp9 for WebM]")
@click.option(
    "--crf", type=click.IntRange(0, 63), metavar="N", help="Video quality (lower is better).  [default: per codec]"
)
@click.option("--pix-fmt", metavar="FMT", help="Video pixel format (yuv420p, yuv444p...).  [default: the input's]")
@click.option("--frames", "frame_range", type=FRAMES, help="Only video frames A <= n < B (from 0; 'A:' to the end).")
@click.option("--time", "time_range", type=TIME, help="Only seconds T0 <= t < T1 of a video ('T0:' to the end).")
@click.option("--allow-unverified", is_flag=True, help="Use a model whose sha256 is not pinned.")
@click.option("--offline", is_flag=True, help="Never download; use the cache only.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output; warnings and errors only.")
@handle_errors
def upscale_cmd(
    inputs,
    scale,
    size,
    width,
    height,
    region,
    output,
    model,
    device,
    precision,
    tile,
    threads,
    batch_size,
    alpha,
    ext,
    quality,
    lossless,
    suffix,
    recursive,
    overwrite,
    max_pixels,
    max_out_pixels,
    codec,
    crf,
    pix_fmt,
    frame_range,
    time_range,
    allow_unverified,
    offline,
    quiet,
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
    others go on; exit 1 if any failed.
    """
    from pathlib import Path

    from . import registry
    from .batch import BatchOptions, LazyModel, VideoOptions, plan_batch, raise_for_failures, run_batch
    from .cli_options import size_specs
    from .cli_report import ConsoleReporter

    options = BatchOptions(
        spec=size_specs(scale=scale, size=size, width=width, height=height, region=region),
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
    given = {"device": device, "precision": precision, "tile": tile or None, "threads": threads}
    opts: dict = {k: v for k, v in given.items() if v is not None}
    if batch_size is not None:
        opts["batch_size"] = batch_size
    if allow_unverified:
        opts["allow_unverified"] = True
    if offline:
        opts["offline"] = True
    opts["progress"] = not quiet  # download progress
    registry.check_model_ref(model)  # an unknown model fails now (exit 5), even if every output exists
    from . import distributed

    if distributed.detect_launch().distributed:  # under torchrun or srun (docs/scale-out.md)
        return _upscale_shards(list(inputs), options, model, opts, quiet)
    jobs = plan_batch(list(inputs), options)
    reporter = ConsoleReporter(quiet=quiet)
    try:
        from . import api

        lazy = LazyModel(lambda: api.load_model(model, **opts))
        results = run_batch(jobs, options, lazy, reporter, estimate=lambda i, o: lazy.get().estimate(i, o))
    finally:
        reporter.close()
    raise_for_failures(results, single_input=len({job.input for job in jobs}) == 1)


def _upscale_shards(inputs: list[str], options, model: str, opts: dict, quiet: bool) -> None:
    """`liif upscale` as one of several processes: this rank's share, then rank 0 prints the job's summary."""
    import os
    import signal
    import sys

    from . import api, distributed
    from .batch.shards import run_shards
    from .cli_report import ConsoleReporter, print_job_summary
    from .errors import LiifError

    device = opts.pop("device", "auto")
    rank = distributed.detect_launch().rank
    reporter = ConsoleReporter(quiet=quiet, interactive=False, label=f"rank {rank}: ")  # no live bars: N consoles

    def say_why_not_merged(group) -> None:
        if group.warning and group.is_main:  # said once, by rank 0
            reporter.warn(group.warning)

    def summarize(outcome) -> None:
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
            lambda dev: api.load_model(model, **{**opts, "device": dev}),
            reporter,
            device=device,
            on_group=say_why_not_merged,
            on_outcome=summarize,
        )
    finally:
        reporter.close()
    if outcome.exit_code:
        sys.exit(outcome.exit_code)  # its error line is out already


# --- liif encode / liif render (saved encodings: encode once, render any size or region later) -------


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
    from .errors import OutputError

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

    from . import api, registry
    from .errors import UsageError
    from .imageio import read_image

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
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N", help="Query points per decoder batch.")
@click.option(
    "--quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    metavar="Q",
    help="JPEG and WebP quality, 1-100.",
)
@click.option("--lossless", is_flag=True, help="Write WebP losslessly.")
@click.option(
    "--max-out-pixels", type=PIXELS, default="400M", show_default=True, help="Largest output accepted (0: no limit)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@_engine_options("the encoding's")
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

    from rich.console import Console

    from .cli_options import size_spec
    from .encoding import load_encoding
    from .errors import LiifError, UsageError
    from .imageio import check_output_size, format_for_path, write_image
    from .progress import work_progress

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
    t0 = time.monotonic()
    encoding = load_encoding(src, model=model, **opts)
    out_hw = spec.resolve(encoding.in_hw, max_out_pixels)
    check_output_size(fmt, out_hw[1], out_hw[0])
    console = Console(stderr=True)
    with work_progress(console=console, disable=engine["quiet"] or not console.is_terminal) as progress:
        task = progress.add_task(f"{out_hw[1]}x{out_hw[0]}", total=out_hw[0] * out_hw[1], unit="px")
        result = encoding.render(
            size=(out_hw[1], out_hw[0]),
            region=region,
            progress=lambda done, total: progress.update(task, completed=done, total=max(total, 1)),
        )
    warn = lambda msg: click.echo(f"warning: {msg}", err=True)  # noqa: E731
    write_image(result, out, quality=quality, lossless=lossless, overwrite=overwrite, warn=warn)
    if not engine["quiet"]:
        click.echo(f"wrote {out} ({out_hw[1]}x{out_hw[0]}, {time.monotonic() - t0:.1f} s)", err=True)


# --- liif serve (local web page and HTTP API; the optional 'serve' extra) ---------------------------


@main.command("serve", short_help="A local web page and HTTP API for upscaling and zooming.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@click.option(
    "--model", default="edsr-baseline", show_default=True, metavar="NAME|PATH", help="Model name or .pth path."
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto, cpu, cuda, cuda:N or mps; cuda:0,cuda:1 for one worker each.",
)
@click.option("--precision", default="auto", show_default=True, help="auto, fp32, bf16 or fp16.")
@click.option(
    "--queue",
    "max_waiting",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Jobs that may wait; more get 429.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser once the server listens.")
@handle_errors
def serve_cmd(host, port, model, device, precision, max_waiting, open_browser) -> None:
    """Serve the upscaler as a local web page and an HTTP API (docs at /docs).

    Needs the 'serve' extra: pip install 'liif-cli[serve]'. Ctrl-C stops it.
    """
    from .serve import check_installed

    check_installed()
    from .serve.app import ServeConfig
    from .serve.server import serve

    devices = tuple(d.strip().lower() for d in device.split(",") if d.strip()) or ("auto",)
    config = ServeConfig(model=model, devices=devices, precision=precision.strip().lower(), max_waiting=max_waiting)
    serve(config, host=host, port=port, open_browser=open_browser, echo=lambda line: click.echo(line, err=True))
