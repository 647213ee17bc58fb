"""Output sizes: what size to make (`SizeSpec`), its arithmetic (`output_size`), a region's span, the one
"exactly one of scale, size, width or height" rule and the output pixel limit.

`liif upscale`, `liif render`, the web server, the batch planner and the Python API all size their outputs
here, so that one spec gives one size everywhere. Ground floor: no torch, no numpy, no pixels; errors name their
parameters (`param=`), and each face names them its own way (`liif_cli.errors`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict, Unpack

from .choices import MAX_SIDE
from .errors import UsageError

Region = tuple[float, float, float, float]
"""(x, y, w, h) of the continuous image, in input pixels."""

SIZE_PARAMS = ("scale", "size", "width", "height")
DEFAULT_MAX_OUTPUT_PIXELS = 400_000_000
"""Default output limit: 400 megapixels (20000x20000), about 4.8 GB as float32 RGB before encoding."""
Scale = float | tuple[float, float]


def exactly_one(*, several: bool = False, **values: object) -> str:
    """The one rule: exactly one of scale, size, width or height is given (a value, or with `several` a
    non-empty sequence of values); returns its name."""
    given = [name for name in SIZE_PARAMS if (values.get(name) if several else values.get(name) is not None)]
    if len(given) == 1:
        return given[0]
    extra = f" (got {', '.join('{' + p + '}' for p in given)})" if given else ""
    repeat = " (repeat it for several sizes)" if several else ""
    raise UsageError(
        f"give exactly one of {{scale}}, {{size}}, {{width}} or {{height}}{repeat}{extra}", param=SIZE_PARAMS
    )


def region_span(region: Region | None, in_hw: tuple[int, int]) -> tuple[float, float]:
    """The (h, w) that sizes are relative to: the region's, or the whole input's."""
    return in_hw if region is None else (region[3], region[2])


def exact_size(
    in_hw: tuple[float, float],
    scale: Scale | None,
    size: tuple[int, int] | None,
    width: int | None,
    height: int | None,
) -> tuple[float, float]:
    """The output (h, w) before rounding, for exactly one of scale (S or (SX, SY)), size (w, h), width or height."""
    exactly_one(scale=scale, size=size, width=width, height=height)
    h, w = in_hw
    if scale is not None:
        sx, sy = (scale, scale) if not isinstance(scale, tuple | list) else scale
        for s in (sx, sy):
            if not isinstance(s, int | float) or not math.isfinite(s) or s <= 0:
                raise UsageError(f"{{scale}} must be a finite number > 0, got {s!r}", param="scale")
        return h * sy, w * sx
    if size is not None:
        return float(size[1]), float(size[0])
    if width is not None:
        return h * width / w, float(width)
    assert height is not None
    return float(height), w * height / h


def output_size(
    in_hw: tuple[float, float],
    *,
    scale: Scale | None = None,
    size: tuple[int, int] | None = None,
    width: int | None = None,
    height: int | None = None,
) -> tuple[int, int]:
    """Resolve exactly one of scale / size (w, h) / width / height into an output (h, w).

    `scale` may be one number or (sx, sy); sizes round to the nearest pixel and are at least 1. An output over
    MAX_SIDE pixels a side is a UsageError naming the size parameter given (no caller can allocate it).
    """
    est_h, est_w = exact_size(in_hw, scale, size, width, height)
    if not max(est_h, est_w) <= MAX_SIDE:  # also an infinite product of a huge scale
        given = next(
            k for k, v in (("scale", scale), ("size", size), ("width", width), ("height", height)) if v is not None
        )
        raise UsageError(
            f"output of about {est_w:.0f}x{est_h:.0f} is too large (at most {MAX_SIDE} px a side): check {{{given}}}"
            if math.isfinite(est_h + est_w)
            else f"{{{given}}} gives an output too large to compute (at most {MAX_SIDE} px a side)",
            param=given,
        )
    given_h, given_w = size is not None or height is not None, size is not None or width is not None
    out = (int(est_h) if given_h else round(est_h), int(est_w) if given_w else round(est_w))
    if min(out) < 1:
        raise UsageError(f"output size {out[1]}x{out[0]} is empty")
    return max(1, out[0]), max(1, out[1])


def megapixels(pixels: int) -> str:
    """A pixel count for a message: `12.0 MP`, or `400 pixels` when small."""
    return f"{pixels / 1e6:.1f} MP" if pixels >= 100_000 else f"{pixels} pixels"


def check_output_pixels(w: int, h: int, limit: int | None, what: str = "output", param: str | None = None) -> None:
    """UsageError when a w x h output is over `limit` pixels (None or 0: no limit); shaped like
    `imageio.check_pixels`, which guards the input. `what` may name `param` as `{param}`."""
    if limit and w * h > limit:
        raise UsageError(
            f"{what} {w}x{h} ({megapixels(w * h)}) is over the limit of {megapixels(limit)}",
            param=("max_out_pixels",) + ((param,) if param else ()),
            hint="raise it with {max_out_pixels}",
        )


def _fmt(x: float) -> str:
    return f"{x:.6g}"


@dataclass(frozen=True)
class SizeSpec:
    """What output size to make: exactly one of scale (S or (SX, SY)), size (w, h), width or height.

    With `region` (x, y, w, h in input pixels) the output is that window of the image, and the size is
    relative to the window: `--region 1200,800,64,48 --scale 20` makes 1280x960 pixels.
    """

    scale: Scale | None = None
    size: tuple[int, int] | None = None
    width: int | None = None
    height: int | None = None
    region: Region | None = None

    def __post_init__(self) -> None:
        exactly_one(scale=self.scale, size=self.size, width=self.width, height=self.height)

    def tag(self) -> str:
        """The default name suffix: x2, x7.5, x2x3, 4000x3000, w4000, h3000; a region's output says so
        first, `r1200,800,64,48_x20` (commas and dots only: safe on every file system)."""
        if self.region is not None:
            size = SizeSpec(self.scale, self.size, self.width, self.height)
            return "r" + ",".join(_fmt(v) for v in self.region) + "_" + size.tag()
        if self.scale is not None:
            if isinstance(self.scale, tuple):
                return f"x{_fmt(self.scale[0])}x{_fmt(self.scale[1])}"
            return f"x{_fmt(self.scale)}"
        if self.size is not None:
            return f"{self.size[0]}x{self.size[1]}"
        if self.width is not None:
            return f"w{self.width}"
        return f"h{self.height}"

    def check_limit(self, max_out_pixels: int | None) -> None:
        """An explicit size over the output limit is refused before any input is read."""
        if self.size is not None:
            check_output_pixels(self.size[0], self.size[1], max_out_pixels, "{size}", "size")

    def resolve(
        self, in_hw: tuple[int, int], max_out_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS
    ) -> tuple[int, int]:
        """Output (h, w) for an input (h, w) (or for its region); UsageError when it is over the output limit
        or the region is not inside the input."""
        check_region(self.region, in_hw)
        span = region_span(self.region, in_hw)
        out = output_size(span, scale=self.scale, size=self.size, width=self.width, height=self.height)
        check_output_pixels(out[1], out[0], max_out_pixels)
        return out


def specs_of(
    *,
    scale: Iterable[Scale] = (),
    size: Iterable[tuple[int, int]] = (),
    width: Iterable[int] = (),
    height: Iterable[int] = (),
    region: Region | None = None,
) -> tuple[SizeSpec, ...]:
    """The SizeSpecs of repeated values of one kind (`--width 640 --width 1280`), in order, each once, each
    with `region`: how `liif upscale` and `liif render` read their size options."""
    values = {"scale": tuple(scale), "size": tuple(size), "width": tuple(width), "height": tuple(height)}
    key = exactly_one(several=True, **values)
    return tuple(SizeSpec(**{key: v}, region=region) for v in dict.fromkeys(values[key]))  # type: ignore[arg-type]


class SizeArgs(TypedDict, total=False):
    """The four size keywords of the API (exactly one given): scale (S or (SX, SY)), size (w, h), width, height."""

    scale: Scale | None
    size: tuple[int, int] | None
    width: int | None
    height: int | None


def window_output_size(in_hw: tuple[int, int], region: Region | None, **size: Unpack[SizeArgs]) -> tuple[int, int]:
    """The output (h, w) for an input (h, w), or for the window `region` of it (checked to lie inside), from
    exactly one size keyword: what `Upscaler.upscale` and `Encoding.render` make."""
    return output_size(region_span(check_region(region, in_hw), in_hw), **size)


def check_region(region: Region | None, in_hw: tuple[int, int]) -> Region | None:
    """A region must be a finite, non-empty rectangle inside `[0, in_w] x [0, in_h]`; None is the whole image."""
    if region is None:
        return None
    try:
        x, y, w, h = (float(v) for v in region)
    except (TypeError, ValueError):
        raise UsageError(f"a {{region}} is four numbers x, y, w, h; got {region!r}", param="region") from None
    in_h, in_w = in_hw
    text = f"{x:g},{y:g},{w:g},{h:g}"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise UsageError(f"{{region}} {text}: every value must be a finite number", param="region")
    if w <= 0 or h <= 0:
        raise UsageError(f"{{region}} {text} is empty: its width and height must be > 0", param="region")
    if x < 0 or y < 0 or x + w > in_w * (1 + 1e-9) or y + h > in_h * (1 + 1e-9):
        raise UsageError(f"{{region}} {text} is not inside the {in_w}x{in_h} image", param="region")
    return x, y, w, h
