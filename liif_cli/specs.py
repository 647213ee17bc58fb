"""Option values as text -> checked values: scales, sizes, regions, pixel limits, frame and time ranges.

The CLI's click types (`cli/options.py`) and the web server's form fields (`serve/`) read the same strings, so
the parsing and its one-line messages live here, below both, with no click: each function raises the
package's UsageError (exit 2) naming the parameter (`param=`), which each face names its own way. What the
parsed sizes mean (`SizeSpec`, the exactly-one rule) is `liif_cli.sizes`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TypeVar

from .choices import MAX_SIDE
from .errors import UsageError
from .sizes import SizeSpec

# --- parsing values ----------------------------------------------------------------------------------
# `param` is the parameter a value is for (`scale`, `max_pixels`...): the errors name it as `{param}`, and each
# face names it its own way (a CLI flag, a form field).


def _ph(param: str) -> str:
    return "{" + param + "}"


def _number(text: str, param: str) -> float:
    try:
        value = float(text.strip())
    except (ValueError, AttributeError):
        raise UsageError(f"{_ph(param)} must be a number, got {text!r}", param=param) from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{_ph(param)} must be a finite number > 0, got {text!r}", param=param)
    return value


def parse_scale(text: str, param: str = "scale") -> float | tuple[float, float]:
    """'2', '7.5' or 'SX,SY' (different horizontal and vertical factors)."""
    parts = str(text).split(",")
    if len(parts) == 1:
        values = [_number(parts[0], param)]
    elif len(parts) == 2:
        values = [_number(p, param) for p in parts]
    else:
        raise UsageError(f"{_ph(param)} must be S or SX,SY, got {text!r}", param=param)
    for v in values:
        if v > MAX_SIDE:
            raise UsageError(f"{_ph(param)} {v:g} is absurdly large (at most {MAX_SIDE})", param=param)
    return values[0] if len(values) == 1 else (values[0], values[1])


_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def _side(text: str, what: str, param: str) -> int:
    value = int(text)
    if value < 1:
        raise UsageError(f"{what} must be at least 1 pixel, got {text}", param=param)
    if value > MAX_SIDE:
        raise UsageError(f"{what} {value} is larger than {MAX_SIDE} pixels", param=param)
    return value


def parse_size(text: str, param: str = "size") -> tuple[int, int]:
    """'WIDTHxHEIGHT' in whole pixels -> (w, h)."""
    m = _SIZE.match(str(text))
    if not m:
        raise UsageError(
            f"{_ph(param)} must be WIDTHxHEIGHT in whole pixels (e.g. 4000x3000), got {text!r}", param=param
        )
    return _side(m.group(1), f"{_ph(param)} width", param), _side(m.group(2), f"{_ph(param)} height", param)


def parse_region(text: str, param: str = "region") -> tuple[float, float, float, float]:
    """'X,Y,W,H' in input pixels (floats allowed): a window of the image. Whether it lies inside the image
    is checked once the image's size is known."""
    name = _ph(param)
    parts = str(text).split(",")
    if len(parts) != 4:
        raise UsageError(f"{name} must be X,Y,W,H in input pixels (e.g. 1200,800,64,48), got {text!r}", param=param)
    try:
        x, y, w, h = (float(p.strip()) for p in parts)
    except ValueError:
        raise UsageError(f"{name} must be four numbers X,Y,W,H, got {text!r}", param=param) from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise UsageError(f"{name} values must be finite numbers, got {text!r}", param=param)
    if x < 0 or y < 0:
        raise UsageError(f"{name} {text}: X and Y must be >= 0 (the image starts at 0,0)", param=param)
    if w <= 0 or h <= 0:
        raise UsageError(f"{name} {text} is empty: W and H must be > 0", param=param)
    return x, y, w, h


def parse_int(text: str, param: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number within [minimum, maximum]."""
    s = str(text).strip()
    if not re.fullmatch(r"[+-]?\d+", s):
        raise UsageError(f"{_ph(param)} must be a whole number, got {text!r}", param=param)
    value = int(s)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise UsageError(f"{_ph(param)} must be {bound}, got {text!r}", param=param)
    return value


def parse_pixels(text: str, param: str) -> int | None:
    """A pixel count: '100000000', '100M', '100MP', '1.5G'; '0' or 'none' means no limit (None)."""
    s = str(text).strip().lower().removesuffix("p")
    if s in ("0", "none", "off", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)", s)
    if not m:
        raise UsageError(
            f"{_ph(param)} must be a pixel count such as 100000000 or 100M (0 for no limit), got {text!r}", param=param
        )
    value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]
    if value < 1 or value > 1e15:
        raise UsageError(f"{_ph(param)} out of range: {text!r}", param=param)
    return int(value)


def parse_bytes(text: str, param: str) -> int:
    """A byte count: '100M' (MiB), '1.5G' (GiB), '512k' (KiB) or a plain number of bytes."""
    s = str(text).strip().lower().removesuffix("b").removesuffix("i")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)", s)
    if not m:
        raise UsageError(f"{_ph(param)} must be a size in bytes such as 100M or 1G, got {text!r}", param=param)
    value = int(float(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2)])
    if value < 1:
        raise UsageError(f"{_ph(param)} must be at least 1 byte, got {text!r}", param=param)
    return value


_N = TypeVar("_N", int, float)


def _range(text: str, param: str, number: Callable[[str], _N]) -> tuple[_N, _N | None]:
    s = str(text).strip()
    if s.count(":") != 1:
        raise UsageError(f"{_ph(param)} must be START:END (END may be left out: START:), got {text!r}", param=param)
    a, b = (part.strip() for part in s.split(":"))
    start: _N = number(a) if a else 0
    end = number(b) if b else None
    if start < 0 or (end is not None and end <= start):
        raise UsageError(f"{_ph(param)} {text!r} is empty or negative (END must be after START)", param=param)
    return start, end


def parse_frames(text: str, param: str = "frames") -> tuple[int, int | None]:
    """'A:B' frame numbers (from 0, B not included); 'A:' to the end, ':B' from the start."""

    def number(part: str) -> int:
        if not re.fullmatch(r"\d+", part):
            raise UsageError(f"{_ph(param)} takes whole frame numbers START:END, got {text!r}", param=param)
        return int(part)

    return _range(text, param, number)


def parse_time(text: str, param: str = "time") -> tuple[float, float | None]:
    """'T0:T1' in seconds (decimals allowed, T1 not included); 'T0:' to the end, ':T1' from the start."""

    def number(part: str) -> float:
        try:
            value = float(part)
        except ValueError:
            raise UsageError(
                f"{_ph(param)} takes seconds START:END (e.g. 10:12.5), got {text!r}", param=param
            ) from None
        if not math.isfinite(value):
            raise UsageError(f"{_ph(param)} takes finite seconds, got {text!r}", param=param)
        return value

    return _range(text, param, number)


def parse_size_spec(
    scale: str | None = None, size: str | None = None, width: str | None = None, height: str | None = None
) -> SizeSpec:
    """The SizeSpec of exactly one of the four size values given as text (e.g. from a web form)."""
    return SizeSpec(
        scale=None if scale is None else parse_scale(scale),
        size=None if size is None else parse_size(size),
        width=None if width is None else parse_int(width, "width", maximum=MAX_SIDE),
        height=None if height is None else parse_int(height, "height", maximum=MAX_SIDE),
    )
