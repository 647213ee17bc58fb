"""The `liif upscale` option types: click parses and completes them; bad values are one-line errors (exit 2).

Each type wraps a plain function of `liif_cli.specs` (`parse_scale`, `parse_size`, `parse_pixels`...) that
raises the package's UsageError, so the web server gets the same checks and messages without click.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

from ..choices import ALPHA_METHODS, DEVICE_EXAMPLES, EXT_CHOICES, MAX_SIDE, PRECISIONS, VIDEO_CODECS
from ..errors import LiifError, UsageError, flag_name
from ..specs import (
    parse_bytes,
    parse_frames,
    parse_int,
    parse_pixels,
    parse_region,
    parse_scale,
    parse_size,
    parse_time,
)

# --- click types ------------------------------------------------------------------------------------


def param_of(param: click.Parameter | None, default: str) -> str:
    """The library's parameter for a click option: `--max-pixels` -> `max_pixels` (its longest flag, so that
    `--frames`, stored as `frame_range`, is the parameter `frames`)."""
    if param is None or not param.opts:
        return default
    return max(param.opts, key=len).lstrip("-").replace("-", "_")


def usage_error(exc: LiifError, ctx: click.Context | None = None) -> click.UsageError:
    """A library error about an option value as click's usage error, its parameters named as flags."""
    return click.UsageError(exc.render(flag_name), ctx)


class _Parsed(click.ParamType):
    """A click type around one of the parse functions; its UsageError becomes click's usage error (exit 2)."""

    def __init__(self, name: str, parse: Callable[[str, str], Any], metavar: str):
        self.name = name
        self._parse = parse
        self._metavar = metavar

    # click 8.1 passes (param), 8.2 (param, ctx)
    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self._metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # a default, already converted
        try:
            return self._parse(value, param_of(param, self.name))
        except UsageError as exc:
            raise usage_error(exc, ctx) from None


