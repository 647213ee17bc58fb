"""Where an output may go: never over an input, never left half-written.

`InputGuard` knows the input files (by resolved path and by inode, so a link or another spelling of the
same file is caught); `atomic_target` checks a destination against it and against existing files, then
yields a temporary file that is renamed into place only on success. Apart from encoding because the
video and animation writers put their own files through the same checks. `check_destination` is the check made
before any work (planning a batch, `liif encode`/`render`) that the folder can take the output at all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..atomic import TargetExistsError, atomic_path
from ..errors import OutputError, first_line


class InputGuard:
    """The set of input files, to refuse writing over any of them (by resolved path and by inode)."""

    def __init__(self, paths: Iterable[str | os.PathLike] = ()):
        self._paths: set[str] = set()
        self._inodes: set[tuple[int, int]] = set()
        for p in paths:
            self.add(p)

    def add(self, path: str | os.PathLike) -> None:
        p = Path(path)
        self._paths.add(os.path.normcase(str(p.resolve())))
        with contextlib.suppress(OSError):
            st = p.stat()
            self._inodes.add((st.st_dev, st.st_ino))

    def covers(self, path: str | os.PathLike) -> bool:
        p = Path(path)
        if os.path.normcase(str(p.resolve())) in self._paths:
            return True
        try:
            st = p.stat()
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self._inodes


def exists(path: str | os.PathLike) -> OutputError:
    """The error for an output that exists (the `overwrite` parameter would replace it)."""
    return OutputError(f"{path}: already exists", param="overwrite", hint="use {overwrite} to replace it")


def check_destination(path: str | os.PathLike) -> None:
    """OutputError (exit 4) now, before any work, when `path` could not be written: a parent that is a file, or
    a folder that cannot be created or written in. Writers create missing folders; this finds the nearest one
    that exists and asks the operating system whether a file can be made there."""
    path = Path(os.path.abspath(path))
    folder = path.parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "is a broken link"
        raise OutputError(f"{path}: cannot write there, {folder} {what}")
    if not os.access(folder, os.W_OK | os.X_OK):
        verb = "write in" if folder == path.parent else "create folders in"
        raise OutputError(f"{path}: cannot {verb} {folder} (permission denied or read-only)")


@contextlib.contextmanager
def atomic_target(
    path: Path, *, overwrite: bool = False, protect: InputGuard | Iterable[str | os.PathLike] | None = None
) -> Iterator[Path]:
    """Yield a temporary file in `path`'s folder to write into; on success it is renamed to `path`.

    The checks come first (an input in `protect` is always refused, an existing file unless `overwrite`).
    On any exception or interrupt the temporary file is removed, so no partial output is ever left; an
    OSError while writing becomes an OutputError.
    """
    path = Path(path)
    guard = protect if isinstance(protect, InputGuard) else InputGuard(protect or ())
    if guard.covers(path):
        raise OutputError(f"{path}: refusing to write over an input file")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise exists(path)
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:  # no-clobber unless overwrite
            yield tmp
    except TargetExistsError:
        raise exists(path) from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or first_line(exc)})") from None
