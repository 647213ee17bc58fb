"""Planning a batch: what output size, which files, and where each output goes (or why it is skipped).

    jobs = plan_batch(["photos/"], BatchOptions(spec=SizeSpec(scale=2.0), recursive=True))

Nothing here reads pixels or loads a model: a plan is made (and checked) before any work starts.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import naming
from ..choices import ALPHA_METHODS, EXT_CHOICES
from ..errors import InputError, LiifError, OutputError, UsageError
from ..imageio import (
    DEFAULT_MAX_INPUT_PIXELS,
    DEFAULT_MAX_OUTPUT_PIXELS,
    READ_EXTENSIONS,
    WRITE_FORMATS,
    InputGuard,
    check_destination,
    format_for_path,
)
from ..imageio.target import exists
from ..naming import looks_like_output, output_extension, upscale_name
from ..sizes import SizeSpec, exactly_one
from .media import MEDIA_EXTENSIONS, VideoOptions, check_output_file, check_video_options, media_kind

# --- planning-------------------------------------------------------------------------------------


@dataclass
class BatchOptions:
    spec: SizeSpec | Sequence[SizeSpec]  # several: one output each, from one encoding of the input
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
    video: VideoOptions = field(default_factory=VideoOptions)  # codec, crf, frames...: for videos only
    media: bool = True  # videos and animations as such; False: every file is a still (its first frame)
    specs: tuple[SizeSpec, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.specs = (self.spec,) if isinstance(self.spec, SizeSpec) else tuple(dict.fromkeys(self.spec))
        if not self.specs:
            exactly_one(several=True)
        self.spec = self.specs[0]
        if len(self.specs) > 1 and self.suffix is not None:
            raise UsageError(
                "{suffix} with several sizes would give every size the same name; leave it out", param="suffix"
            )
        if self.alpha not in ALPHA_METHODS:
            raise UsageError(f"{{alpha}} must be one of {', '.join(ALPHA_METHODS)}, got {self.alpha!r}", param="alpha")
        self.ext = str(self.ext).lower().lstrip(".")
        if self.ext not in EXT_CHOICES:
            raise UsageError(f"{{ext}} must be one of {', '.join(EXT_CHOICES)}, got {self.ext!r}", param="ext")
        if not 1 <= int(self.quality) <= 100:
            raise UsageError(f"{{quality}} must be between 1 and 100, got {self.quality}", param="quality")
        if self.suffix is not None and (os.sep in self.suffix or "/" in self.suffix):
            raise UsageError(f"{{suffix}} must not contain a path separator, got {self.suffix!r}", param="suffix")
        if self.output is not None:
            self.output = Path(self.output)
        for spec in self.specs:
            spec.check_limit(self.max_out_pixels)


@dataclass
class Job:
    input: Path
    output: Path
    skip: LiifError | None = None  # why the file is skipped (an error's text and parameters, not a failure)
    error: LiifError | None = None  # why the file fails before it is read
    earlier_output: bool = False  # found in a folder, named like an output of this command: not an input
    spec: SizeSpec | None = None  # the size this output is rendered at (None: the options' one spec)
    kind: str = "still"  # "still", "video" or "animation" (batch.media.media_kind)


def _looks_like_output(path: Path, root: Path | None, suffixes: Sequence[str]) -> str | None:
    """The suffix of this command's outputs that a file found in a folder ends in, if any."""
    return None if root is None else looks_like_output(path, suffixes)