class _Scale(_Parsed):
    """--scale; `7,5` is 7 wide by 5 tall, and a decimal comma is easy to type for 7.5: say so (a notice that
    the command prints through its reporter, `notices(ctx)`), and go on as asked."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        parsed = super().convert(value, param, ctx)
        if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*,\s*\d+\s*", value):
            a, b = (p.strip() for p in value.split(","))
            note = f"--scale {a},{b} means {a}x wider and {b}x taller; for a scale of {a}.{b} write --scale {a}.{b}"
            if ctx is not None:
                ctx.meta.setdefault("liif.notices", []).append(note)
        return parsed


def notices(ctx: click.Context | None) -> list[str]:
    """What the option types noticed while parsing (see `_Scale`), for the command to print."""
    return list(ctx.meta.get("liif.notices", [])) if ctx is not None else []


SCALE = _Scale("scale", parse_scale, "S|SX,SY")
SIZE = _Parsed("size", parse_size, "WxH")
SIDE = _Parsed("side", lambda text, param: parse_int(text, param, maximum=MAX_SIDE), "PX")
PIXELS = _Parsed("pixels", parse_pixels, "N")
BYTES = _Parsed("bytes", parse_bytes, "SIZE")
REGION = _Parsed("region", parse_region, "X,Y,W,H")
FRAMES = _Parsed("frames", parse_frames, "A:B")
TIME = _Parsed("time", parse_time, "T0:T1")
CODEC = click.Choice(VIDEO_CODECS, case_sensitive=False)


class DeviceType(click.ParamType):
    """auto, cpu, cuda, cuda:N or mps; completion offers them. Whether the device exists is the engine's check."""

    name = "device"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DEVICE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        parts = [p.strip() for p in str(value).strip().lower().split(",")]
        if not all(re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", p) for p in parts):
            raise click.UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {value!r}", ctx)
        return ",".join(parts)  # several only make sense to `liif serve` (one worker each)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(d) for d in DEVICE_EXAMPLES if d.startswith(incomplete)]


DEVICE = DeviceType()
PRECISION = click.Choice(PRECISIONS, case_sensitive=False)
ALPHA = click.Choice(ALPHA_METHODS, case_sensitive=False)
EXT = click.Choice(EXT_CHOICES, case_sensitive=False)


# --- options that upscale and render share ----------------------------------------------------------

quality_option = click.option(
    "--quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    metavar="Q",
    help="JPEG and WebP quality, 1-100.",
)
lossless_option = click.option("--lossless", is_flag=True, help="Write WebP losslessly.")
max_pixels_option = click.option(
    "--max-pixels", type=PIXELS, default="100M", show_default=True, help="Largest input accepted (0: no limit)."
)
max_out_pixels_option = click.option(
    "--max-out-pixels", type=PIXELS, default="400M", show_default=True, help="Largest output accepted (0: no limit)."
)


# --- the size options: one of four kinds, repeatable, and a region (upscale and render) --------------


def size_options(fn):
    """--scale, --size, --width, --height (one kind, repeatable: `sizes.specs_of`) and --region."""
    decorators = [
        click.option(
            "-s", "--scale", type=SCALE, multiple=True, help="Scale factor S (2, 7.5...) or SX,SY; repeatable."
        ),
        click.option(
            "--size", type=SIZE, multiple=True, help="Output size WIDTHxHEIGHT (aspect ratio as given); repeatable."
        ),
        click.option(
            "--width", type=SIDE, multiple=True, help="Output width in pixels (height keeps the aspect); repeatable."
        ),
        click.option(
            "--height", type=SIDE, multiple=True, help="Output height in pixels (width keeps the aspect); repeatable."
        ),
        click.option(
            "--region", type=REGION, help="Render only this window of the input (input pixels, floats allowed)."
        ),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


# --- the model-loading option block: one declaration for every command that loads a model ------------


def _tile(ctx, param, value):
    return value or None  # 0: from free memory


_LOAD_FLAGS = {
    "backend": click.option(
        "--backend",
        type=click.Choice(["torch", "onnxruntime"], case_sensitive=False),
        help="torch, or onnxruntime (fp32; --model may be a 'liif export' folder; docs/onnx.md).  [default: torch]",
    ),
    "device": click.option(
        "--device",
        type=DEVICE,
        help="auto, cpu, cuda, cuda:N or mps (serve: a comma-separated list, one worker each).  [default: auto]",
    ),
    "precision": click.option(
        "--precision",
        type=PRECISION,
        help="Engine precision.  [default: auto; bench: fp32, the reference math; render: the encoding's]",
    ),
    "tile": click.option(
        "-t",
        "--tile",
        type=click.IntRange(min=0),
        metavar="PX",
        callback=_tile,
        help="Tile size in input pixels; 0 = from free memory.  [default: 0]",
    ),
    "threads": click.option(
        "--threads", type=click.IntRange(1, 4096), metavar="N", help="CPU threads.  [default: all cores]"
    ),
    "batch_size": click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        metavar="N",
        help="Output pixels per decoder block.  [default: 2048 for fp32 on CPU, else 16384]",
    ),
    "allow_unverified": click.option(
        "--allow-unverified", is_flag=True, default=None, help="Use a model whose sha256 is not pinned."
    ),
    "offline": click.option(
        "--offline", is_flag=True, default=None, help="Never download; use the cache only (also LIIF_OFFLINE=1)."
    ),
}
"""One declaration per flag of `LoadOptions` (`liif_cli.load_options.FIELDS`), in its order. A new load option
(another backend, say) is one entry here and one field there."""


def load_options(*, without: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The model-loading flags, declared once for every command that loads a model (upscale, render, encode,
    bench, serve; train takes the ones it has). The command gets them as one frozen `load` (a `LoadOptions`)
    instead of loose keywords; `without` leaves out fields a command has no use for or means otherwise."""
    import functools

    names = [name for name in _LOAD_FLAGS if name not in without]

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from ..load_options import LoadOptions

            given = {name: kwargs.pop(name) for name in names}
            try:
                kwargs["load"] = LoadOptions(**{k: v for k, v in given.items() if v is not None})
            except UsageError as exc:
                raise usage_error(exc) from None
            return fn(*args, **kwargs)

        for name in reversed(names):
            wrapper = _LOAD_FLAGS[name](wrapper)
        return wrapper

    return apply


progress_option = click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(("auto", "bar", "plain", "json", "none"), case_sensitive=False),
    default="auto",
    show_default=True,
    help="Progress on stderr: live bars, plain lines, JSON lines (for programs), or none (auto: bars at a terminal).",
)
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Print the plan (outputs, sizes, time and memory estimate); load and write nothing."
)
