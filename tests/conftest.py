"""What the tests share: where the read-only reference material is, the skips for when it is absent, real
models with random weights, and one local HTTP server standing in for download hosts, the Hub and a package index.

`../shared` beside the checkout (CI lays it out the same way) holds the official weights, the official code's
outputs and the benchmark sets: they are for parity with the official code and for published numbers only. Every
other test runs on checkpoints that the session builds with this package's own model code (random weights, both
encoders, both checkpoint layouts, a weights-only .safetensors), so a clone without `../shared` still tests all
the behaviour. Tests that need the official weights but nothing else of `../shared` also take them from the
liif cache, where the README's first command puts them, when their sha256 is the pinned one.

`LIIF_REQUIRE_SHARED=1` (set by `.ci/run`) makes a missing `../shared` an error instead of a list of skips.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# LIIF_SHARED points elsewhere where the checkout travels without its neighbours (the GPU check carries a copy).
SHARED = Path(os.environ.get("LIIF_SHARED") or ROOT.parent / "shared")
OFFICIAL = SHARED / "weights" / "edsr-baseline-liif.pth"  # the official EDSR-baseline-LIIF checkpoint
OFFICIAL_SHA256 = "1cf77e16f33ee17bd04049f497eaea1e06f25585dbb1919e4c7cd1d9d4d23d57"
DATASETS = SHARED / "datasets"
FIXTURES = SHARED / "fixtures"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _official_weights() -> Path | None:
    """../shared's official weights, else the liif cache's copy of `edsr-baseline` if its sha256 is the pinned one."""
    if OFFICIAL.is_file():
        return OFFICIAL
    from liif_cli import registry

    cached = registry.cached_path(registry.load_registry(shipped=True)["edsr-baseline"])
    return cached if cached.is_file() and _sha256(cached) == OFFICIAL_SHA256 else None


OFFICIAL_WEIGHTS = _official_weights()
"""The official EDSR-baseline-LIIF weights from ../shared or the verified cache, or None."""

needs_shared = pytest.mark.skipif(
    not (OFFICIAL.is_file() and (FIXTURES / "manifest.json").is_file()),
    reason="needs ../shared/weights/edsr-baseline-liif.pth and ../shared/fixtures beside the checkout",
)
NO_OFFICIAL_WEIGHTS = (
    "needs the official EDSR-baseline weights: neither ../shared/weights nor a verified copy in the liif cache"
)
needs_official_weights = pytest.mark.skipif(OFFICIAL_WEIGHTS is None, reason=NO_OFFICIAL_WEIGHTS)
needs_datasets = pytest.mark.skipif(
    not (OFFICIAL.is_file() and (DATASETS / "Set5" / "HR").is_dir() and (DATASETS / "Set14" / "HR").is_dir()),
    reason="needs ../shared/weights and ../shared/datasets (Set5, Set14) beside the checkout",
)


def pytest_configure(config):
    if os.environ.get("LIIF_REQUIRE_SHARED") and not (
        OFFICIAL.is_file() and (FIXTURES / "manifest.json").is_file() and (DATASETS / "Set5" / "HR").is_dir()
    ):
        raise pytest.UsageError(
            f"LIIF_REQUIRE_SHARED is set but {SHARED} (official weights, fixtures, datasets) is missing or incomplete"
        )


def fixture_cases() -> list[dict]:
    """The official-output fixtures' cases (../shared/fixtures/manifest.json), or none without ../shared."""
    import json

    manifest = FIXTURES / "manifest.json"
    return json.loads(manifest.read_text())["cases"] if manifest.is_file() else []


# --- real models with random weights ----------------------------------------------------------------------

