"""The `liif upscale` option types: click parses and completes them; bad values are one-line errors (exit 2).

Each type wraps a plain function of `liif_cli.specs` (`parse_scale`, `parse_size`, `parse_pixels`...) that
raises the package's UsageError, so the web server gets the same checks and messages without click.
"""

from __future__ import annotations

import re

import click

from ..choices import ALPHA_METHODS, DEVICE_EXAMPLES, EXT_CHOICES, MAX_SIDE, PRECISIONS, VIDEO_CODECS
from ..errors import UsageError
from ..specs import parse_frames, parse_int, parse_pixels, parse_region, parse_scale, parse_size, parse_time

# --- click types ------------------------------------------------------------------------------------


class _Parsed(click.ParamType):
    """A click type around one of the parse functions; its UsageError becomes click's usage error (exit 2)."""

    def __init__(self, name: str, parse, metavar: str):
        self.name = name
        self._parse = parse
        self._metavar = metavar

    def get_metavar(self, param, ctx=None) -> str:  # click 8.1 passes (param), 8.2 (param, ctx)
        return self._metavar

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value  # a default, already converted
        try:
            return self._parse(value, param.opts[-1] if param is not None else self.name)
        except UsageError as exc:
            raise click.UsageError(str(exc), ctx) from None


class _Scale(_Parsed):
    """--scale; `7,5` is 7 wide by 5 tall, and a decimal comma is easy to type for 7.5: say so (a notice that
    the command prints through its reporter, `notices(ctx)`), and go on as asked."""

    def convert(self, value, param, ctx):
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


SCALE = _Scale("scale", lambda text, _flag: parse_scale(text), "S|SX,SY")
SIZE = _Parsed("size", lambda text, _flag: parse_size(text), "WxH")
SIDE = _Parsed("side", lambda text, flag: parse_int(text, flag, maximum=MAX_SIDE), "PX")
PIXELS = _Parsed("pixels", parse_pixels, "N")
REGION = _Parsed("region", lambda text, _flag: parse_region(text), "X,Y,W,H")
FRAMES = _Parsed("frames", parse_frames, "A:B")
TIME = _Parsed("time", parse_time, "T0:T1")
CODEC = click.Choice(VIDEO_CODECS, case_sensitive=False)


class DeviceType(click.ParamType):
    """auto, cpu, cuda, cuda:N or mps; completion offers them. Whether the device exists is the engine's check."""

    name = "device"

    def get_metavar(self, param, ctx=None) -> str:
        return "DEVICE"

    def convert(self, value, param, ctx):
        text = str(value).strip().lower()
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", text):
            raise click.UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {value!r}", ctx)
        return text

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(d) for d in DEVICE_EXAMPLES if d.startswith(incomplete)]


DEVICE = DeviceType()
PRECISION = click.Choice(PRECISIONS, case_sensitive=False)
ALPHA = click.Choice(ALPHA_METHODS, case_sensitive=False)
EXT = click.Choice(EXT_CHOICES, case_sensitive=False)


# --- options that upscale and render share ----------------------------------------------------------

batch_size_option = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    metavar="N",
    help="Output pixels per decoder block.  [default: 2048 for fp32 on CPU, else 16384]",
)
quality_option = click.option(
    "--quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    metavar="Q",
    help="JPEG and WebP quality, 1-100.",
)
lossless_option = click.option("--lossless", is_flag=True, help="Write WebP losslessly.")
max_out_pixels_option = click.option(
    "--max-out-pixels", type=PIXELS, default="400M", show_default=True, help="Largest output accepted (0: no limit)."
)
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
