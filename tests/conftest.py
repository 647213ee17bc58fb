"""What the tests share: where the read-only reference material is, the skip for when it is absent, and one
local HTTP server standing in for download hosts and the Hub.

`../shared` beside the checkout (CI lays it out the same way) holds the official weights, the official code's
outputs and the benchmark sets. A clone without it still runs the suite: what needs it is skipped.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# LIIF_SHARED points elsewhere where the checkout travels without its neighbours (the GPU check carries a copy).
SHARED = Path(os.environ.get("LIIF_SHARED") or ROOT.parent / "shared")
OFFICIAL = SHARED / "weights" / "edsr-baseline-liif.pth"  # the official EDSR-baseline-LIIF checkpoint
OFFICIAL_SHA256 = "1cf77e16f33ee17bd04049f497eaea1e06f25585dbb1919e4c7cd1d9d4d23d57"
DATASETS = SHARED / "datasets"

needs_shared = pytest.mark.skipif(
    not OFFICIAL.is_file(), reason="../shared (official weights) is not beside the checkout"
)
needs_datasets = pytest.mark.skipif(
    not (OFFICIAL.is_file() and (DATASETS / "Set5" / "HR").is_dir() and (DATASETS / "Set14" / "HR").is_dir()),
    reason="../shared weights and benchmark sets are not beside the checkout",
)


def fixture_cases() -> list[dict]:
    """The official-output fixtures' cases (../shared/fixtures/manifest.json), or none without ../shared."""
    import json

    manifest = SHARED / "fixtures" / "manifest.json"
    return json.loads(manifest.read_text())["cases"] if manifest.is_file() else []


HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"
"""The commit the server reports for a Hub download asked for by branch name."""


@dataclass
class Server:
    """A local HTTP server's state: what it serves, what it was asked.

    Plain files by URL path. `Range: bytes=N-` is honoured (206) unless the path is in `no_range`. A path in
    `drop` always sends half of what it was asked and hangs up; one in `drop_once` does so on its first request
    only. `delay` pauses each answer (seconds), so that concurrent clients overlap. Paths of the Hub's form
    (`.../resolve/<revision>/<file>`) also get the headers `hf_hub_download` needs, and a missing file gets the
    Hub's "entry not found" answer.
    """

    files: dict[str, bytes] = field(default_factory=dict)  # url path -> body
    drop: set[str] = field(default_factory=set)
    drop_once: set[str] = field(default_factory=set)
    no_range: set[str] = field(default_factory=set)
    delay: float = 0.0
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each request
    url: str = ""

    def add(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.url + path

    def requested(self, text: str) -> bool:
        return any(text in path for _method, path in self.requests)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._respond(body=True)

    def _respond(self, body: bool) -> None:
        state: Server = self.server.state  # type: ignore[attr-defined]
        state.requests.append((self.command, self.path))
        state.ranges.append(self.headers.get("Range"))
        path = self.path.split("?", 1)[0]
        data = state.files.get(path)
        if state.delay:
            import time

            time.sleep(state.delay)
        hub = "/resolve/" in path
        if data is None:
            if not hub:
                self.send_error(404)
                return
            error = b'{"error": "Entry not found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Error-Message", "Entry not found")
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            if body:
                self.wfile.write(error)
            return
        asked = self.headers.get("Range", "")
        start = (
            int(asked[6:-1]) if asked.startswith("bytes=") and asked.endswith("-") and path not in state.no_range else 0
        )
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        if hub:
            revision = path.split("/resolve/")[1].split("/")[0]
            is_commit = len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)
            self.send_header("X-Repo-Commit", revision if is_commit else HUB_COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        drop = path in state.drop or path in state.drop_once
        state.drop_once.discard(path)
        if body:
            self.wfile.write(data[: len(data) // 2] if drop else data)
            self.wfile.flush()
        if drop:
            self.close_connection = True


@pytest.fixture
def http_server() -> Iterator[Server]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def one_line_error(response) -> str:
    """The message of an HTTP error answer of `liif serve`, checked to be one line with no traceback."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` are skipped where torch sees no CUDA device (torch is imported only if one is)."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in marked:
            item.add_marker(skip)
