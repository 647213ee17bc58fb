"""Named LIIF checkpoints: where their bytes come from, what they hash to, and a cache that holds no bad file.

`weights.toml` (shipped in the package) lists each model with its expected sha256 and an ordered list of
sources (see `sources.py`). A download goes to a temporary file next to its final name, is hashed as it
streams, and is renamed into place only once the hash matches; any failure, Ctrl-C included, removes it.

Concurrent processes asking for the same uncached model download it once: the check and the download run under
a file lock (`<file>.lock`, the `filelock` package), and whoever waited finds the file verified in the cache.

A verified file gets a small marker beside it (`<file>.verified`, JSON) recording its sha256, size and
mtime, so later runs need not re-hash it; a file whose size or mtime changed is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import tomllib
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import atomic
from .encoders import CHECKPOINT_FORMATS, ENCODER_NAMES, NORMALIZATION_NAMES
from .errors import ChecksumError, DownloadError, LiifWarning, ModelError, OfflineError, first_line
from .sources import Source, SourceError, source_from_toml

if TYPE_CHECKING:
    from filelock import FileLock

DEFAULT_MODEL = "edsr-baseline"
ENCODERS = ENCODER_NAMES
FORMATS = CHECKPOINT_FORMATS
NORMALIZATIONS = NORMALIZATION_NAMES
MAX_UNKNOWN_SIZE = 4 << 30  # a source that streams more than this for a model of unknown size is not a model
_SETTLE_NS = 2_000_000_000  # file timestamps can be this coarse (FAT); a marker this fresh is not trusted
_TRUE = {"1", "true", "yes", "on"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    encoder: str  # "edsr-baseline" | "rdn"
    format: str  # "official" | "mmagic"
    normalization: str  # "half" | "div2k-mean", for models.load_checkpoint(path, normalization=...)
    sha256: str | None  # the full hash, when known
    sha256_prefix: str | None  # only the start of the hash is published (mmagic file names)
    size: int | None
    sources: tuple[Source, ...]

    @property
    def pinned(self) -> bool:
        """Whether the bytes can be checked at all (a full hash or a published prefix)."""
        return bool(self.sha256 or self.sha256_prefix)

    def accepts(self, digest: str) -> bool:
        if self.sha256:
            return digest == self.sha256
        if self.sha256_prefix:
            return digest.startswith(self.sha256_prefix)
        return True

    def hash_note(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.sha256_prefix:
            return f"sha256 prefix {self.sha256_prefix}"
        return "sha256 unknown"

    @property
    def published_names(self) -> frozenset[str]:
        """The file names its sources publish it under (how a downloaded copy is recognised by name)."""
        return frozenset(s.file_name for s in self.sources)

    @property
    def file_name(self) -> str:
        return f"{self.name}-{(self.sha256 or '')[:16] or self.sha256_prefix or 'unpinned'}.pth"


# --- the registry file --------------------------------------------------------------------------------

_ENTRY_KEYS = {"description", "encoder", "format", "normalization", "sha256", "sha256_prefix", "size", "sources"}


def _parse_entry(where: str, name: str, raw: Any) -> ModelEntry:
    if not isinstance(raw, Mapping):
        raise ModelError(f"{where}: not a table")
    if extra := raw.keys() - _ENTRY_KEYS:
        raise ModelError(f"{where}: unknown keys {', '.join(sorted(extra))}")
    for key, allowed in (("encoder", ENCODERS), ("format", FORMATS), ("normalization", NORMALIZATIONS)):
        if raw.get(key) not in allowed:
            raise ModelError(f"{where}: {key} must be one of {', '.join(allowed)}, got {raw.get(key)!r}")
    sha256, prefix, size = raw.get("sha256"), raw.get("sha256_prefix"), raw.get("size")
    if sha256 is not None and not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
        raise ModelError(f"{where}: sha256 must be 64 lowercase hex digits")
    if prefix is not None and not (isinstance(prefix, str) and re.fullmatch(r"[0-9a-f]{8,63}", prefix)):
        raise ModelError(f"{where}: sha256_prefix must be 8 to 63 lowercase hex digits")
    if sha256 and prefix:
        raise ModelError(f"{where}: give sha256 or sha256_prefix, not both")
    if size is not None and not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
        raise ModelError(f"{where}: size must be a positive integer (bytes)")
    raw_sources = raw.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise ModelError(f"{where}: needs at least one [[...sources]] entry")
    sources = tuple(source_from_toml(f"{where}.sources[{i}]", s) for i, s in enumerate(raw_sources))
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ModelError(f"{where}: description must be a string")
    return ModelEntry(
        name, description, raw["encoder"], raw["format"], raw["normalization"], sha256, prefix, size, sources
    )


def parse_registry(data: Mapping[str, Any], origin: str = "registry") -> dict[str, ModelEntry]:
    """Validate a registry in weights.toml's shape (`{"models": {name: {...}}}`); errors name the bad field."""
    models = data.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ModelError(f"{origin}: no [models.<name>] tables")
    entries = {}
    for name, raw in models.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
            raise ModelError(f"{origin}: model name {name!r} must be lowercase letters, digits, '.', '_' or '-'")
        entries[name] = _parse_entry(f"{origin}: models.{name}", name, raw)
    return entries


