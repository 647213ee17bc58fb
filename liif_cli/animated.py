"""Animated GIF, WebP and APNG through Pillow: every frame upscaled, timing and looping kept.

Pillow hands out each frame already composed onto the ones before it (the picture a viewer shows), so
every frame is upscaled whole and written whole: the output does not depend on the input's disposal and
blend tricks, yet keeps each frame's disposal value, its duration and the loop count (APNG frames are
written with blend "source", since each is whole).
Alpha is resized bicubically beside the model, like stills through `Upscaler.upscale`.

GIF output is palettized per frame: each upscaled frame gets its own 255-colour palette (median cut,
Floyd-Steinberg dithering) plus one transparent index for pixels whose alpha is under 128, since GIF holds
one on/off transparency per frame. WebP output is lossless unless a quality is given; APNG is lossless.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageSequence

from .errors import InputError, OutputError, UsageError
from .imageio import (
    DEFAULT_MAX_INPUT_PIXELS,
    InputGuard,
    atomic_target,
    check_pixels,
    decoding,
    identify,
    open_image,
    open_pillow,
)

if TYPE_CHECKING:
    from .api import Upscaler

FORMATS = {".gif": "GIF", ".png": "PNG", ".apng": "PNG", ".webp": "WEBP"}
"""Output extension -> Pillow format (an animated .png is an APNG)."""


@dataclass(frozen=True)
class Animation:
    """Frames (composed RGB or RGBA images) and how to play them."""

    frames: list[Image.Image]
    durations: list[int]  # milliseconds per frame
    disposals: list[int]  # 0/1 keep, 2 background, 3 previous (GIF and APNG numbering differ; kept as read)
    blends: list[int] | None  # APNG only
    loop: int | None  # 0 forever, n times, None: no loop information in the file
    format: str | None  # Pillow's name: GIF, PNG, WEBP

    def add(self, frame: Image.Image, duration: int, disposal: int, blend: int | None) -> None:
        """One more frame (its blend kept only where the animation keeps blends: APNG)."""
        self.frames.append(frame)
        self.durations.append(duration)
        self.disposals.append(disposal)
        if self.blends is not None:
            self.blends.append(blend or 0)


def is_animated(path: str | Path) -> bool:
    """True for a GIF / WebP / PNG with more than one frame (a still is left to the image path); InputError
    for a file that is not a readable image (`imageio.identify`)."""
    return identify(path, max_pixels=None).kind == "animation"


def _frame_info(im: Image.Image) -> tuple[int, int, int | None]:
    duration = int(im.info.get("duration", 100) or 0)
    if im.format == "GIF":
        return duration, int(getattr(im, "disposal_method", 0)), None
    if im.format == "PNG":
        return duration, int(im.info.get("disposal", 0)), int(im.info.get("blend", 0))
    return duration, 0, None


def iter_animation(
    path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS, warn: Callable[[str], None] | None = None
) -> Iterator[tuple[Image.Image, int, int, int | None]]:
    """(composed frame, duration ms, disposal, blend) one at a time, RGB or RGBA; every frame's size is
    checked against `max_pixels` (a GIF frame may extend the canvas); InputError for a corrupt file."""
    path = Path(path)
    with open_pillow(path, max_pixels=max_pixels, warn=warn) as im:
        frames = ImageSequence.Iterator(im)
        while True:
            with decoding(path, warn):  # not held across the yield: its warnings filters are process-wide
                frame = next(frames, None)
                if frame is None:
                    return
                frame.load()  # WebP sets a frame's duration when it is decoded
                check_pixels(frame.width, frame.height, max_pixels, f"{path}: frame of")
                duration, disposal, blend = _frame_info(frame)
                has_alpha = frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
                rgb = frame.convert("RGBA" if has_alpha else "RGB")
            yield rgb, duration, disposal, blend


def read_loop(path: str | Path) -> tuple[str | None, int | None]:
    """(Pillow format, loop count or None when the file says nothing)."""
    with open_image(path, max_pixels=None) as im:
        return im.format, im.info.get("loop")


def read_animation(path: str | Path) -> Animation:
    """All frames in memory: for tests and small files (upscale_animation streams through them instead)."""
    fmt, loop = read_loop(path)
    animation = Animation([], [], [], [] if fmt == "PNG" else None, loop, fmt)
    for frame, duration, disposal, blend in iter_animation(path):
        animation.add(frame, duration, disposal, blend)
    return animation


def palettize(frame: Image.Image) -> Image.Image:
    """One frame -> 'P' with its own palette (255 colours + a transparent index 255 when there is alpha)."""
    rgb = frame.convert("RGB")
    p = rgb.quantize(
        colors=255 if frame.mode == "RGBA" else 256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG
    )
    if frame.mode == "RGBA":
        clear = frame.getchannel("A").point(lambda a: 255 if a < 128 else 0)
        p.paste(255, mask=clear)
        p.info["transparency"] = 255
    return p


def upscale_animation(
    upscaler: Upscaler,
    src: str | Path,
    dst: str | Path,
    *,
    size: Callable[[tuple[int, int]], tuple[int, int]],
    quality: int | None = None,
    overwrite: bool = False,
    protect: InputGuard | Iterable[str | os.PathLike] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Upscale every frame of an animated GIF / WebP / APNG into `dst` (.gif, .webp, .png or .apng).

    `size((h, w))` gives the output (h, w) (the CLI passes its size spec's `resolve`). Frame count,
    durations, loop count and disposal are kept; written atomically, nothing left on error or Ctrl-C.
    Frames are upscaled one at a time but Pillow writes an animation in one call, so the upscaled
    frames are held in memory (kept small: GIF frames as palette images).
    """
    src, dst = Path(src), Path(dst)
    fmt = FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise UsageError(f"{dst}: cannot write an animation as '{dst.suffix}'; use .gif, .webp, .png or .apng")
    with open_image(src, max_pixels=max_pixels) as im:
        in_fmt, loop = im.format, im.info.get("loop")
        total = getattr(im, "n_frames", None)
        out_hw = size((im.height, im.width))
    guard = protect if isinstance(protect, InputGuard) else InputGuard(protect or ())
    guard.add(src)
    with atomic_target(dst, overwrite=overwrite, protect=guard) as tmp:  # checks the output before the work
        out = Animation([], [], [], [], loop, fmt)
        for i, (frame, duration, disposal, _blend) in enumerate(iter_animation(src, max_pixels=max_pixels, warn=warn)):
            big = upscaler.upscale(frame, size=(out_hw[1], out_hw[0]))
            assert isinstance(big, Image.Image), "a Pillow image in, a Pillow image out"
            # whole composed frames replace the canvas: blend 0 (APNG_BLEND_OP_SOURCE)
            out.add(palettize(big) if fmt == "GIF" else big, duration, _disposal_for(in_fmt, fmt, disposal), 0)
            if progress is not None:
                progress(i + 1, total)
        if not out.frames:
            raise InputError(f"{src}: the animation holds no decodable frame")
        out.frames[0].save(tmp, format=fmt, **_save_options(out, quality))
        _verify(tmp, dst, len(out.frames))
    return dst


