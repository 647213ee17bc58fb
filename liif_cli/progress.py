"""The one progress display for long work (upscale, bench, train): percent done, rate and time left.

Upscaling and benchmarking count megapixels per second, training iterations per second. A task says which
with its `unit` field ("px": completed counts output pixels; "frames": video frames, shown as fps; "it":
iterations), or reports the megapixels it
has produced in an `mpx` field when its own steps are files or images.
"""

from __future__ import annotations

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
