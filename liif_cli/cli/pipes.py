"""`-` on the command line: stdin as the input, stdout as the output, for `liif upscale ... -o - | ...`.

A pipe has no name and cannot be read twice, so stdin is read into memory and put in a private temporary
folder; from there it takes the same guarded path as every file (the input door decides what it is by its
content, then the reader, its limits, its one-line errors). `-o -` renders
into that folder through the atomic writer, then copies the checked file to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError, OutputError, UsageError

STDIN_NAMES = ("-", "/dev/stdin")


def stdout_target(inputs: list[str], specs: tuple, ext: str, folder: Path) -> tuple[str, str]:
    """The file that `-o -` renders into, and the format: --ext, else PNG. Several outputs are a usage error."""
    several = len(inputs) != 1 or len(specs) != 1 or (inputs[0] not in STDIN_NAMES and Path(inputs[0]).is_dir())
    if several:
        raise UsageError("-o - writes one output to stdout: give one input file and one size")
    if sys.stdout is None:  # started with stdout closed (`>&-`): said before any work, as any unusable output
        raise OutputError("-o -: stdout is closed, there is nowhere to write the output")
    ext = "png" if ext in ("auto", None) else ext.lower()
    return str(folder / f"stdout.{ext}"), ext


def spool_stdin(folder: Path) -> Path:
    """Read all of stdin into `folder`/stdin; the path then goes through the input door and the reader."""
    if sys.stdin is None:  # started with stdin closed (`<&-`)
        raise UsageError("'-' reads the input from stdin, but stdin is closed: pipe a file in (cat a.png | ...)")
    stream = sys.stdin.buffer
    if stream.isatty():
        raise UsageError("'-' reads the input from stdin, but stdin is a terminal: pipe a file in (cat a.png | ...)")
    data = stream.read()
    if not data:
        raise InputError("stdin: empty input (0 bytes)")
    path = folder / "stdin"  # no extension: the input door reads the kind from the content
    path.write_bytes(data)
    return path


def write_stdout(path: Path) -> None:
    """The finished output's bytes to stdout."""
    out = sys.stdout.buffer
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            out.write(chunk)
    out.flush()
