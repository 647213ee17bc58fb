"""Run the app under uvicorn: logging set up, the URL printed, Ctrl-C a clean shutdown."""

from __future__ import annotations

import logging
import sys

from .app import ServeConfig, create_app

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def configure_logging() -> None:
    """`liif.serve.*` records (the JSON access log among them) go to stderr, one line each."""
    logger = logging.getLogger("liif.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def serve(
    config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000, open_browser: bool = False, echo=print
) -> None:
    """Load the model, listen, and block until Ctrl-C (or SIGTERM); in-flight requests finish first."""
    import uvicorn

    configure_logging()
    app = create_app(config)  # loads the model(s): a bad name or device fails before we listen
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}/"
    if host not in LOCAL_HOSTS:
        echo(f"warning: listening on {host}: anyone who can reach this machine can use the server")

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            """Ctrl-C: stop the renders too, so that every open request gets its answer (503) at once."""
            app.state.jobs.cancel_all()
            super().handle_exit(sig, frame)

    server = Server(
        uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning", timeout_graceful_shutdown=10)
    )

    if open_browser:
        import threading
        import webbrowser

        def open_when_up() -> None:
            import time

            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                webbrowser.open(url)

        threading.Thread(target=open_when_up, daemon=True).start()
    echo(f"liif serve: {url} (model {config.model}; API docs at {url}docs; Ctrl-C stops)")
    server.run()
    if not server.started:
        from ..errors import LiifError

        raise LiifError(f"could not listen on {host}:{port} (in use, or not an address of this machine?)")
