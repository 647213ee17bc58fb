"""Option values as text -> checked values: scales, sizes, regions, pixel limits, frame and time ranges.

The CLI's click types (`cli/options.py`) and the web server's form fields (`serve/`) read the same strings, so
the parsing and its one-line messages live here, below both, with no click: each function raises the
package's UsageError (exit 2).
"""

from __future__ import annotations

import math
import re

from .choices import MAX_SIDE
from .errors import UsageError

# --- parsing values ----------------------------------------------------------------------------------


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


def parse_region(text: str) -> tuple[float, float, float, float]:
    """'X,Y,W,H' in input pixels (floats allowed): a window of the image. Whether it lies inside the image
    is checked once the image's size is known."""
    parts = str(text).split(",")
    if len(parts) != 4:
        raise UsageError(f"--region must be X,Y,W,H in input pixels (e.g. 1200,800,64,48), got {text!r}")
    try:
        x, y, w, h = (float(p.strip()) for p in parts)
    except ValueError:
        raise UsageError(f"--region must be four numbers X,Y,W,H, got {text!r}") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise UsageError(f"--region values must be finite numbers, got {text!r}")
    if x < 0 or y < 0:
        raise UsageError(f"--region {text}: X and Y must be >= 0 (the image starts at 0,0)")
    if w <= 0 or h <= 0:
        raise UsageError(f"--region {text} is empty: W and H must be > 0")
    return x, y, w, h


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


def _range(text: str, what: str, number) -> tuple:
    s = str(text).strip()
    if s.count(":") != 1:
        raise UsageError(f"{what} must be START:END (END may be left out: START:), got {text!r}")
    a, b = (part.strip() for part in s.split(":"))
    start = number(a) if a else 0
    end = number(b) if b else None
    if start < 0 or (end is not None and end <= start):
        raise UsageError(f"{what} {text!r} is empty or negative (END must be after START)")
    return start, end


def parse_frames(text: str, what: str = "--frames") -> tuple[int, int | None]:
    """'A:B' frame numbers (from 0, B not included); 'A:' to the end, ':B' from the start."""

    def number(part: str) -> int:
        if not re.fullmatch(r"\d+", part):
            raise UsageError(f"{what} takes whole frame numbers START:END, got {text!r}")
        return int(part)

    return _range(text, what, number)


def parse_time(text: str, what: str = "--time") -> tuple[float, float | None]:
    """'T0:T1' in seconds (decimals allowed, T1 not included); 'T0:' to the end, ':T1' from the start."""

    def number(part: str) -> float:
        try:
            value = float(part)
        except ValueError:
            raise UsageError(f"{what} takes seconds START:END (e.g. 10:12.5), got {text!r}") from None
        if not math.isfinite(value):
            raise UsageError(f"{what} takes finite seconds, got {text!r}")
        return value

    return _range(text, what, number)


def size_spec(scale=None, size=None, width=None, height=None):
    """The SizeSpec of exactly one of the four options (values as the option types return them)."""
    from .batch import SizeSpec

    values = {"--scale": scale, "--size": size, "--width": width, "--height": height}
    given = [name for name, value in values.items() if value is not None]
    if len(given) != 1:
        extra = f" (got {', '.join(given)})" if given else ""
        raise UsageError(f"give exactly one of --scale, --size, --width or --height{extra}")
    return SizeSpec(scale=scale, size=size, width=width, height=height)


def size_specs(scale=(), size=(), width=(), height=(), region=None) -> tuple:
    """The SizeSpecs of repeated options of one kind (`--width 640 --width 1280`), each with `region`."""
    from .batch import SizeSpec

    values = {"--scale": scale, "--size": size, "--width": width, "--height": height}
    given = [name for name, value in values.items() if value]
    if len(given) != 1:
        extra = f" (got {', '.join(given)})" if given else ""
        raise UsageError(f"give one of --scale, --size, --width or --height (repeat it for several sizes){extra}")
    key = given[0].lstrip("-")
    return tuple(SizeSpec(**{key: v}, region=region) for v in dict.fromkeys(values[given[0]]))


def parse_size_spec(scale=None, size=None, width=None, height=None):
    """The SizeSpec of exactly one of the four options given as the CLI's strings (e.g. from a web form)."""
    return size_spec(
        scale=None if scale is None else parse_scale(scale),
        size=None if size is None else parse_size(size),
        width=None if width is None else parse_int(width, "--width", maximum=MAX_SIDE),
        height=None if height is None else parse_int(height, "--height", maximum=MAX_SIDE),
    )
