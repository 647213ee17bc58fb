"""What `liif upscale` shows on the console: live progress on a terminal, one line per file otherwise.

The library's batch runner calls a `Reporter`; this is the CLI's. Progress (percent, MP/s, ETA, per file
and for the batch) is the shared display of `liif_cli.progress`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..batch import FileResult, Job, Reporter


@dataclass
class ConsoleReporter(Reporter):
    """Progress and summary on stderr with rich: live bars on a terminal, one line per file otherwise."""

    console: Any = None
    quiet: bool = False
    interactive: bool | None = None
    label: str = ""  # before the closing count line: "rank 1: " when the process is one of several
    _progress: Any = field(default=None, init=False)
    _files_task: Any = field(default=None, init=False)
    _tiles_task: Any = field(default=None, init=False)
    _total: int = field(default=0, init=False)
    frames_line_every: float = 10.0  # seconds between frame-progress lines when stderr is not a terminal
    _file_t0: float = field(default=0.0, init=False)
    _frames_line_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.console is None:
            from rich.console import Console

            self.console = Console(stderr=True, highlight=False)
        if self.interactive is None:
            self.interactive = bool(self.console.is_terminal)

    def _print(self, text: str, style: str | None = None) -> None:
        target = self._progress.console if self._progress is not None else self.console
        target.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def start(self, jobs: Sequence[Job]) -> None:
        self._total = len(jobs)
        if self.quiet or not self.interactive:
            return
        from ..progress import work_progress

        self._progress = work_progress(console=self.console)
        self._progress.start()
        self._files_task = self._progress.add_task("batch", total=len(jobs), mpx=0.0)
        self._tiles_task = self._progress.add_task("", total=1, visible=False, unit="px")

    def file_start(self, index: int, job: Job) -> None:
        self._file_t0 = self._frames_line_at = time.monotonic()
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.reset(self._tiles_task, description=job.input.name, total=1, visible=False)
        else:
            self._print(f"[{index + 1}/{self._total}] {job.input}")

    def file_sizes(self, in_hw, out_hw) -> None:
        if self._progress is not None:
            desc = f"{in_hw[1]}x{in_hw[0]} → {out_hw[1]}x{out_hw[0]}"
            self._progress.update(self._tiles_task, description=desc, visible=True, sizes=desc)

    def progress(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._tiles_task, completed=done, total=max(total, 1), unit="px")

    def frames(self, done: int, total: int | None) -> None:
        """Frames done / total with fps and ETA: the live bar, or a line every `frames_line_every` seconds."""
        if self._progress is not None:
            task = self._progress.tasks[self._tiles_task]
            sizes = task.fields.get("sizes") or task.description
            self._progress.update(
                self._tiles_task,
                description=f"{sizes}  frame {done}/{total or '?'}",
                completed=done,
                total=max(total or done + 1, 1),
                unit="frames",
                sizes=sizes,
            )
            return
        now = time.monotonic()
        if self.quiet or now - self._frames_line_at < self.frames_line_every:
            return
        self._frames_line_at = now
        fps = done / max(now - self._file_t0, 1e-9)
        eta = f", {(total - done) / fps:.0f} s left" if total and fps > 0 else ""
        self._print(f"  frame {done}/{total or '?'}, {fps:.3g} fps{eta}")

    def file_end(self, result: FileResult) -> None:
        if self._progress is not None:
            done_mpx = self._progress.tasks[self._files_task].fields["mpx"]
            if result.status == "written" and result.out_hw:
                done_mpx += result.out_hw[0] * result.out_hw[1] * (result.frames or 1) / 1e6
            self._progress.update(self._files_task, advance=1, mpx=done_mpx)
            self._progress.update(self._tiles_task, visible=False)
        if self.quiet:
            return
        if result.status == "written":
            size = f"{result.out_hw[1]}x{result.out_hw[0]}" if result.out_hw else ""
            size += f", {result.frames} frames" if result.frames is not None else ""
            self._print(f"  wrote {result.output} ({size}, {result.seconds:.1f} s)")
        elif result.status == "skipped":
            self._print(f"  skipped {result.input}: {result.message}", style="yellow")
        else:
            self._print(f"  failed {result.input}: {result.message}", style="red")

    def warn(self, message: str) -> None:
        self._print(f"warning: {message}", style="yellow")

    def note(self, message: str) -> None:
        if not self.quiet:
            self._print(message)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def finish(self, results: Sequence[FileResult], seconds: float) -> None:
        self.close()
        counts = {s: sum(r.status == s for r in results) for s in ("written", "skipped", "failed")}
        problems = [r for r in results if r.status != "written"]
        if self.quiet:  # -q: only `error:` and `warning:` lines (a single input's error is the CLI's own line)
            for r in results if len(results) > 1 else ():
                if r.status == "failed":
                    text = r.message if r.message.startswith(str(r.input)) else f"{r.input}: {r.message}"
                    self._print(f"error: {' '.join(text.split())}", style="red")
            return
        if problems and len(results) > 1:
            from rich import box
            from rich.table import Table

            table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
            table.add_column("status", no_wrap=True)
            table.add_column("file", overflow="fold")
            table.add_column("reason", overflow="fold")
            for r in problems:
                table.add_row(r.status, str(r.input), r.message, style="red" if r.status == "failed" else "yellow")
            self.console.print(table)
        self.console.print(
            f"{self.label}{counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed in {seconds:.1f} s",
            highlight=False,
            markup=False,
        )


def print_job_summary(console: Any, outcome: Any) -> None:
    """Rank 0's summary of a batch run over several processes (a `batch.shards.ShardOutcome`, merged): what
    each rank wrote, skipped and failed, the totals, and every failed file with its rank and reason."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left")
    table.title = f"{outcome.planned} files over {outcome.world_size} processes"
    for name in ("rank", "written", "skipped", "failed", "output px", "seconds"):
        table.add_column(name, justify="right" if name != "rank" else "left", no_wrap=True)
    total = outcome.total
    rows = [(str(s.rank), s) for s in outcome.summaries] + [("total", total)]
    for label, s in rows:
        failed = str(len(s.failed)) + (" (stopped)" if s.stopped else "")
        style = "red" if s.failed or s.stopped else None
        cells = (label, str(s.written), str(s.skipped), failed, f"{s.out_pixels:,}", f"{s.seconds:.1f}")
        table.add_row(*cells, style=style, end_section=label != "total" and s is outcome.summaries[-1])
    console.print(table)
    for s in outcome.summaries:
        if s.stopped:
            console.print(f"rank {s.rank} stopped: {s.stopped}", style="red", markup=False, highlight=False)
    for name, why in total.failed:
        console.print(f"failed {name}: {why}", style="red", markup=False, highlight=False, soft_wrap=True)