def load_registry(path: str | Path | None = None, *, shipped: bool = False) -> dict[str, ModelEntry]:
    """The named models, from `path`, else $LIIF_REGISTRY (a replacement file, e.g. for a mirror), else the
    weights.toml shipped in the package (always that one with `shipped=True`)."""
    path = None if shipped else path or os.environ.get("LIIF_REGISTRY")
    try:
        if path:
            text, origin = Path(path).expanduser().read_text(encoding="utf-8"), str(path)
        else:
            text, origin = resources.files("liif_cli").joinpath("weights.toml").read_text("utf-8"), "weights.toml"
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read model registry {path or 'weights.toml'}: {first_line(exc)}") from None
    return parse_registry(data, origin)


def shipped_registry_path() -> Path:
    """Where the weights.toml shipped in the package is (as a file path, for messages and `liif env`)."""
    return Path(str(resources.files("liif_cli").joinpath("weights.toml")))


def _registry(registry: Mapping[str, ModelEntry] | str | Path | None) -> Mapping[str, ModelEntry]:
    return registry if isinstance(registry, Mapping) else load_registry(registry)


def _known(entries: Mapping[str, ModelEntry]) -> str:
    return f"known models: {', '.join(entries)}"


def get_entry(name: str, registry: Mapping[str, ModelEntry] | str | Path | None = None) -> ModelEntry:
    entries = _registry(registry)
    if name not in entries:
        raise ModelError(f"unknown model {name!r} ({_known(entries)})")
    return entries[name]


# --- the cache ----------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """$LIIF_CACHE_DIR, else the platform's user cache folder for "liif" (platformdirs: $XDG_CACHE_HOME/liif or
    ~/.cache/liif on Linux, ~/Library/Caches/liif on macOS, %LOCALAPPDATA%\\liif\\Cache on Windows).
    Not created until something is written."""
    if os.environ.get("LIIF_CACHE_DIR"):
        return Path(os.environ["LIIF_CACHE_DIR"]).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("liif", appauthor=False)


def cache_size() -> int:
    """Bytes under the cache folder (0 when it does not exist)."""
    total = 0
    for dirpath, _dirs, files in os.walk(cache_dir()):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def cached_path(entry: ModelEntry) -> Path:
    """Where the entry's file lives once downloaded (it may not exist)."""
    return cache_dir() / "weights" / entry.file_name


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _write_marker(path: Path, digest: str, origin: str | None = None) -> None:
    st = path.stat()
    old = _read_marker(path)
    if origin is None:  # a re-check keeps the record of where the bytes came from
        origin = old.get("source") if old.get("sha256") == digest else None
    record = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "checked_ns": time.time_ns()}
    atomic.write_text(_marker(path), json.dumps({**record, "source": origin}))


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _trusted_digest(path: Path, st: os.stat_result) -> str | None:
    """The marker's sha256 if it still describes the file. A marker written within a timestamp tick of the
    file's last change proves nothing (a same-size rewrite in that tick keeps the mtime), so it is not used."""
    record = _read_marker(path)
    try:
        if (record["size"], record["mtime_ns"]) == (st.st_size, st.st_mtime_ns):
            if record["checked_ns"] - st.st_mtime_ns > _SETTLE_NS:
                return str(record["sha256"])
    except (KeyError, TypeError):
        pass
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class CacheStatus:
    entry: ModelEntry
    path: Path
    cached: bool
    size: int | None  # on disk when cached, else the registry's
    sha256: str | None  # of the cached file
    state: str  # "verified", "prefix-verified", "unpinned", "mismatch", "missing"