def collect_inputs(
    paths: Iterable[str | os.PathLike], recursive: bool = False, media: bool = True
) -> list[tuple[Path, Path | None]]:
    """(file, the folder it was found in or None) for each input.

    Files named explicitly are always tried, whatever their extension (a missing one fails later, as a
    file of the batch). Folders give their image and video files (by extension, hidden files skipped), sorted;
    sub-folders only with `recursive`; video files too with `media`. The same file named twice is taken once.
    """
    out: list[tuple[Path, Path | None]] = []
    seen: set[str] = set()

    def add(p: Path, root: Path | None) -> None:
        key = os.path.normcase(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            out.append((p, root))

    wanted = READ_EXTENSIONS | MEDIA_EXTENSIONS if media else READ_EXTENSIONS
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
            if not f.name.startswith(".") and f.suffix.lower() in wanted and f.is_file():
                add(f, p)
    return out


def _kind(path: Path, options: BatchOptions) -> tuple[str, LiifError | None]:
    """The input's kind by its content, or why it is refused (a file's own failure: the batch goes on)."""
    if not options.media:
        return "still", None  # every file is read as a still (its first frame), and fails then if it must
    try:
        kind = media_kind(path, max_pixels=options.max_pixels)
    except LiifError as exc:
        return "still", exc
    if kind == "encoding":
        return "still", InputError(f"{path}: a saved encoding (.liif), not an image; render it with `liif render`")
    return kind, None


def plan_batch(paths: Sequence[str | os.PathLike], options: BatchOptions) -> list[Job]:
    """One Job per input and size (`options.specs`; consecutive for one input): its output path, or why it
    is skipped or fails.

    Output: beside the input as `<stem>_<suffix>.<ext>` by default (`liif_cli.naming`); `options.output` is a file when
    there is exactly one input file and it has an image extension (and is not an existing folder),
    otherwise a folder, where files found in input folders keep their path relative to that folder.
    An existing output is skipped unless `overwrite`; an output that is an input, or that two inputs
    would share, fails. Files found in folders whose name already ends in the suffix are skipped as
    earlier outputs of this command.
    """
    if not paths:
        raise UsageError("no input given")
    items = collect_inputs(paths, options.recursive, options.media)
    if not items:
        raise InputError(f"no image or video files found in {', '.join(str(p) for p in paths)}")
    suffixes = naming.suffixes(options.specs, options.suffix)
    out = options.output
    out_is_file = False
    kinds, refusals = zip(*(_kind(p, options) for p, _root in items), strict=True)
    file_suffixes = READ_EXTENSIONS | set(WRITE_FORMATS) | MEDIA_EXTENSIONS
    if out is not None and not out.is_dir() and out.suffix.lower() in file_suffixes:
        if len(paths) != 1 or Path(paths[0]).is_dir():
            raise UsageError(
                f"{{output}} {out} names a file, but the inputs are several files; give a folder", param="output"
            )
        if len(options.specs) > 1:
            raise UsageError(
                f"{{output}} {out} names a file, but there are several sizes; give a folder", param="output"
            )
        if kinds[0] != "still":
            check_output_file(out, kinds[0])
        else:
            try:
                format_for_path(out)
            except OutputError as exc:
                raise UsageError(str(exc)) from None
            if options.ext != "auto" and output_extension(out, options.ext) != out.suffix.lower():
                raise UsageError(
                    f"{{output}} {out} and {{ext}} {options.ext} disagree; the extension of {{output}} decides",
                    param=("output", "ext"),
                )
        out_is_file = True
    guard = InputGuard(p for p, root in items if p.exists() and not _looks_like_output(p, root, suffixes))
    claimed: dict[str, Path] = {}
    jobs: list[Job] = []
    targets = list(zip(options.specs, suffixes, strict=True))
    for ((path, root), kind, refused), (spec, suffix) in itertools.product(
        zip(items, kinds, refusals, strict=True), targets
    ):
        name, fits = upscale_name(path, kind, suffix, options.ext)
        if out is None:
            target = path.parent / name
        elif out_is_file:
            target = out
        elif root is not None:
            target = out / path.relative_to(root).parent / name
        else:
            target = out / name
        job = Job(path, target, spec=spec, kind=kind)
        key = os.path.normcase(os.path.abspath(target))
        earlier = _looks_like_output(path, root, suffixes)
        if earlier is not None and spec is not options.specs[0]:
            continue  # an earlier output is reported once, not once per size
        if earlier is not None:
            job.skip = InputError(f"looks like an output of this command (name ends in _{earlier})")
            job.earlier_output = True
        elif refused is not None:
            job.error = refused
        elif not fits and not out_is_file:
            job.error = UsageError(f"{path}: an animation cannot be written as .{options.ext} (use png or webp)")
        elif guard.covers(target):
            job.error = OutputError(
                f"{target}: output would overwrite an input file",
                param=("output", "suffix"),
                hint="use {output} or {suffix}",
            )
        elif key in claimed:
            job.error = OutputError(
                f"{target}: also the output of {claimed[key]}", param=("ext", "suffix"), hint="use {ext} or {suffix}"
            )
        elif target.is_dir():
            job.error = OutputError(f"{target}: output path is a folder")
        elif target.exists() and not options.overwrite:
            job.skip = exists(target)
        else:
            try:
                check_destination(target)  # now, not after the upscaling
            except OutputError as exc:
                job.error = exc
        claimed.setdefault(key, path)
        jobs.append(job)
    check_video_options(jobs, options.video)
    return jobs