def _verify(tmp: Path, dst: Path, frames: int) -> None:
    """The written animation opens and holds every frame, or it is not renamed into place (OutputError)."""
    try:
        with open_image(tmp, max_pixels=None) as im:
            found = int(getattr(im, "n_frames", 1) or 1)
    except InputError:
        found = 0
    if found != frames:
        raise OutputError(f"{dst}: the written animation holds {found} of its {frames} frames; not kept")


def _save_options(anim: Animation, quality: int | None) -> dict[str, Any]:
    """Pillow's `save` keywords for the animation (Pillow's options are untyped keywords)."""
    options: dict[str, Any] = {"save_all": True, "append_images": anim.frames[1:], "duration": anim.durations}
    if anim.loop is not None:
        options["loop"] = anim.loop
    if anim.format == "GIF":
        options["disposal"] = anim.disposals
        options["optimize"] = False
    elif anim.format == "PNG":
        options["disposal"] = anim.disposals
        options["blend"] = anim.blends
        options["default_image"] = False
    else:
        options.update({"lossless": quality is None, "quality": quality or 100})
    return options


def _disposal_for(in_fmt: str | None, out_fmt: str, disposal: int) -> int:
    """GIF numbers disposal 0-3 (2 background, 3 previous), APNG 0-2 (1 background, 2 previous)."""
    if in_fmt == out_fmt or out_fmt == "WEBP":
        return disposal
    if in_fmt == "GIF" and out_fmt == "PNG":
        return {2: 1, 3: 2}.get(disposal, 0)
    if in_fmt == "PNG" and out_fmt == "GIF":
        return {1: 2, 2: 3}.get(disposal, 1)
    return 0
