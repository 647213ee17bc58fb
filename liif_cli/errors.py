"""Errors a user can act on, each with the process exit code the CLI documents.

Everything raised on purpose derives from `LiifError`; the CLI prints its message as one line and exits
with its `exit_code`. Anything else reaching the CLI is a bug and is reported as such.

An error about a value names the parameter it came from (`param="scale"`) and writes it in its text as a
placeholder, `{scale}`; an advice that only helps who can change that parameter goes in `hint`. Each face
names parameters its own way through `render(name)`: the CLI as flags (`--scale`), the server as its form or
query fields (and drops hints about its own settings); `str()` is the library's text, which speaks of the
parameters as plain words (`scale must be ...`).

    raise UsageError("{scale} must be a number, got 'x'", param="scale")
    raise InputError("input is 20.0 MP, over the limit of 10.0 MP", param="max_pixels", hint="raise it with {max_pixels}")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Namer = Callable[[str], "str | None"]
"""A face's name for a parameter (`--max-pixels`, `'width'`), or None where its user cannot change it."""


def plain_name(param: str) -> str:
    """The library's words for a parameter: `max_pixels` -> `max pixels`."""
    return param.replace("_", " ")


def flag_name(param: str) -> str:
    """The CLI's flag for a parameter: `max_pixels` -> `--max-pixels`."""
    return "--" + param.replace("_", "-")


class LiifError(Exception):
    exit_code = 1

    def __init__(self, message: str = "", *, param: str | Sequence[str] | None = None, hint: str | None = None):
        super().__init__(message)
        self.params: tuple[str, ...] = (param,) if isinstance(param, str) else tuple(param or ())
        self.hint = hint

    @property
    def param(self) -> str | None:
        """The (first) parameter the error is about, or None."""
        return self.params[0] if self.params else None

    def render(self, name: Namer = plain_name) -> str:
        """The message with each `{param}` named by the face; the hint is added only when the face names
        every parameter it speaks of (whoever reads it can change them)."""

        def fill(text: str, names: dict[str, str | None]) -> str:
            pattern = "|".join(re.escape(p) for p in self.params)
            if not pattern:
                return text
            return re.sub(r"\{(" + pattern + r")\}", lambda m: names[m.group(1)] or plain_name(m.group(1)), text)

        names = {p: name(p) for p in self.params}
        text = fill(str(self.args[0]) if self.args else "", names)
        if self.hint:
            used = [p for p in self.params if "{" + p + "}" in self.hint]
            if all(names[p] for p in used):
                text += f" ({fill(self.hint, names)})"
        return text

    def __str__(self) -> str:
        return self.render()

    def as_kind(self, kind: type[LiifError]) -> LiifError:
        """The same error (text, parameters, hint) as another class: e.g. a writer's OutputError as the
        UsageError of an option value."""
        return kind(str(self.args[0]) if self.args else "", param=self.params, hint=self.hint)


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
