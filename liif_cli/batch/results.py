"""What a batch tells and returns: one `FileResult` per output, the `Reporter` protocol, `record_failure`.

The bottom of `liif_cli.batch`: the planner, the runner (`run`), the media runner (`media`) and the
distributed shards all speak these types, so they live below all of them and import none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LiifError, Namer, first_line, plain_name

if TYPE_CHECKING:
    from .plan import Job

log = logging.getLogger("liif_cli.batch.run")


@dataclass
class FileResult:
    input: Path
    output: Path | None
    status: str  # "written", "skipped" or "failed"
    message: str = ""
    error: BaseException | None = None
    seconds: float = 0.0
    in_hw: tuple[int, int] | None = None
    out_hw: tuple[int, int] | None = None
    frames: int | None = None  # frames written, for a video or an animation

    def describe(self, name: Namer = plain_name) -> str:
        """The message, its parameters named by the face (`flag_name` in the CLI); the library's words by default."""
        return self.error.render(name) if isinstance(self.error, LiifError) else self.message


class Reporter:
    """What a batch tells its caller; every method is optional to override. The default is silent."""

    def start(self, jobs: Sequence[Job]) -> None: ...

    def file_start(self, index: int, job: Job) -> None: ...

    def file_sizes(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None: ...

    def progress(self, done: int, total: int) -> None: ...

    def frames(self, done: int, total: int | None) -> None:
        """Frames of a video or animation written so far (called from the video's encoder thread)."""

    def file_end(self, result: FileResult) -> None: ...

    def warn(self, message: str) -> None: ...

    def note(self, message: str) -> None: ...

    def finish(self, results: Sequence[FileResult], seconds: float) -> None: ...

    def close(self) -> None:
        """Called however the batch ends (also on an interrupt): release live displays."""


def record_failure(res: FileResult, exc: Exception) -> FileResult:
    """A file's failure as its result. A LiifError says what is wrong with the file; running out of memory
    says what to lower; anything else is a bug or an engine failure, reported in one line (the traceback goes
    to the debug log, which the CLI shows with LIIF_DEBUG=1)."""
    res.error = exc
    if isinstance(exc, LiifError):
        res.message = str(exc)
    elif isinstance(exc, MemoryError):
        res.error = LiifError("out of memory", param="tile", hint="try a smaller {tile}, or a smaller output")
        res.message = str(res.error)
    elif _is_oom(exc):
        hint = "try a smaller {tile} or {batch_size}"
        res.error = LiifError("out of memory on the device", param=("tile", "batch_size"), hint=hint)
        res.message = str(res.error)
    else:
        res.message = f"internal error: {type(exc).__name__}: {first_line(exc)}"
        log.debug("%s: internal error", res.input, exc_info=exc)
    return res


def _is_oom(exc: BaseException) -> bool:
    try:
        import torch

        return isinstance(exc, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        return False
