"""Atomic writes: the one way this package puts a file or an unpacked folder in place.

Everything is written under a temporary name beside its destination (same folder, so the final rename is
atomic), then renamed into place; on any failure, Ctrl-C included, the temporary file or folder is removed.
Readers therefore see the old content or the new one, never half a file, and an interrupted run leaves no
litter. Registry downloads, image outputs, training checkpoints, safetensors exports, bench datasets and bench
reports all go through here.

    with atomic_path("out/report.json") as tmp:     # any writer that takes a path
        tmp.write_text(text)
    with atomic_open("last.pth") as fh:             # a file object, fsynced before the rename
        torch.save(obj, fh)
    with atomic_dir("datasets/Set5/HR") as tmp:     # a folder, filled then renamed as a whole
        extract_into(tmp)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".liif-tmp"
"""Every temporary file and folder ends in this, so that stale ones can be recognised and swept."""


class TargetExistsError(FileExistsError):
    """A no-clobber write found its destination taken (it may have appeared while the content was written)."""


def temp_name(path: Path) -> Path:
    """A fresh hidden name beside `path`: `.<name>.<random>.liif-tmp`."""
    return path.with_name(f".{path.name[:60]}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _no_clobber_rename(tmp: Path, path: Path) -> None:
    """Rename, refusing if `path` appeared meanwhile: a hard link fails on an existing name."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise TargetExistsError(path) from None
    except OSError:  # file systems without hard links
        if path.exists():
            raise TargetExistsError(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` for the body to write; rename it into place when the body succeeds.

    The temporary file exists (empty, created exclusively) when the body starts and gets the permissions a new
    file would get under the umask. With `overwrite=False` an existing `path` is never replaced: the rename
    raises TargetExistsError instead (also when the name appeared while the body ran).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            _no_clobber_rename(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """`open(path, mode)` on a temporary file, flushed and fsynced, renamed into place when the body succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `dest` to fill; rename it to `dest` as a whole when the body succeeds.

    If `dest` appeared meanwhile (another process finished first), theirs is kept and ours removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest)
    tmp.mkdir()
    try:
        yield tmp
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sweep(directory: Path) -> None:
    """Remove temporary files and folders a killed process (SIGKILL, power loss) left in `directory`, a day later."""
    import time

    try:
        candidates = list(directory.glob(f".*{TEMP_SUFFIX}"))
    except OSError:
        return
    for item in candidates:
        with contextlib.suppress(OSError):
            if time.time() - item.stat().st_mtime > 86400:
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink()
