"""`liif serve`: the local web page and HTTP API (the optional 'serve' extra, imported only when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .app import handle_errors, main
from .options import BYTES, load_options, max_out_pixels_option, max_pixels_option

if TYPE_CHECKING:
    from ..load_options import LoadOptions


@main.command("serve", short_help="A local web page and HTTP API for upscaling and zooming.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every one; off loopback needs --token or --no-auth).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port (0: a free one, printed)."
)
@click.option(
    "--model", default="edsr-baseline", show_default=True, metavar="NAME|PATH", help="Model name or .pth path."
)
@load_options()
@click.option(
    "--queue",
    "max_waiting",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Jobs that may wait; more get 429.",
)
@max_pixels_option
@max_out_pixels_option
@click.option(
    "--max-upload", type=BYTES, default="100M", show_default=True, help="Largest upload accepted, in bytes (100M, 1G)."
)
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path),
    default=None,
    metavar="DIR",
    help="Serve this folder's images over the IIIF Image API at /iiif/3/{name}/ (read-only).",
)
@click.option(
    "--token",
    envvar="LIIF_SERVE_TOKEN",
    default=None,
    metavar="TOKEN",
    help="Every request but /healthz must send 'Authorization: Bearer TOKEN' (env LIIF_SERVE_TOKEN). "
    "Required off loopback unless --no-auth.",
)
@click.option("--no-auth", is_flag=True, help="Serve off loopback without a token, on purpose.")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let pages from ORIGIN (e.g. https://viewer.example) call the API; repeatable. /iiif/ is always '*'.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: every line on stderr is one JSON object (access log, errors, warnings).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser once the server listens.")
@handle_errors
def serve_cmd(
    host: str,
    port: int,
    model: str,
    load: LoadOptions,
    max_waiting: int,
    max_pixels: int | None,
    max_out_pixels: int | None,
    max_upload: int,
    images: Path | None,
    token: str | None,
    no_auth: bool,
    cors_origins: tuple[str, ...],
    log_format: str,
    open_browser: bool,
) -> None:
    """Serve the upscaler as a local web page and an HTTP API (docs at /docs).

    Needs the 'serve' extra: pip install 'liif-cli[serve]'. Ctrl-C stops it.
    """
    from ..serve import check_installed

    check_installed()
    from ..serve.app import ServeConfig
    from ..serve.server import serve

    devices = tuple(d for d in load.device.split(",") if d) or ("auto",)
    config = ServeConfig(
        model=model,
        devices=devices,
        load=load,
        max_waiting=max_waiting,
        max_pixels=max_pixels,
        max_out_pixels=max_out_pixels,
        max_upload_bytes=max_upload,
        images=images,
        token=token,
        no_auth=no_auth,
        cors_origins=tuple(cors_origins),
    )

    def echo(line: str) -> None:
        click.echo(line, err=True)

    serve(config, host=host, port=port, open_browser=open_browser, echo=echo, log_format=log_format)