# mmagic's generator key names from the official ones (../shared/NOTES.md's table), written out here rather than
# taken from the package so that the loader's own renames are what the tests check.
_TO_MMAGIC = (
    (r"^encoder\.head\.0\.", "conv_first."),
    (r"^encoder\.body\.16\.", "conv_after_body."),
    (r"^encoder\.body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
    (r"^encoder\.body\.(\d+)\.body\.2\.", r"body.\1.conv2."),
    (r"^encoder\.SFENet1\.", "sfe1."),
    (r"^encoder\.SFENet2\.", "sfe2."),
    (r"^encoder\.RDBs\.(\d+)\.convs\.(\d+)\.conv\.0\.", r"rdbs.\1.layers.\2.conv."),
    (r"^encoder\.RDBs\.(\d+)\.LFF\.", r"rdbs.\1.lff."),
    (r"^encoder\.GFF\.", "gff."),
    (r"^imnet\.", "imnet."),
)


def to_mmagic(state_dict: dict) -> dict:
    """An official-layout state dict under mmagic's `generator.*` names (MeanShift buffers dropped, as mmagic has none)."""
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _TO_MMAGIC:
            new, n = re.subn(pattern, repl, key)
            if n:
                out["generator." + new] = value
                break
        else:
            assert key.startswith(("encoder.sub_mean", "encoder.add_mean")), key
    return out


OUTPUT_GAIN = {"edsr-baseline": 8.0, "rdn": 30.0}
"""How much a random model's last layer is scaled up: at PyTorch's default initialisation the output barely
moves off grey (std 0.015 for EDSR-baseline, 0.004 for RDN on a photo); scaled, it spans tens of 8-bit levels, so
tests comparing written pixels compare real differences."""


def random_liif(encoder: str, seed: int = 0):
    """A LIIF network built by the package's own code, random weights (seeded), in eval mode."""
    import torch

    from liif_cli.models import build_liif

    torch.manual_seed(seed)
    net = build_liif(encoder).eval()
    with torch.no_grad():
        net.imnet.layers[-1].weight.mul_(OUTPUT_GAIN[encoder])
    return net


class Checkpoints:
    """Random-weight checkpoint files, written on first use into one session folder. The same weights back
    each layout of an encoder: `edsr` / `mmagic_edsr` / `safetensors` hold one network, `rdn` / `mmagic_rdn`
    another. mmagic files use its legacy (non-zip) serialization, as the published files do."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._nets: dict = {}

    def net(self, encoder: str):
        if encoder not in self._nets:
            self._nets[encoder] = random_liif(encoder, seed=23)
        return self._nets[encoder]

    def _official(self, encoder: str, name: str) -> Path:
        from liif_cli.models import save_official

        path = self.folder / name
        save_official(self.net(encoder), encoder, path)
        return path

    def _mmagic(self, encoder: str, name: str) -> Path:
        import torch

        path = self.folder / name
        sd = to_mmagic(self.net(encoder).state_dict())
        torch.save({"meta": {"epoch": 1}, "state_dict": sd}, path, _use_new_zipfile_serialization=False)
        return path

    @cached_property
    def edsr(self) -> Path:
        """EDSR-baseline-LIIF, official layout (loads with the official 'half' normalization)."""
        return self._official("edsr-baseline", "edsr-baseline-random.pth")

    @cached_property
    def rdn(self) -> Path:
        """RDN-LIIF, official layout."""
        return self._official("rdn", "rdn-random.pth")

    @cached_property
    def mmagic_edsr(self) -> Path:
        """The `edsr` weights under mmagic's names (loads with mmagic EDSR's DIV2K-mean normalization)."""
        return self._mmagic("edsr-baseline", "liif_edsr_random_mmagic.pth")

    @cached_property
    def mmagic_rdn(self) -> Path:
        """The `rdn` weights under mmagic's names (mmagic RDN uses 'half', as the official release does)."""
        return self._mmagic("rdn", "liif_rdn_random_mmagic.pth")

    @cached_property
    def safetensors(self) -> Path:
        """The `edsr` weights as a weights-only .safetensors export, normalization 'half' in its metadata."""
        from liif_cli.models import Normalization
        from liif_cli.train import save_safetensors

        path = self.folder / "edsr-baseline-random.safetensors"
        save_safetensors(self.net("edsr-baseline"), "edsr-baseline", Normalization.named("half"), path)
        return path


CHECKPOINTS = Checkpoints(Path(tempfile.mkdtemp(prefix="liif-test-models-")))  # removed when the session ends
MODEL_PATH = CHECKPOINTS.folder / "edsr-baseline-random.pth"
"""Where the `model_path` fixture writes the random EDSR-baseline: a module whose constants name it (CLI argument
lists) marks itself `pytest.mark.usefixtures("model_path")` so the file exists when its tests run."""


def pytest_unconfigure(config):
    shutil.rmtree(CHECKPOINTS.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def checkpoints() -> Checkpoints:
    return CHECKPOINTS


@pytest.fixture(scope="session")
def model_path() -> Path:
    """A real EDSR-baseline-LIIF checkpoint (random weights, official layout): the model of behaviour tests."""
    path = CHECKPOINTS.edsr
    assert path == MODEL_PATH
    return path


@pytest.fixture(scope="session")
def official_weights() -> Path:
    """The official EDSR-baseline weights (../shared, else the verified cache); skips without them."""
    if OFFICIAL_WEIGHTS is None:
        pytest.skip(NO_OFFICIAL_WEIGHTS)
    return OFFICIAL_WEIGHTS


HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"
"""The commit the server reports for a Hub download asked for by branch name."""


@dataclass
class Server:
    """A local HTTP server's state: what it serves, what it was asked.

    Plain files by URL path (with a Content-Type where `add` was given one: a PEP 503 index page needs
    `text/html`). `Range: bytes=N-` is honoured (206) unless the path is in `no_range`. A path in
    `drop` always sends half of what it was asked and hangs up; one in `drop_once` does so on its first request
    only. `delay` pauses each answer (seconds), so that concurrent clients overlap. Paths of the Hub's form
    (`.../resolve/<revision>/<file>`) also get the headers `hf_hub_download` needs, and a missing file gets the
    Hub's "entry not found" answer.
    """

    files: dict[str, bytes] = field(default_factory=dict)  # url path -> body
    types: dict[str, str] = field(default_factory=dict)  # url path -> Content-Type, where one is needed
    drop: set[str] = field(default_factory=set)
    drop_once: set[str] = field(default_factory=set)
    no_range: set[str] = field(default_factory=set)
    delay: float = 0.0
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each request
    url: str = ""

    def add(self, path: str, body: bytes, content_type: str | None = None) -> str:
        self.files[path] = body
        if content_type:
            self.types[path] = content_type
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
        if path in state.types:
            self.send_header("Content-Type", state.types[path])
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