def cache_status(entry: ModelEntry, *, rehash: bool = False) -> CacheStatus:
    """What `liif models` shows. Cheap unless a file changed (or `rehash`); writes a marker after hashing."""
    path = cached_path(entry)
    try:
        st = path.stat()
    except FileNotFoundError:
        return CacheStatus(entry, path, False, entry.size, None, "missing")
    trusted = None if rehash else _trusted_digest(path, st)
    hashed = trusted is None
    digest = sha256_file(path) if trusted is None else trusted
    recorded = _read_marker(path).get("sha256")
    if not entry.accepts(digest) or (not entry.pinned and recorded not in (None, digest)):
        return CacheStatus(entry, path, True, st.st_size, digest, "mismatch")
    if hashed:
        _write_marker(path, digest)
    state = "verified" if entry.sha256 else "prefix-verified" if entry.sha256_prefix else "unpinned"
    return CacheStatus(entry, path, True, st.st_size, digest, state)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    _marker(path).unlink(missing_ok=True)


def _lock(path: Path) -> FileLock:
    """The lock that serialises checking and downloading `path` across processes. Lock files live in their own
    folder (`<cache>/locks`) and are never deleted: removing one another process waits on breaks the lock."""
    from filelock import FileLock

    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(locks / (path.name + ".lock"))


def remove(entry: ModelEntry) -> Path | None:
    """Delete the cached file of `entry` (and its marker); returns the path removed, or None if not cached."""
    path = cached_path(entry)
    if not path.exists():
        return None
    with _lock(path):
        _remove(path)
    return path


# --- downloading --------------------------------------------------------------------------------------


@contextmanager
def _progress_bar(label: str, total: int | None, enabled: bool) -> Iterator[Any]:
    """A download bar: a task in the live display when one is on screen (the batch's), else a display of its
    own, registered as the live one so that messages meanwhile print above it. Only at a terminal."""
    if not enabled:
        yield lambda n: None
        return
    from . import progress

    live = progress.active()
    if live is not None:
        task = live.add_task(f"downloading {label}", total=total, unit="bytes")
        try:
            yield lambda n: live.advance(task, n)
        finally:
            live.remove_task(task)
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:  # a log: a line before and one after, no bar
        size = f" ({total / 1e6:.1f} MB)" if total else ""
        console.print(f"downloading {label}{size}", markup=False)
        done, t0 = [0], time.monotonic()
        yield lambda n: done.__setitem__(0, done[0] + n)
        rate = done[0] / 1e6 / max(time.monotonic() - t0, 1e-9)
        console.print(f"downloaded {label} ({done[0] / 1e6:.1f} MB, {rate:.3g} MB/s)", markup=False)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar, progress.showing(bar):
        task = bar.add_task(f"downloading {label}", total=total)
        yield lambda n: bar.advance(task, n)


def _install(entry: ModelEntry, source: Source, dest: Path, *, offline: bool, progress: bool) -> str:
    """Stream one source into `dest` through a temp file in the same directory; returns the sha256."""
    h, got = hashlib.sha256(), 0
    limit = entry.size or MAX_UNKNOWN_SIZE
    with atomic.atomic_open(dest, "wb") as out, source.open(offline=offline, progress=progress) as stream:
        if progress and not stream.network:
            log.info("fetching %s from %s", entry.name, source.describe())
        with _progress_bar(entry.name, stream.total or entry.size, progress and stream.network) as advance:
            for chunk in stream.chunks:
                got += len(chunk)
                if got > limit:
                    raise ChecksumError(f"{source.describe()}: more than the expected {limit:,} bytes")
                h.update(chunk)
                out.write(chunk)
                advance(len(chunk))
        digest = h.hexdigest()
        if not entry.accepts(digest):  # raised inside: the temporary file goes, nothing is renamed
            raise ChecksumError(f"{source.describe()}: got sha256 {digest}, expected {entry.hash_note()}")
    return digest


