"""The `liif` click group and what every command shares: one-line errors with documented exit codes,
and the process set-up (warnings, logging, allocator) that the application, not the library, decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import click

P = ParamSpec("P")
R = TypeVar("R")


class _OneLineErrors(click.Group):
    """Click parses every option; a bad value is one line, `error: ...`, with exit 2 like any usage error."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        import sys

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            from ..errors import INTERRUPTED_EXIT_CODE

            click.echo("interrupted", err=True)
            sys.exit(INTERRUPTED_EXIT_CODE)
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            click.echo(f"error: {message}{_help_hint(exc, message)}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def _help_hint(exc: click.ClickException, message: str) -> str:
    """Where to look when something is missing or unknown: the command's --help."""
    missing = isinstance(exc, click.MissingParameter | click.NoSuchOption) or message.lower().startswith("missing")
    ctx = getattr(exc, "ctx", None)
    if not missing or ctx is None:
        return ""
    return f" (see '{ctx.command_path} --help')"


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="liif-cli", prog_name="liif")
def main() -> None:
    """Arbitrary-scale image super-resolution with LIIF."""
    _prepare_process()


def _prepare_process() -> None:
    """What the application (not the library) decides before a command runs.

    The library warns with `warnings` (LiifWarning) and informs with `logging`; here both become one line
    on stderr. PyTorch's CPU allocator is asked for transparent huge pages (read once, before its first
    allocation: fresh 4 KiB pages fault one by one, which made a new 64 MiB tensor 3x slower to fill).
    """
    import os
    import warnings

    from ..errors import LiifWarning

    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    warnings.simplefilter("always", LiifWarning)
    debug = bool(os.environ.get("LIIF_DEBUG"))
    warnings.showwarning = _show_warning
    log = logging.getLogger("liif_cli")
    if not any(isinstance(h, _EchoHandler) for h in log.handlers):
        log.addHandler(_EchoHandler())
    log.setLevel(logging.DEBUG if debug else logging.INFO)


def _show_warning(message: Warning | str, *_args: object, **_kwargs: object) -> None:
    from ..progress import say

    if not say(f"warning: {message}", style="yellow"):
        click.echo(f"warning: {message}", err=True)


class _EchoHandler(logging.Handler):
    """Log records as bare lines on the current stderr (click's, so that test runners capture them)."""

    def emit(self, record: logging.LogRecord) -> None:
        from ..progress import say

        if not say(self.format(record)):  # above a live bar, else a plain line
            click.echo(self.format(record), err=True)


# --- errors: one line on stderr and a documented exit code -------------------------------------------


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator for command bodies: errors become one line on stderr and the documented exit code.

    LiifError -> `error: <message>` with its parameters named as flags (`--scale`), exit `exc.exit_code`; KeyboardInterrupt -> `interrupted`, exit 130;
    anything else -> `internal error: ...` and a hint, exit 1 (the traceback only with LIIF_DEBUG=1).
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import os
        import sys
        import traceback

        from ..errors import INTERRUPTED_EXIT_CODE, LiifError, flag_name

        def one_line(exc: BaseException) -> str:
            text = exc.render(flag_name) if isinstance(exc, LiifError) else str(exc)  # parameters as flags
            return " ".join(text.split()) or type(exc).__name__

        try:
            return fn(*args, **kwargs)
        except LiifError as exc:
            click.echo(f"error: {one_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(INTERRUPTED_EXIT_CODE)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("LIIF_DEBUG"):
                traceback.print_exc()
            click.echo(f"internal error: {type(exc).__name__}: {one_line(exc)}", err=True)
            click.echo(
                "this is a bug in liif; please report it with the command you ran (LIIF_DEBUG=1 shows the traceback)",
                err=True,
            )
            sys.exit(1)

    return wrapper
