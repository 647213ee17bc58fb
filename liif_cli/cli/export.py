"""`liif export`: a model as ONNX graphs (for the onnxruntime backend and other runtimes) or as safetensors."""

from __future__ import annotations

import click

from ..encoders import NORMALIZATION_NAMES
from .app import handle_errors, main


@main.command("export", short_help="Export a model as ONNX graphs or .safetensors weights.")
@click.argument("model", metavar="MODEL")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["onnx", "safetensors"]),
    default="onnx",
    show_default=True,
    help="onnx: a folder of three graphs and manifest.json; safetensors: one weights-only file.",
)
@click.option("-o", "--output", required=True, metavar="PATH", help="The export folder (onnx) or .safetensors file.")
@click.option("--normalization", type=click.Choice(NORMALIZATION_NAMES), help="Override the model's normalization.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--allow-unverified", is_flag=True, help="Use a model whose sha256 is not pinned.")
@click.option("--offline", is_flag=True, help="Never download; use the cache only.")
@handle_errors
def export_cmd(
    model: str,
    fmt: str,
    output: str,
    normalization: str | None,
    overwrite: bool,
    allow_unverified: bool,
    offline: bool,
) -> None:
    """Export MODEL (a registry name or a checkpoint in any layout we load).

    \b
      liif export edsr-baseline -o edsr-onnx/          # encoder, table and query graphs + manifest.json
      liif upscale photo.jpg --scale 4 --backend onnxruntime --model edsr-onnx/
      liif export run/last.pth --format safetensors -o tuned.safetensors

    The ONNX graphs (opset 17, dynamic sizes) and what a runtime computes around them are described in
    docs/onnx.md; examples/onnx_runtime.py runs them with numpy, pillow and onnxruntime alone.
    """
    from .. import api

    out = api.export_model(
        model,
        output,
        format=fmt,
        normalization=normalization,
        overwrite=overwrite,
        allow_unverified=allow_unverified,
        offline=True if offline else None,
        progress=True,
    )
    click.echo(f"wrote {out}", err=True)