def offline_reason(offline: bool | None) -> str | None:
    """Why downloads are off (the `offline` parameter, $LIIF_OFFLINE, $HF_HUB_OFFLINE), or None when they are on.
    The parameter is written `{offline}`: an error quoting the reason names it (param="offline"), so that each
    face names it its own way (`--offline` in the CLI)."""
    if offline is not None:
        return "{offline}" if offline else None
    for var in ("LIIF_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]}"
    return None


def _download(entry: ModelEntry, dest: Path, *, offline_reason: str | None, progress: bool) -> str:
    atomic.sweep(dest.parent)  # leftovers of a killed process (SIGKILL, power loss)
    reasons, mismatch = [], False
    for source in entry.sources:
        if offline_reason and not source.available_offline:
            continue
        try:
            digest = _install(entry, source, dest, offline=bool(offline_reason), progress=progress)
        except ChecksumError as exc:
            mismatch = True
            reasons.append(str(exc))
        except (SourceError, OSError) as exc:
            reasons.append(f"{source.describe()}: {first_line(exc)}")
        else:
            _write_marker(dest, digest, source.describe())
            if entry.sha256_prefix and progress:
                log.info("%s: matches published prefix; full sha256 %s", entry.name, digest)
            return digest
    if offline_reason and not mismatch:
        tried = f" (tried {'; '.join(reasons)})" if reasons else ""
        raise OfflineError(
            f"offline mode is on ({offline_reason}) and model {entry.name!r} is not cached: {dest} is missing; "
            f"run 'liif models download {entry.name}' while online{tried}",
            param="offline",
        )
    error = ChecksumError if mismatch else DownloadError
    raise error(f"could not fetch model {entry.name!r}, every source failed: {'; '.join(reasons)}")


def fetch(
    entry: ModelEntry, *, allow_unverified: bool = False, offline: bool | None = None, progress: bool = True
) -> Path:
    """The verified local file for a registry entry, downloading it if it is not cached (or is corrupt)."""
    if not entry.pinned and not allow_unverified:
        raise ModelError(
            f"model {entry.name!r} has no known sha256, so its download cannot be verified",
            param="allow_unverified",
            hint="allow it with {allow_unverified} to use it anyway",
        )
    status = cache_status(entry)
    digest = status.sha256
    if status.state in ("missing", "mismatch"):
        with _lock(status.path):  # another process may be downloading it: wait, then look again
            status = cache_status(entry)
            digest = status.sha256
            if status.state == "mismatch":
                warnings.warn(f"cached {status.path} failed its sha256 check; removed", LiifWarning, stacklevel=2)
                _remove(status.path)
            if status.state in ("missing", "mismatch"):
                digest = _download(entry, status.path, offline_reason=offline_reason(offline), progress=progress)
    if not entry.pinned:
        warnings.warn(f"using unverified {entry.name} ({status.path}), sha256 {digest}", LiifWarning, stacklevel=2)
    return status.path


def resolve_weights(
    name_or_path: str | Path,
    *,
    allow_unverified: bool = False,
    offline: bool | None = None,
    progress: bool = True,
    registry: Mapping[str, ModelEntry] | str | Path | None = None,
) -> Path:
    """An existing file path is returned as it is; a registry name becomes its verified cached file.

    `offline=None` follows $LIIF_OFFLINE / $HF_HUB_OFFLINE. `registry` replaces the shipped weights.toml
    (a path, or entries from `parse_registry`).
    """
    ref = check_model_ref(name_or_path, registry)
    if isinstance(ref, Path):
        return ref
    return fetch(ref, allow_unverified=allow_unverified, offline=offline, progress=progress)


def check_model_ref(
    name_or_path: str | Path, registry: Mapping[str, ModelEntry] | str | Path | None = None
) -> ModelEntry | Path:
    """What `--model` names, without downloading or loading anything: an existing file, an ONNX export folder
    (`liif export --format onnx`), or a registry entry.

    Raises ModelError (exit 5) for anything else, so a command can refuse a bad model before other work.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file() or (path / "manifest.json").is_file():  # a checkpoint, or an ONNX export folder
        return path
    entries = _registry(registry)
    if isinstance(name_or_path, str) and name_or_path in entries:
        return entries[name_or_path]
    if path.exists():
        raise ModelError(f"{path} is not a checkpoint file")
    raise ModelError(f"unknown model {str(name_or_path)!r} and no such file ({_known(entries)}; a path must exist)")
