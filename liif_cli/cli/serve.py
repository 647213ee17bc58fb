"""`liif serve`: the local web page and HTTP API (the optional 'serve' extra, imported only when it runs)."""

from __future__ import annotations

import click

from .app import handle_errors, main
from .options import backend_option


@main.command("serve", short_help="A local web page and HTTP API for upscaling and zooming.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@click.option(
    "--model", default="edsr-baseline", show_default=True, metavar="NAME|PATH", help="Model name or .pth path."
)
@backend_option
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
def serve_cmd(host, port, model, backend, device, precision, max_waiting, open_browser) -> None:
    """Serve the upscaler as a local web page and an HTTP API (docs at /docs).

    Needs the 'serve' extra: pip install 'liif-cli[serve]'. Ctrl-C stops it.
    """
    from ..serve import check_installed

    check_installed()
    from ..serve.app import ServeConfig
    from ..serve.server import serve

    devices = tuple(d.strip().lower() for d in device.split(",") if d.strip()) or ("auto",)
    config = ServeConfig(
        model=model, devices=devices, precision=precision.strip().lower(), backend=backend, max_waiting=max_waiting
    )
    serve(config, host=host, port=port, open_browser=open_browser, echo=lambda line: click.echo(line, err=True))
