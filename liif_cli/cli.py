"""The `liif` command line: parse, call the library, report. No logic here that the Python API lacks."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="liif")
def main() -> None:
    """Arbitrary-scale image super-resolution with LIIF."""


# --- commands -------------------------------------------------------------------------------------


# --- liif models (registry and download cache) ------------------------------------------------------


class _ReportLiifErrors:
    """One `error: ...` line on stderr and the error's exit code, instead of a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        from .errors import INTERRUPTED_EXIT_CODE, LiifError

        if isinstance(exc, LiifError):
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            raise SystemExit(INTERRUPTED_EXIT_CODE) from None
        return False


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


@main.group("models", invoke_without_command=True)
@click.pass_context
def models_cmd(ctx: click.Context) -> None:
    """List the named models (weights.toml) and whether each is cached and verified."""
    if ctx.invoked_subcommand is not None:
        return
    from rich import box
    from rich.console import Console
    from rich.filesize import decimal
    from rich.table import Table

    from . import registry

    with _ReportLiifErrors():
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
def models_download_cmd(name: str, allow_unverified: bool, quiet: bool) -> None:
    """Download model NAME into the cache and verify it (nothing to do if it is cached and intact)."""
    from . import registry

    with _ReportLiifErrors():
        entry = registry.get_entry(name)
        path = registry.fetch(entry, allow_unverified=allow_unverified, progress=not quiet)
        click.echo(f"{name}: {path} ({entry.hash_note()})")


@models_cmd.command("path")
@click.argument("name")
@_allow_unverified
@_quiet
def models_path_cmd(name: str, allow_unverified: bool, quiet: bool) -> None:
    """Print the local file of model NAME, downloading it first if needed."""
    from . import registry

    with _ReportLiifErrors():
        entry = registry.get_entry(name)
        click.echo(registry.fetch(entry, allow_unverified=allow_unverified, progress=not quiet))


@models_cmd.command("verify")
@click.argument("name", required=False)
def models_verify_cmd(name: str | None) -> None:
    """Re-hash the cached file of NAME (default: every cached model); exit 7 if one does not match."""
    from . import registry
    from .errors import ChecksumError

    with _ReportLiifErrors():
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
            raise ChecksumError(
                f"{', '.join(bad)} failed verification; 'liif models download NAME' fetches a fresh copy"
            )


# --- liif bench (benchmark sets, protocols, published figures) --------------------------------------


@main.command("bench")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    type=click.Choice(["set5", "set14", "b100", "urban100", "div2k"], case_sensitive=False),
    help="Benchmark set (repeatable). div2k is the DIV2K validation set.",
)
@click.option(
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
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "fp16", "auto"]),
    default="fp32",
    show_default=True,
    help="Engine precision; fp32 is the reference math (the others trade accuracy for speed).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all cores).")
@click.option("-q", "--quiet", "bench_quiet", is_flag=True, help="No progress bar.")
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
    bench_quiet,
) -> None:
    """Score models on standard SR benchmark sets under the mmagic or the paper protocol.

    Prints PSNR / SSIM per model and scale beside the published figures, plus throughput and wall time.
    Sets are fetched into the cache on first use unless --data-dir is given.
    """
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .bench import parse_scales, run_bench
    from .bench.report import render, write_csv, write_json
    from .errors import INTERRUPTED_EXIT_CODE, LiifError

    err = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[item]}"),
        TimeElapsedColumn(),
        console=err,
        disable=bench_quiet,
        transient=True,
    )
    tasks: list = []

    def hook(event: str, info: dict) -> None:
        if event == "start":
            tasks.append(progress.add_task(info["description"], total=info["total"], item=""))
        elif event == "advance":
            progress.update(tasks[-1], advance=1, item=f"x{info['scale']} {info['image']}")
        elif event == "end":
            progress.remove_task(tasks[-1])

    try:
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
            )
        to_stdout = "-" in (str(json_path), str(csv_path))
        render(result, err if to_stdout else Console())
        if json_path is not None:
            write_json(result, json_path)
        if csv_path is not None:
            write_csv(result, csv_path)
    except LiifError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(INTERRUPTED_EXIT_CODE)


# --- liif train (train and fine-tune; torchrun for several processes) --------------------------------


def _train_default(name: str) -> str:
    from .train.config import TrainConfig

    value = getattr(TrainConfig(), name)
    return ",".join(f"{v:g}" for v in value) if isinstance(value, list) else str(value)


