"""Batches of real files: collect inputs, plan output names, upscale each, report, summarise.

    jobs = plan_batch(["photos/"], BatchOptions(spec=SizeSpec(scale=2.0), recursive=True))
    results = run_batch(jobs, options, LazyModel(lambda: load_model("edsr-baseline")))
    raise_for_failures(results)

The model is loaded once for the whole batch, and lazily: only when the first file that really needs
it has been read and checked, so a batch whose files are all skipped or all broken never loads (or
downloads) it. A bad file is recorded and the batch goes on; a model that cannot be loaded stops it.
"""

from __future__ import annotations

import math
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BatchError, InputError, LiifError, ModelError, OutputError, UsageError
from .imageio import (
    DEFAULT_MAX_INPUT_PIXELS,
    DEFAULT_MAX_OUTPUT_PIXELS,
    READ_EXTENSIONS,
    WRITE_FORMATS,
    DecodedImage,
    InputGuard,
    check_output_size,
    format_for_path,
    read_image,
    write_image,
)

if TYPE_CHECKING:
    from .api import Upscaler

ALPHA_METHODS = ("model", "bicubic")
EXT_CHOICES = ("auto", "png", "jpg", "jpeg", "webp", "tif", "tiff")
BIG_JOB_PIXELS = 16_000_000
"""Outputs at least this large get an estimate of time and memory before they start (when available)."""
MAX_SIDE = 1_000_000
"""No output side may exceed this many pixels, whatever the pixel limits say."""

Progress = Callable[[int, int], None]


# --- parsing option values ------------------------------------------------------------------------


def _number(text: str, what: str) -> float:
    try:
        value = float(text.strip())
    except (ValueError, AttributeError):
        raise UsageError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{what} must be a finite number > 0, got {text!r}")
    return value


def parse_scale(text: str) -> float | tuple[float, float]:
    """'2', '7.5' or 'SX,SY' (different horizontal and vertical factors)."""
    parts = str(text).split(",")
    if len(parts) == 1:
        values = [_number(parts[0], "--scale")]
    elif len(parts) == 2:
        values = [_number(p, "--scale") for p in parts]
    else:
        raise UsageError(f"--scale must be S or SX,SY, got {text!r}")
    for v in values:
        if v > MAX_SIDE:
            raise UsageError(f"--scale {v:g} is absurdly large (at most {MAX_SIDE})")
    return values[0] if len(values) == 1 else (values[0], values[1])


_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def _side(text: str, what: str) -> int:
    value = int(text)
    if value < 1:
        raise UsageError(f"{what} must be at least 1 pixel, got {text}")
    if value > MAX_SIDE:
        raise UsageError(f"{what} {value} is larger than {MAX_SIDE} pixels")
    return value


def parse_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' in whole pixels -> (w, h)."""
    m = _SIZE.match(str(text))
    if not m:
        raise UsageError(f"--size must be WIDTHxHEIGHT in whole pixels (e.g. 4000x3000), got {text!r}")
    return _side(m.group(1), "--size width"), _side(m.group(2), "--size height")


