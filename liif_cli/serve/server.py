"""Run the app under uvicorn: the socket bound first, logging set up, the URL printed, Ctrl-C a clean shutdown.

    serve(config, host="127.0.0.1", port=0, log_format="json")

The socket is bound before the model loads, so a port in use or an address that is not this machine's is
one `ListenError` line (exit 11) at once; the URL printed is the bound one (`--port 0` shows the port the
system chose). Off loopback the server refuses to start unless a token is set or `no_auth` says so
(`check_exposure`). `log_format="json"` makes every line of stderr one JSON object: access records, errors
(with their traceback as a field), Python warnings and uvicorn's own messages. Errors name the options they are
about as parameters (`param="token"`); the operator reads them as `liif serve`'s flags.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

from ..errors import ListenError, UsageError, flag_name
from .app import ServeConfig, create_app

LOCAL_HOSTS = ("localhost",)
LOG_FORMATS = ("text", "json")


def is_loopback(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None, no_auth: bool) -> None:
    """Off loopback, a token or an explicit `no_auth` is required (a UsageError otherwise)."""
    if token is not None and not token.strip():
        raise UsageError("{token} / LIIF_SERVE_TOKEN is empty", param="token")
    if token and no_auth:
        raise UsageError("{token} and {no_auth} contradict each other; give one", param=("token", "no_auth"))
    if not is_loopback(host) and not token and not no_auth:
        raise UsageError(
            f"{{host}} {host} is reachable from other machines: give {{token}} TOKEN (or LIIF_SERVE_TOKEN) so that "
            "every request must carry it, or {no_auth} to serve anyone who can connect",
            param=("host", "token", "no_auth"),
        )


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message; an access record's fields at the top
    level; a traceback as the `exc` field (one line of JSON, newlines escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            obj.update(access)
        else:
            obj["message"] = record.getMessage()
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, default=str)


def configure_logging(log_format: str = "text") -> logging.Handler:
    """`liif.serve.*` and uvicorn's records (the access log among them) to stderr, one line each, in one
    format; in `json` also Python warnings, so that nothing else reaches stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    names = ["liif.serve", "uvicorn", "uvicorn.error", "uvicorn.access"]
    names += ["py.warnings"] if log_format == "json" else []
    for name in names:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger("liif.serve").setLevel(logging.INFO)
    if log_format == "json":
        logging.captureWarnings(True)
    return handler


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; a ListenError (one line, exit 11) when that is impossible."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ListenError(f"cannot listen on {host}:{port}: not an address of this machine ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        import errno

        why = {
            errno.EADDRINUSE: "the port is in use (another server?)",
            errno.EADDRNOTAVAIL: "not an address of this machine",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        hint = "pick another with {port}, or {port} 0" if exc.errno == errno.EADDRINUSE else None
        raise ListenError(f"cannot listen on {host}:{port}: {why}", param="port", hint=hint) from None
    sock.set_inheritable(True)
    return sock


def serve(
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    open_browser: bool = False,
    echo: Callable[[str], object] = print,
    log_format: str = "text",
) -> None:
    """Bind, load the model, print the URL, and block until Ctrl-C (or SIGTERM); in-flight requests finish first.

    With `log_format="json"` the start-up errors (a busy port...) and the end of a Ctrl-C are JSON records
    too, and the exit status is the one the CLI documents (the error's code; 130 after Ctrl-C)."""
    if log_format not in LOG_FORMATS:
        raise UsageError(
            f"{{log_format}} must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}", param="log_format"
        )
    if log_format == "text":
        return _serve(config, host, port, open_browser, echo, log_format)
    from ..errors import INTERRUPTED_EXIT_CODE, LiifError

    configure_logging(log_format)
    log = logging.getLogger("liif.serve")
    try:
        _serve(config, host, port, open_browser, echo, log_format)
    except LiifError as exc:
        log.error("error: %s", " ".join(exc.render(flag_name).split()))  # as the CLI says it, as JSON
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        log.info("interrupted: stopped")
        raise SystemExit(INTERRUPTED_EXIT_CODE) from None


def _serve(
    config: ServeConfig, host: str, port: int, open_browser: bool, echo: Callable[[str], object], log_format: str
) -> None:
    import uvicorn

    check_exposure(host, config.token, config.no_auth)
    sock = bind(host, port)
    try:
        configure_logging(log_format)
        app = create_app(config)  # loads the model(s): a bad name or device fails before anyone connects
    except BaseException:
        sock.close()
        raise
    bound = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else (f"[{host}]" if ":" in host else host)
    url = f"http://{shown}:{bound}/"
    say = logging.getLogger("liif.serve").info if log_format == "json" else echo
    if not is_loopback(host):
        how = "with a token" if config.token else "WITHOUT authentication (--no-auth)"
        say(f"warning: listening on {host}:{bound}, reachable from other machines, {how}")

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            """Ctrl-C: stop the renders too, so that every open request gets its answer (503) at once."""
            app.state.jobs.cancel_all()
            super().handle_exit(sig, frame)

    server = Server(
        uvicorn.Config(
            app,
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=10,
            log_config=None,
            proxy_headers=True,
            forwarded_allow_ips=config.forwarded_allow_ips,
        )
    )

    if open_browser:
        import threading
        import webbrowser

        def open_when_up() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                webbrowser.open(url)

        threading.Thread(target=open_when_up, daemon=True).start()
    say(f"liif serve: {url} (model {config.model}; API docs at {url}docs; Ctrl-C stops)")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
