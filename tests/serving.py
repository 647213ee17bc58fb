"""How the server tests start `liif serve`, one way each: the app in process, or a real server in a subprocess.

    with TestClient(create_app(serve_config(model_path, images=folder))) as client: ...   # in process
    with running(model_path, log, "--images", str(folder)) as server: httpx.get(f"{server.url}/healthz")

Both run the suite's random-weight model (conftest's `model_path`) on the CPU in fp32, so that their pixels
equal `liif upscale --device cpu --precision fp32`'s. A real server listens on a free port of 127.0.0.1
(`--port 0`): its URL is the one it prints once the model is loaded and it answers. Also here: what several
server test files need beside it (PNG bytes, the system Chromium, the zoom viewer's "tiles settled" test).
Import the web stack's modules only after `pytest.importorskip("fastapi")`: this module imports none itself.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

if TYPE_CHECKING:
    from liif_cli.serve.app import ServeConfig

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
"""The environment of a `liif serve` subprocess: this checkout's package, stderr unbuffered (the log is read live)."""
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")
CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs the system Chromium (apt-get install -y chromium)"
)
TILES_SETTLED = """() => {
    const tiles = [...document.querySelectorAll('#zoom-tiles img')];
    return tiles.length > 0 && tiles.every(t => t.complete && t.naturalWidth > 0)
        && !document.getElementById('zoom-status').textContent.includes('loading');
}"""
"""The page's zoom viewer has drawn every tile it asked for (a `page.wait_for_function` test)."""


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG")
    return buf.getvalue()


def serve_config(model: Path | str, **settings: Any) -> ServeConfig:
    """The ServeConfig of an in-process app: `model` on the CPU in fp32 (unless `devices=` or `load=` say
    otherwise), and the server's `settings` (`images=`, `token=`, `max_out_pixels=`...)."""
    from liif_cli.load_options import LoadOptions
    from liif_cli.serve.app import ServeConfig

    settings.setdefault("devices", ("cpu",))
    settings.setdefault("load", LoadOptions(precision="fp32"))
    return ServeConfig(model=str(model), **settings)


@dataclass
class Server:
    """A `liif serve` subprocess that listens at `url` (`http://127.0.0.1:PORT`); its stderr goes to `log`."""

    proc: subprocess.Popen
    url: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def start(
    model: Path | str,
    log: Path,
    *args: str,
    env: dict | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    timeout: float = 120,
) -> Server:
    """`liif serve --port 0 --model MODEL --device DEVICE --precision PRECISION ARGS...`, once it answers."""
    cmd = [sys.executable, "-m", "liif_cli", "serve", "--port", "0", "--model", str(model)]
    cmd += ["--device", device, "--precision", precision, *args]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env or ENV, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while not (m := URL.search(log.read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            pytest.fail(f"liif serve did not come up:\n{log.read_text()}")
        time.sleep(0.1)
    return Server(proc, m.group(0).rstrip("/"), log)


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    """Ctrl-C, and its exit status once it has stopped (killed after `timeout` seconds)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


@contextmanager
def running(model: Path | str, log: Path, *args: str, **options: Any) -> Iterator[Server]:
    """`start` (its keywords too), and the server stopped afterwards whatever happened (unless a test stopped it)."""
    server = start(model, log, *args, **options)
    try:
        yield server
    finally:
        stop(server.proc)
