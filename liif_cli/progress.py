"""The one progress display for long work (upscale, bench, train): percent done, rate and time left.

Upscaling and benchmarking count megapixels per second, training iterations per second. A task says which
with its `unit` field ("px": completed counts output pixels; "frames": video frames, shown as fps; "it":
iterations), or reports the megapixels it
has produced in an `mpx` field when its own steps are files or images.

One display is live at a time: whoever starts one registers it (`showing`), and everything else that wants to
say something meanwhile (a download's bar, a log line) goes through it (`active`, `say`), so that no line is
printed under a live bar and no second bar freezes on screen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """`1.23 MP/s` (pixels, or megapixels reported in `mpx`) or `4.5 it/s`; blank until there is a rate."""

    def render(self, task: Any) -> Text:
        fields = task.fields
        if "mpx" in fields and task.elapsed:
            rate = fields["mpx"] / task.elapsed if fields["mpx"] else None
            return Text(f"{rate:.3g} MP/s" if rate else "", style="progress.data.speed")
        speed = task.speed
        if not speed:
            return Text("")
        if fields.get("unit") == "px":
            return Text(f"{speed / 1e6:.3g} MP/s", style="progress.data.speed")
        if fields.get("unit") == "bytes":
            return Text(f"{speed / 1e6:.3g} MB/s", style="progress.data.speed")
        if fields.get("unit") == "frames":
            return Text(f"{speed:.3g} fps", style="progress.data.speed")
        return Text(f"{speed:.3g} it/s", style="progress.data.speed")


def work_progress(
    *extra: ProgressColumn, console: Any = None, transient: bool = True, disable: bool = False
) -> Progress:
    """A rich Progress with the shared columns: description, bar, percent, rate, ETA, then `extra`."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        *extra,
        console=console,
        transient=transient,
        disable=disable,
    )


_ACTIVE: list[Progress] = []
_SINKS: list[Any] = []  # callables taking a line: whoever speaks a format of its own (JSON lines) meanwhile


@contextmanager
def showing(progress: Progress) -> Iterator[Progress]:
    """Register `progress` (already started) as the live display while the body runs."""
    _ACTIVE.append(progress)
    try:
        yield progress
    finally:
        _ACTIVE.remove(progress)


def active() -> Progress | None:
    """The live display on screen now, if any (the innermost one)."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def lines_to(sink: Any) -> Iterator[None]:
    """While the body runs, `say` hands every line to `sink(text)` (e.g. `--progress json` wraps it in JSON)."""
    _SINKS.append(sink)
    try:
        yield
    finally:
        _SINKS.remove(sink)


def say(text: str, style: str | None = None) -> bool:
    """Print a line above the live display (or hand it to the sink of `lines_to`); False when there is
    neither (the caller prints it plainly)."""
    if _SINKS:
        _SINKS[-1](text)
        return True
    live = active()
    if live is None:
        return False
    live.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)
    return True
