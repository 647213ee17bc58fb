"""Errors a user can act on, each with the process exit code the CLI documents.

Everything raised on purpose derives from `LiifError`; the CLI prints its message as one line and exits
with its `exit_code`. Anything else reaching the CLI is a bug and is reported as such.
"""

from __future__ import annotations


class LiifError(Exception):
    exit_code = 1


class UsageError(LiifError):
    """Bad option values (scale, size, precision...)."""

    exit_code = 2


class InputError(LiifError):
    """Missing, unreadable, corrupt, unsupported or oversized input image."""

    exit_code = 3


class OutputError(LiifError):
    """Output exists (without --overwrite), would overwrite an input, or cannot be written."""

    exit_code = 4


class ModelError(LiifError):
    """Unknown model name, or a file that is not a loadable LIIF checkpoint."""

    exit_code = 5


class DownloadError(ModelError):
    """Weights or data could not be fetched: network failure, every source failed."""

    exit_code = 6


class ChecksumError(DownloadError):
    """Downloaded bytes do not match the registry's sha256; nothing is kept."""

    exit_code = 7


class OfflineError(DownloadError):
    """Offline mode is on and the file is not in the cache."""

    exit_code = 8


class EncodingError(InputError):
    """A .liif encoding that cannot be used: missing, corrupt, truncated, or from a newer format version."""

    exit_code = 9


class EncodingModelError(EncodingError):
    """A .liif encoding made with other weights than the model asked to render it."""

    exit_code = 10


class ListenError(LiifError):
    """`liif serve` cannot listen: the port is in use, or the address is not one of this machine's."""

    exit_code = 11


class BatchError(LiifError):
    """Some files of a batch failed; the others were written."""

    exit_code = 1


class LiifWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it as `warning: ...`)."""


INTERRUPTED_EXIT_CODE = 130


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line for a message: its first line, whitespace collapsed, else its type name.

    Library errors quote foreign exceptions (Pillow, zipfile, torch.load, urllib) through this, so that a
    multi-line message or a traceback-sized text never breaks the CLI's one-line error.
    """
    text = str(exc).strip()
    line = " ".join(text.splitlines()[0].split()) if text else ""
    return line[:limit] if line else type(exc).__name__
