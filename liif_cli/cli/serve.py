"""`liif serve`: the local web page and HTTP API (the optional 'serve' extra, imported only when it runs)."""

from __future__ import annotations

import click

from .app import handle_errors, main
from .options import BYTES, load_options, max_out_pixels_option, max_pixels_option


@main.command("serve", short_help="A local web page and HTTP API for upscaling and zooming.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
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
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser once the server listens.")
@handle_errors
def serve_cmd(host, port, model, load, max_waiting, max_pixels, max_out_pixels, max_upload, open_browser) -> None:
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
        precision=load.precision or "auto",
        allow_unverified=load.allow_unverified,
        offline=load.offline,
        load=load,
        max_waiting=max_waiting,
        max_pixels=max_pixels,
        max_out_pixels=max_out_pixels,
        max_upload_bytes=max_upload,
    )
    serve(config, host=host, port=port, open_browser=open_browser, echo=lambda line: click.echo(line, err=True))
