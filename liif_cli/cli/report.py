"""What `liif upscale` and `liif render` show while they work, in one of the `--progress` modes.

- `bar`: live bars on the terminal (rich): a one-file run shows one bar (its name and sizes); a batch adds a
  bar labelled with the current file's name and "3/9".
- `plain`: lines for a log or a wrapper: `[3/9] FILE`, then `  42%, 1.2 MP/s, 12 s left` at most once a second
  (see `PLAIN_MIN_S`), then `  wrote OUT (...)`.
- `json`: one JSON object per line on stderr, for programs that wrap the CLI (schema in `JSON_FIELDS`).
- `none`: nothing but warnings and errors (`-q`). `auto` is `bar` at a terminal, else `plain`.

The library's batch runner calls a `Reporter`; this is the CLI's. Rates and ETAs are those of the shared
display of `liif_cli.progress`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from ..batch import FileResult, Job, Reporter
from ..errors import flag_name

PROGRESS_MODES = ("auto", "bar", "plain", "json", "none")
JSON_FIELDS = ("event", "file", "index", "total", "done", "rate", "eta", "output")
"""`--progress json`: every line is an object with these keys (null where they do not apply).

event: "start" (total = files), "file" (a file begins; index from 1 of total), "progress" (done = fraction
of the current file, 0-1; rate = MP/s, or fps for a video; eta = seconds left for this file), "written",
"skipped" or "failed" (output; a "message" key says why for the last two), "warning" (a "message" key), and
last "end" (done = files written; output = the last file written, or null; "written", "skipped" and
"failed" keys count them)."""

PLAIN_MIN_S = 1.0
"""Plain and JSON modes: at most one progress line a second. The engine reports after every decoder block
(milliseconds to a second of work), so a line follows at most about a second later; a single encoder tile
that takes longer is silent meanwhile."""


def resolve_mode(mode: str | None, quiet: bool, console: Any) -> str:
    """The effective mode: `-q` wins (none), `auto` follows the terminal."""
    if quiet:
        return "none"
    if mode in (None, "auto"):
        return "bar" if console.is_terminal else "plain"
    return mode


@dataclass
class ConsoleReporter(Reporter):
    """Progress and summary on stderr in one `--progress` mode (see the module docstring)."""

    console: Any = None
    quiet: bool = False
    interactive: bool | None = None  # False: never live bars (several processes share a console)
    label: str = ""  # before the closing count line: "rank 1: " when the process is one of several
    mode: str | None = None
    aliases: dict = field(default_factory=dict)  # path -> what to call it ("stdin", "stdout")
    _progress: Any = field(default=None, init=False)
    _showing: Any = field(default=None, init=False)
    _files_task: Any = field(default=None, init=False)
    _tiles_task: Any = field(default=None, init=False)
    _total: int = field(default=0, init=False)
    _index: int = field(default=0, init=False)
    _name: str = field(default="", init=False)
    _file_t0: float = field(default=0.0, init=False)
    _line_at: float = field(default=0.0, init=False)
    _last_output: Any = field(default=None, init=False)
    _header: str | None = field(default=None, init=False)  # plain mode: "[3/9] FILE", printed with its first news

    def __post_init__(self) -> None:
        if self.console is None:
            from rich.console import Console

            self.console = Console(stderr=True, highlight=False)
        self.mode = resolve_mode(self.mode, self.quiet, self.console)
        if self.mode == "bar" and self.interactive is False:
            self.mode = "plain"
        self.quiet = self.mode == "none"
        self.interactive = self.mode == "bar"

    # --- output ---

    @overload
    def _show(self, path: Path) -> str: ...
    @overload
    def _show(self, path: Path | None) -> str | None: ...
    def _show(self, path: Path | None) -> str | None:
        return None if path is None else self.aliases.get(path, str(path))

    def _print(self, text: str, style: str | None = None) -> None:
        if self._header is not None:
            header, self._header = self._header, None
            self._print(header)
        target = self._progress.console if self._progress is not None else self.console
        target.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def _json(self, event: str, **values: Any) -> None:
        record = dict.fromkeys(JSON_FIELDS)
        record.update(event=event, **values)
        sys.stderr.write(json.dumps(record) + "\n")
        sys.stderr.flush()

    # --- the Reporter protocol ---

    def _json_line(self, text: str) -> None:
        """A log line or a warning said meanwhile (`progress.say`), as an event: stderr stays JSON lines."""
        if text.startswith("warning: "):
            self._json("warning", file=self._name or None, message=text[len("warning: ") :])
        else:
            self._json("note", file=self._name or None, message=text)

    def start(self, jobs: Sequence[Job]) -> None:
        self._total = len(jobs)
        if self.mode == "json":
            from ..progress import lines_to

            self._showing = lines_to(self._json_line)
            self._showing.__enter__()
            self._json("start", total=self._total)
        if self.mode != "bar":
            return
        from ..progress import showing, work_progress

        self._progress = work_progress(console=self.console)
        self._progress.start()
        self._showing = showing(self._progress)
        self._showing.__enter__()
        if self._total > 1:
            self._files_task = self._progress.add_task("", total=len(jobs), mpx=0.0)
        self._tiles_task = self._progress.add_task("", total=1, visible=False, unit="px")

    def file_start(self, index: int, job: Job) -> None:
        self._file_t0 = self._line_at = time.monotonic()
        self._index, self._name = index + 1, self._show(job.input)
        if self.mode == "json":
            self._json("file", file=self._name, index=self._index, total=self._total, done=0.0)
        elif self.mode == "plain":
            # said with the file's first news: a one-file run that fails says so once, in its error line
            self._header = f"[{self._index}/{self._total}] {self._name}"
        elif self._progress is not None:
            if self._files_task is not None:
                self._progress.update(self._files_task, description=f"{self._index}/{self._total} {job.input.name}")
            self._progress.reset(self._tiles_task, description=self._name.rsplit("/", 1)[-1], total=1, visible=False)

    def file_sizes(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
        if self._progress is not None:
            desc = f"{in_hw[1]}x{in_hw[0]} → {out_hw[1]}x{out_hw[0]}"
            if self._files_task is None:  # one file: its one bar says which
                desc = f"{self._name.rsplit('/', 1)[-1]} {desc}"
            self._progress.update(self._tiles_task, description=desc, visible=True, sizes=desc)

    def _line_due(self, finished: bool) -> bool:
        now = time.monotonic()
        if finished or now - self._line_at < PLAIN_MIN_S:
            return False
        self._line_at = now
        return True

    def _rate_eta(self, done: float, total: float, per: float) -> tuple[float, float | None]:
        elapsed = max(time.monotonic() - self._file_t0, 1e-9)
        rate = done / per / elapsed
        eta = (total - done) / (done / elapsed) if done > 0 and total else None
        return rate, eta

    def progress(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._tiles_task, completed=done, total=max(total, 1), unit="px")
            return
        if self.mode not in ("plain", "json") or not self._line_due(done >= total):
            return
        rate, eta = self._rate_eta(done, total, 1e6)
        fraction = done / max(total, 1)
        if self.mode == "json":
            self._json(
                "progress", file=self._name, index=self._index, total=self._total, done=round(fraction, 4),
                rate=round(rate, 4), eta=None if eta is None else round(eta, 1),
            )  # fmt: skip
        else:
            left = f", {eta:.0f} s left" if eta is not None else ""
            self._print(f"  {fraction:.0%}, {rate:.3g} MP/s{left}")

    def frames(self, done: int, total: int | None) -> None:
        """Frames done / total with fps and ETA: the live bar, or a line (at most 1/s, at least every 5 s)."""
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
        if self.mode not in ("plain", "json") or not self._line_due(total is not None and done >= total):
            return
        fps, eta = self._rate_eta(done, total or 0, 1.0)
        if self.mode == "json":
            fraction = round(done / total, 4) if total else None
            self._json(
                "progress", file=self._name, index=self._index, total=self._total, done=fraction,
                rate=round(fps, 3), eta=None if eta is None else round(eta, 1), frame=done,
            )  # fmt: skip
        else:
            left = f", {eta:.0f} s left" if eta is not None else ""
            self._print(f"  frame {done}/{total or '?'}, {fps:.3g} fps{left}")

    def file_end(self, result: FileResult) -> None:
        if self._progress is not None:
            if self._files_task is not None:
                done_mpx = self._progress.tasks[self._files_task].fields["mpx"]
                if result.status == "written" and result.out_hw:
                    done_mpx += result.out_hw[0] * result.out_hw[1] * (result.frames or 1) / 1e6
                self._progress.update(self._files_task, advance=1, mpx=done_mpx)
            self._progress.update(self._tiles_task, visible=False)
        if result.status == "written":
            self._last_output = self._show(result.output)
        if self.mode == "json":
            output = self._show(result.output)
            extra = {"message": result.describe(flag_name)} if result.status != "written" else {}
            self._json(
                result.status, file=self._show(result.input), index=self._index, total=self._total, output=output,
                done=1.0 if result.status == "written" else None, **extra,
            )  # fmt: skip
            return
        if self.quiet:
            return
        if result.status == "written":
            size = f"{result.out_hw[1]}x{result.out_hw[0]}" if result.out_hw else ""
            size += f", {result.frames} frames" if result.frames is not None else ""
            self._print(f"  wrote {self._show(result.output)} ({size}, {result.seconds:.1f} s)")
        elif result.status == "skipped":
            self._print(f"  skipped {self._show(result.input)}: {result.describe(flag_name)}", style="yellow")
        elif self._total > 1:  # a one-file run says it once, in the error line
            self._print(f"  failed {self._show(result.input)}: {result.describe(flag_name)}", style="red")
        self._header = None

    def warn(self, message: str) -> None:
        if self.mode == "json":
            self._json("warning", file=self._name or None, message=message)
            return
        self._print(f"warning: {message}", style="yellow")

    def note(self, message: str) -> None:
        if self.mode == "json":
            self._json("note", file=self._name or None, message=message)
        elif not self.quiet:
            self._print(message)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._showing is not None:
            self._showing.__exit__(None, None, None)
            self._showing = None

    def finish(self, results: Sequence[FileResult], seconds: float) -> None:
        self.close()
        self._header = None
        counts = {s: sum(r.status == s for r in results) for s in ("written", "skipped", "failed")}
        if self.mode == "json":
            output = str(self._last_output) if self._last_output is not None else None
            self._json(
                "end", total=len(results), done=counts["written"], output=output, seconds=round(seconds, 3), **counts
            )
            return
        problems = [r for r in results if r.status != "written"]
        if self.quiet:  # -q: only `error:` and `warning:` lines (a single input's error is the CLI's own line)
            for r in results if len(results) > 1 else ():
                if r.status == "failed":
                    said = r.describe(flag_name)
                    text = said if said.startswith(str(r.input)) else f"{r.input}: {said}"
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
                table.add_row(
                    r.status, str(r.input), r.describe(flag_name), style="red" if r.status == "failed" else "yellow"
                )
            self.console.print(table)
        if len(results) == 1 and counts["failed"]:
            return  # the error line that follows names the file and says why
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
