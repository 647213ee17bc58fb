"""`liif train` and `liif train export`: the official training recipe as flags (torchrun for several
processes). Every option defaults to None so that a --config file can set it; the help shows the real default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..encoders import ENCODER_NAMES, NORMALIZATION_NAMES
from .app import handle_errors, main
from .options import load_options

if TYPE_CHECKING:
    from ..load_options import LoadOptions

TRAIN_HAS_NOT = ("backend", "precision", "tile", "batch_size", "allow_unverified", "offline")
"""Of the shared model-loading block, train takes --device and --threads: it trains in --amp, its --batch-size
is the training batch, and --init reads the registry as `liif models` does."""


def _dflt(name: str) -> str:
    """'  [default: X]' for help texts: the options default to None so that a --config file can set them."""
    from ..train.config import TrainConfig

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
@load_options(without=TRAIN_HAS_NOT)
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
def train_cmd(
    ctx: click.Context, config_file: str | None, train_quiet: bool, load: LoadOptions, **options: Any
) -> None:
    """Train LIIF from scratch, or fine-tune with --init, with the official recipe as defaults.

    Every setting can also come from --config FILE (TOML); flags override it. Under
    `torchrun --nproc_per_node N -m liif_cli train ...` the same command trains with
    DistributedDataParallel; only rank 0 logs and writes checkpoints.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..train import resolve_config, train
    from ..train.config import parse_list

    if options.get("lr_milestones") is not None:
        options["lr_milestones"] = parse_list(options["lr_milestones"], int, "lr_milestones")
    if options.get("val_scales") is not None:
        options["val_scales"] = parse_list(options["val_scales"], int, "val_scales")
    options["batch_size"] = options.pop("batch_size", None)
    for name in ("device", "threads"):  # the shared block's flags; absent ones leave the config file's value
        given = ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
        options[name] = getattr(load, name) if given else None
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


@train_cmd.command("export", short_help="Same as 'liif export --format safetensors'.")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--normalization", type=click.Choice(NORMALIZATION_NAMES), help="Override the stored normalization.")
@handle_errors
def train_export_cmd(checkpoint: str, output: str, normalization: str | None) -> None:
    """Write CHECKPOINT's weights (no optimizer) to OUTPUT.safetensors for sharing: the older spelling of
    `liif export CHECKPOINT --format safetensors -o OUTPUT --overwrite`, kept for scripts."""
    from .. import api

    api.export_model(checkpoint, output, format="safetensors", normalization=normalization, overwrite=True)
    click.echo(f"wrote {output}", err=True)