@main.group("train", invoke_without_command=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of settings (flags win).")
@click.option("--data", type=click.Path(file_okay=False), help="Folder of HR training images (or with an HR/ folder).")
@click.option("--val", type=click.Path(file_okay=False), help="Validation folder: HR images, or HR/ + LR_bicubic/X{s}/.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (checkpoints, log.jsonl, config.toml).")
@click.option("--encoder", type=click.Choice(["edsr-baseline", "rdn"]), help="Encoder when training from scratch.")
@click.option("--init", help="Registry name or checkpoint to fine-tune from (keeps its normalization).")
@click.option("--normalization", type=click.Choice(["half", "div2k-mean"]), help="Override the input normalization.")
@click.option(
    "--resume",
    is_flag=False,
    flag_value="auto",
    default=None,
    help="Continue a run: a checkpoint (or run dir); bare --resume continues OUT/last.pth when present.",
)
@click.option("--overwrite", is_flag=True, default=None, help="Start afresh in an OUT that holds a run.")
@click.option("--epochs", type=click.IntRange(min=1), show_default=_train_default("epochs"), help="Epochs to train.")
@click.option(
    "--iters-per-epoch",
    type=click.IntRange(min=1),
    show_default=_train_default("iters_per_epoch"),
    help="Iterations (optimizer steps of one global batch) per epoch.",
)
@click.option(
    "--batch-size",
    "--batch",
    type=click.IntRange(min=1),
    show_default=_train_default("batch_size"),
    help="Global batch size, split over processes.",
)
@click.option("--inp-size", type=click.IntRange(min=1), show_default=_train_default("inp_size"), help="LR patch side.")
@click.option("--scale-min", type=float, show_default=_train_default("scale_min"), help="Smallest training scale.")
@click.option("--scale-max", type=float, show_default=_train_default("scale_max"), help="Largest training scale.")
@click.option(
    "--sample-q", type=click.IntRange(min=1), show_default=_train_default("sample_q"), help="HR queries per sample."
)
@click.option("--augment/--no-augment", default=None, help="Random flips and transpose.  [default: augment]")
@click.option("--lr", type=float, show_default=_train_default("lr"), help="Adam learning rate.")
@click.option(
    "--lr-milestones", show_default=_train_default("lr_milestones"), help="Epochs after which lr is multiplied by gamma."
)
@click.option("--lr-gamma", type=float, show_default=_train_default("lr_gamma"), help="Learning-rate decay factor.")
@click.option(
    "--workers", type=click.IntRange(min=0), show_default=_train_default("workers"), help="DataLoader workers per process."
)
@click.option("--seed", type=int, show_default=_train_default("seed"), help="Seed for weights and data.")
@click.option("--device", show_default=_train_default("device"), help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--amp", type=click.Choice(["off", "bf16", "fp16"]), show_default=_train_default("amp"), help="Mixed precision."
)
@click.option(
    "--save-every", type=click.IntRange(min=0), show_default=_train_default("save_every"), help="last.pth every N epochs."
)
@click.option(
    "--keep-every",
    type=click.IntRange(min=0),
    show_default=_train_default("keep_every"),
    help="Keep epoch-N.pth every N epochs (0 never).",
)
@click.option(
    "--val-every", type=click.IntRange(min=0), show_default=_train_default("val_every"), help="Validate every N epochs."
)
@click.option("--val-scales", show_default=_train_default("val_scales"), help="Comma-separated validation scales.")
@click.option(
    "--val-protocol",
    type=click.Choice(["benchmark", "div2k"]),
    show_default=_train_default("val_protocol"),
    help="benchmark: Y PSNR, shave s; div2k: RGB PSNR, shave s+6.",
)
@click.option("--val-max-images", type=click.IntRange(min=0), help="Validate on the first N images only.")
@click.option(
    "--log-every", type=click.IntRange(min=1), show_default=_train_default("log_every"), help="Log every N iterations."
)
@click.option("--export", type=click.Path(dir_okay=False), help="Also write the final weights as .safetensors.")
@click.option("--debug-param-hash", is_flag=True, default=None, help="Log every rank's parameter hash each epoch.")
@click.option("-q", "--quiet", "train_quiet", is_flag=True, help="No progress bar.")
@click.pass_context
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

    with _ReportLiifErrors():
        if options.get("lr_milestones") is not None:
            options["lr_milestones"] = parse_list(options["lr_milestones"], int, "--lr-milestones")
        if options.get("val_scales") is not None:
            options["val_scales"] = parse_list(options["val_scales"], float, "--val-scales")
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


@train_cmd.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--normalization", type=click.Choice(["half", "div2k-mean"]), help="Override the stored normalization.")
def train_export_cmd(checkpoint: str, output: str, normalization: str | None) -> None:
    """Write CHECKPOINT's weights (no optimizer) to OUTPUT.safetensors for sharing."""
    from .train import export_safetensors

    with _ReportLiifErrors():
        loaded = export_safetensors(checkpoint, output, normalization=normalization)
        click.echo(f"{output}: {loaded.encoder} weights, normalization sub={loaded.normalization.sub}", err=True)