def parse_int(text: str, what: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number within [minimum, maximum]."""
    s = str(text).strip()
    if not re.fullmatch(r"[+-]?\d+", s):
        raise UsageError(f"{what} must be a whole number, got {text!r}")
    value = int(s)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise UsageError(f"{what} must be {bound}, got {text!r}")
    return value


def parse_pixels(text: str, what: str) -> int | None:
    """A pixel count: '100000000', '100M', '100MP', '1.5G'; '0' or 'none' means no limit (None)."""
    s = str(text).strip().lower().removesuffix("p")
    if s in ("0", "none", "off", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)", s)
    if not m:
        raise UsageError(f"{what} must be a pixel count such as 100000000 or 100M (0 for no limit), got {text!r}")
    value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]
    if value < 1 or value > 1e15:
        raise UsageError(f"{what} out of range: {text!r}")
    return int(value)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


@dataclass(frozen=True)
class SizeSpec:
    """What output size to make: exactly one of scale (S or (SX, SY)), size (w, h), width or height."""

    scale: float | tuple[float, float] | None = None
    size: tuple[int, int] | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        given = sum(v is not None for v in (self.scale, self.size, self.width, self.height))
        if given != 1:
            raise UsageError("give exactly one of --scale, --size, --width or --height")

    @classmethod
    def parse(
        cls, scale: str | None = None, size: str | None = None, width: str | None = None, height: str | None = None
    ) -> SizeSpec:
        """From command-line strings; every bad value is a one-line UsageError."""
        values = {"--scale": scale, "--size": size, "--width": width, "--height": height}
        given = [name for name, value in values.items() if value is not None]
        if len(given) != 1:
            extra = f" (got {', '.join(given)})" if given else ""
            raise UsageError(f"give exactly one of --scale, --size, --width or --height{extra}")
        if scale is not None:
            return cls(scale=parse_scale(scale))
        if size is not None:
            return cls(size=parse_size(size))
        if width is not None:
            return cls(width=parse_int(width, "--width", maximum=MAX_SIDE))
        return cls(height=parse_int(height, "--height", maximum=MAX_SIDE))

    def tag(self) -> str:
        """The default name suffix: x2, x7.5, x2x3, 4000x3000, w4000, h3000."""
        if self.scale is not None:
            if isinstance(self.scale, tuple):
                return f"x{_fmt(self.scale[0])}x{_fmt(self.scale[1])}"
            return f"x{_fmt(self.scale)}"
        if self.size is not None:
            return f"{self.size[0]}x{self.size[1]}"
        if self.width is not None:
            return f"w{self.width}"
        return f"h{self.height}"

    def resolve(
        self, in_hw: tuple[int, int], max_out_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS
    ) -> tuple[int, int]:
        """Output (h, w) for an input (h, w); UsageError when it is over the output limit."""
        from .api import output_size

        h, w = in_hw
        if self.scale is not None:
            sx, sy = self.scale if isinstance(self.scale, tuple) else (self.scale, self.scale)
            est = (h * sy, w * sx)
        elif self.size is not None:
            est = (self.size[1], self.size[0])
        elif self.width is not None:
            est = (h * self.width / w, self.width)
        else:
            est = (self.height, w * self.height / h)
        if max(est) > MAX_SIDE:
            raise UsageError(f"output of about {est[1]:.0f}x{est[0]:.0f} is too large (at most {MAX_SIDE} px a side)")
        out = output_size(in_hw, scale=self.scale, size=self.size, width=self.width, height=self.height)
        if max_out_pixels and out[0] * out[1] > max_out_pixels:
            raise UsageError(
                f"output {out[1]}x{out[0]} ({out[0] * out[1] / 1e6:.1f} MP) is over the limit of "
                f"{max_out_pixels / 1e6:.1f} MP (raise it with --max-out-pixels)"
            )
        return out


# --- planning -------------------------------------------------------------------------------------


@dataclass
class BatchOptions:
    spec: SizeSpec
    output: Path | None = None  # a file (one input) or a folder
    ext: str = "auto"  # auto = same as the input (PNG when the input's format cannot be written)
    suffix: str | None = None  # None: the spec's tag (x2, 4000x3000...); "": no suffix
    recursive: bool = False
    overwrite: bool = False
    alpha: str = "model"
    quality: int = 95
    lossless: bool = False
    max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS
    max_out_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS

    def __post_init__(self) -> None:
        if self.alpha not in ALPHA_METHODS:
            raise UsageError(f"--alpha must be one of {', '.join(ALPHA_METHODS)}, got {self.alpha!r}")
        self.ext = str(self.ext).lower().lstrip(".")
        if self.ext not in EXT_CHOICES:
            raise UsageError(f"--ext must be one of {', '.join(EXT_CHOICES)}, got {self.ext!r}")
        if not 1 <= int(self.quality) <= 100:
            raise UsageError(f"--quality must be between 1 and 100, got {self.quality}")
        if self.suffix is not None and (os.sep in self.suffix or "/" in self.suffix):
            raise UsageError(f"--suffix must not contain a path separator, got {self.suffix!r}")
        if self.output is not None:
            self.output = Path(self.output)
        size = self.spec.size
        if size is not None and self.max_out_pixels and size[0] * size[1] > self.max_out_pixels:
            raise UsageError(
                f"--size {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.1f} MP) is over the output limit of "
                f"{self.max_out_pixels / 1e6:.1f} MP (raise it with --max-out-pixels)"
            )


@dataclass
class Job:
    input: Path
    output: Path | None
    skip: str | None = None  # why the file is skipped
    error: LiifError | None = None  # why the file fails before it is read
    earlier_output: bool = False  # found in a folder, named like an output of this command: not an input


def _looks_like_output(path: Path, root: Path | None, suffix: str) -> bool:
    return root is not None and bool(suffix) and path.stem.endswith(f"_{suffix}")


def collect_inputs(paths: Iterable[str | os.PathLike], recursive: bool = False) -> list[tuple[Path, Path | None]]:
    """(file, the folder it was found in or None) for each input.

    Files named explicitly are always tried, whatever their extension (a missing one fails later, as a
    file of the batch). Folders give their image files (by extension, hidden files skipped), sorted;
    sub-folders only with `recursive`. The same file named twice is taken once.
    """
    out: list[tuple[Path, Path | None]] = []
    seen: set[str] = set()

    def add(p: Path, root: Path | None) -> None:
        key = os.path.normcase(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            out.append((p, root))

    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            add(p, None)
            continue
        if recursive:
            found = []
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [Path(dirpath) / f for f in filenames]
        else:
            found = [c for c in p.iterdir() if c.is_file()]
        for f in sorted(found, key=lambda q: q.as_posix()):
            if not f.name.startswith(".") and f.suffix.lower() in READ_EXTENSIONS and f.is_file():
                add(f, p)
    return out


def output_extension(input_path: Path, ext: str) -> str:
    if ext == "auto":
        suffix = input_path.suffix.lower()
        return suffix if suffix in WRITE_FORMATS else ".png"
    return "." + ext


def plan_batch(paths: Sequence[str | os.PathLike], options: BatchOptions) -> list[Job]:
    """One Job per input: its output path, or why it is skipped or fails.

    Output: beside the input as `<stem>_<suffix>.<ext>` by default; `options.output` is a file when
    there is exactly one input file and it has an image extension (and is not an existing folder),
    otherwise a folder, where files found in input folders keep their path relative to that folder.
    An existing output is skipped unless `overwrite`; an output that is an input, or that two inputs
    would share, fails. Files found in folders whose name already ends in the suffix are skipped as
    earlier outputs of this command.
    """
    if not paths:
        raise UsageError("no input given")
    items = collect_inputs(paths, options.recursive)
    if not items:
        raise InputError(f"no image files found in {', '.join(str(p) for p in paths)}")
    suffix = options.spec.tag() if options.suffix is None else options.suffix
    out = options.output
    out_is_file = False
    if out is not None and not out.is_dir() and out.suffix.lower() in (READ_EXTENSIONS | set(WRITE_FORMATS)):
        if len(paths) != 1 or Path(paths[0]).is_dir():
            raise UsageError(f"-o {out} names a file, but the inputs are several files; give a folder")
        try:
            format_for_path(out)
        except OutputError as exc:
            raise UsageError(str(exc)) from None
        if options.ext != "auto" and output_extension(out, options.ext) != out.suffix.lower():
            raise UsageError(f"-o {out} and --ext {options.ext} disagree; the extension of -o decides")
        out_is_file = True
    guard = InputGuard(p for p, root in items if p.exists() and not _looks_like_output(p, root, suffix))
    claimed: dict[str, Path] = {}
    jobs: list[Job] = []
    for path, root in items:
        name = f"{path.stem}_{suffix}" if suffix else path.stem
        name += output_extension(path, options.ext)
        if out is None:
            target = path.parent / name
        elif out_is_file:
            target = out
        elif root is not None:
            target = out / path.relative_to(root).parent / name
        else:
            target = out / name
        job = Job(path, target)
        key = os.path.normcase(os.path.abspath(target))
        if _looks_like_output(path, root, suffix):
            job.skip = f"looks like an output of this command (name ends in _{suffix})"
            job.earlier_output = True
        elif guard.covers(target):
            job.error = OutputError(f"{target}: output would overwrite an input file (use -o or --suffix)")
        elif key in claimed:
            job.error = OutputError(f"{target}: also the output of {claimed[key]}; use --ext or --suffix")
        elif target.is_dir():
            job.error = OutputError(f"{target}: output path is a folder")
        elif target.exists() and not options.overwrite:
            job.skip = f"{target} exists (use --overwrite)"
        claimed.setdefault(key, path)
        jobs.append(job)
    return jobs


# --- running --------------------------------------------------------------------------------------


class LazyModel:
    """Loads the model on the first `get()`, once; `loads` counts loads. Load errors are ModelErrors."""

    def __init__(self, loader: Callable[[], Upscaler]):
        self._loader = loader
        self._upscaler: Upscaler | None = None
        self.loads = 0

    @property
    def loaded(self) -> bool:
        return self._upscaler is not None

    def get(self) -> Upscaler:
        if self._upscaler is None:
            from .models import CheckpointError

            self.loads += 1
            try:
                self._upscaler = self._loader()
            except LiifError:
                raise
            except CheckpointError as exc:
                raise ModelError(str(exc)) from None
            except OSError as exc:
                raise ModelError(f"cannot load the model: {exc}") from None
        return self._upscaler


def upscale_image(
    img: DecodedImage,
    upscaler: Upscaler,
    out_hw: tuple[int, int],
    *,
    alpha: str = "model",
    progress: Progress | None = None,
) -> DecodedImage:
    """`Upscaler.upscale_image`: the library's one decoded-image path (alpha, gray, 16-bit)."""
    return upscaler.upscale_image(img, out_hw, alpha=alpha, progress=progress)


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


class Reporter:
    """What a batch tells its caller; every method is optional to override. The default is silent."""

    def start(self, jobs: Sequence[Job]) -> None: ...

    def file_start(self, index: int, job: Job) -> None: ...

    def file_sizes(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None: ...

    def progress(self, done: int, total: int) -> None: ...

    def file_end(self, result: FileResult) -> None: ...

    def warn(self, message: str) -> None: ...

    def note(self, message: str) -> None: ...

    def finish(self, results: Sequence[FileResult], seconds: float) -> None: ...

    def close(self) -> None:
        """Called however the batch ends (also on an interrupt): release live displays."""


def run_batch(
    jobs: Sequence[Job],
    options: BatchOptions,
    model: LazyModel,
    reporter: Reporter | None = None,
    *,
    estimate: Callable[[tuple[int, int], tuple[int, int]], str | None] | None = None,
) -> list[FileResult]:
    """Process every job; a failing file is recorded and the batch goes on.

    Errors from loading the model (ModelError, a bad device...) stop the batch and propagate, as does
    KeyboardInterrupt (no partial output is left: files are written atomically at the end of each job).
    `estimate(in_hw, out_hw)` may return a line to print before outputs of BIG_JOB_PIXELS or more.
    """
    rep = reporter or Reporter()
    guard = InputGuard(j.input for j in jobs if j.input.exists() and not j.earlier_output)
    results: list[FileResult] = []
    t_batch = time.monotonic()
    rep.start(jobs)
    for index, job in enumerate(jobs):
        rep.file_start(index, job)
        t0 = time.monotonic()
        res = FileResult(job.input, job.output, "failed")
        if job.error is not None:
            res.message, res.error = str(job.error), job.error
        elif job.skip is not None:
            res.status, res.message = "skipped", job.skip
        else:
            res = _run_job(job, options, model, rep, guard, estimate, res)
        res.seconds = time.monotonic() - t0
        results.append(res)
        rep.file_end(res)
    rep.finish(results, time.monotonic() - t_batch)
    return results


def _run_job(job, options, model, rep, guard, estimate, res: FileResult) -> FileResult:
    def warn(msg: str) -> None:
        rep.warn(msg)

    try:
        img = read_image(job.input, max_pixels=options.max_pixels, warn=warn)
        out_hw = options.spec.resolve(img.hw, options.max_out_pixels)
        check_output_size(format_for_path(job.output), out_hw[1], out_hw[0])
    except LiifError as exc:
        res.message, res.error = str(exc), exc
        return res
    res.in_hw, res.out_hw = img.hw, out_hw
    if img.frames > 1:
        warn(f"{job.input}: only the first of its {img.frames} frames is upscaled")
    upscaler = model.get()  # errors here stop the batch: every other file would fail the same way
    rep.file_sizes(img.hw, out_hw)
    try:
        if estimate is not None and out_hw[0] * out_hw[1] >= BIG_JOB_PIXELS:
            line = _safe_estimate(estimate, img.hw, out_hw)
            if line:
                rep.note(f"{job.input}: {line}")
        result = upscale_image(img, upscaler, out_hw, alpha=options.alpha, progress=rep.progress)
        del img
        write_image(
            result,
            job.output,
            quality=options.quality,
            lossless=options.lossless,
            overwrite=options.overwrite,
            protect=guard,
            warn=warn,
        )
    except LiifError as exc:
        res.message, res.error = str(exc), exc
        return res
    except MemoryError as exc:
        res.message, res.error = "out of memory (try a smaller --tile, or a smaller output)", exc
        return res
    except Exception as exc:  # a bug or an engine failure: report it, keep going with the other files
        if _is_oom(exc):
            res.message = "out of memory on the device (try a smaller --tile or --batch-size)"
        else:
            res.message = f"internal error: {type(exc).__name__}: {_first_line(exc)}"
            if os.environ.get("LIIF_DEBUG"):
                traceback.print_exc()
        res.error = exc
        return res
    res.status, res.message = "written", str(job.output)
    return res


def _is_oom(exc: BaseException) -> bool:
    try:
        import torch

        return isinstance(exc, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        return False


def _safe_estimate(estimate, in_hw, out_hw) -> str | None:
    try:
        return estimate(in_hw, out_hw)
    except Exception:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def raise_for_failures(results: Sequence[FileResult], single_input: bool = False) -> None:
    """Raise when any file failed: its own error for a single input, else a BatchError (exit 1)."""
    failed = [r for r in results if r.status == "failed"]
    if not failed:
        return
    if single_input and len(results) == 1 and isinstance(failed[0].error, LiifError):
        raise failed[0].error
    if single_input and len(results) == 1:
        raise BatchError(failed[0].message)
    raise BatchError(f"{len(failed)} of {len(results)} files failed")


# --- reporting on a terminal (rich) ---------------------------------------------------------------


@dataclass
class ConsoleReporter(Reporter):
    """Progress and summary on stderr with rich: live bars on a terminal, one line per file otherwise."""

    console: Any = None
    quiet: bool = False
    interactive: bool | None = None
    _progress: Any = field(default=None, init=False)
    _files_task: Any = field(default=None, init=False)
    _tiles_task: Any = field(default=None, init=False)
    _total: int = field(default=0, init=False)

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
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._files_task = self._progress.add_task("files", total=len(jobs))
        self._tiles_task = self._progress.add_task("", total=1, visible=False)

    def file_start(self, index: int, job: Job) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.update(self._tiles_task, description=job.input.name, completed=0, total=1, visible=False)
        else:
            self._print(f"[{index + 1}/{self._total}] {job.input}")

    def file_sizes(self, in_hw, out_hw) -> None:
        if self._progress is not None:
            desc = f"{in_hw[1]}x{in_hw[0]} → {out_hw[1]}x{out_hw[0]}"
            self._progress.update(self._tiles_task, description=desc, visible=True)

    def progress(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._tiles_task, completed=done, total=max(total, 1))

    def file_end(self, result: FileResult) -> None:
        if self._progress is not None:
            self._progress.update(self._files_task, advance=1)
            self._progress.update(self._tiles_task, visible=False)
        if self.quiet:
            return
        if result.status == "written":
            size = f"{result.out_hw[1]}x{result.out_hw[0]}" if result.out_hw else ""
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
        if self.quiet:
            problems = [r for r in results if r.status == "failed"]
            if not problems:
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
            f"{counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed in {seconds:.1f} s",
            highlight=False,
            markup=False,
        )


__all__ = [
    "ALPHA_METHODS",
    "BIG_JOB_PIXELS",
    "EXT_CHOICES",
    "BatchOptions",
    "ConsoleReporter",
    "FileResult",
    "Job",
    "LazyModel",
    "Reporter",
    "SizeSpec",
    "collect_inputs",
    "output_extension",
    "parse_int",
    "parse_pixels",
    "parse_scale",
    "parse_size",
    "plan_batch",
    "raise_for_failures",
    "run_batch",
    "upscale_image",
]
