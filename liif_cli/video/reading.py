"""Reading a video: what a file holds (`probe`) and its frames decoded to RGB arrays, in range.

The input side only: it knows containers, streams and frame ranges, nothing of models or encoders, so a
folder scan or a batch plan can probe files without the writing side.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, UsageError
from ..imageio import DEFAULT_MAX_INPUT_PIXELS, check_pixels, decoding, open_container
from ..imageio.inputs import VIDEO_EXTENSIONS

if TYPE_CHECKING:  # PyAV is imported where it is used, so that `liif --help` never loads it
    from av.container import InputContainer
    from av.packet import Packet
    from av.stream import Stream
    from av.video.format import VideoFormat
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

FrameRange = tuple[int, int | None]
"""Frame numbers a <= n < b, from 0; b None: to the end."""
TimeRange = tuple[float, float | None]
"""Seconds t0 <= t < t1; t1 None: to the end."""


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds; the first video stream is the one that is upscaled."""

    path: Path
    container: str
    codec: str
    width: int
    height: int
    frames: int | None  # from the container header, or estimated from duration x rate; None when unknown
    fps: Fraction | None  # average frame rate
    duration: float | None  # seconds
    rotation: int  # degrees counter-clockwise, from the display matrix
    pix_fmt: str
    bit_depth: int
    color_primaries: int
    color_trc: int
    colorspace: int
    color_range: int
    audio_streams: int
    subtitle_streams: int


@dataclass(frozen=True)
class Frame:
    """One decoded video frame: its number (from 0, in display order), timestamp and RGB pixels."""

    index: int
    pts: int | None
    time: float | None  # seconds
    rgb: np.ndarray  # (H, W, 3) uint8, or uint16 for input deeper than 8 bits


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def open_input(path: Path) -> tuple[InputContainer, VideoStream]:
    """(container, first video stream) of a user's file, through the input door (`imageio.open_container`)."""
    container: InputContainer = open_container(path)
    with decoding(path, quiet=False):
        if not container.streams.video:
            container.close()
            raise InputError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            container.close()
            raise InputError(f"{path}: its video codec cannot be decoded (FFmpeg has no decoder for it)")
    return container, stream


def _bits(fmt: VideoFormat) -> int:
    return max((c.bits for c in fmt.components), default=8)


def probe(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS) -> VideoInfo:
    """Read the header and decode the first frame (rotation, colour tags and bit depth live on frames).

    InputError for a missing, corrupt or truncated file, one without a video stream, one whose codec
    cannot be decoded, or a frame size over `max_pixels`.
    """
    path = Path(path)
    container, stream = open_input(path)
    try:
        return _probe(container, stream, path, max_pixels)
    finally:
        container.close()


def _probe(container: InputContainer, stream: VideoStream, path: Path, max_pixels: int | None) -> VideoInfo:
    with decoding(path, quiet=False):
        cc = stream.codec_context
        check_pixels(cc.width, cc.height, max_pixels, f"{path}: video of")
        first = _first_frame(container, stream, path)
        fps = stream.average_rate or stream.guessed_rate
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        frames = stream.frames or (round(duration * fps) if duration and fps else None)
        return VideoInfo(
            path=path,
            container=container.format.name,
            codec=cc.name,
            width=first.width,
            height=first.height,
            frames=frames,
            fps=Fraction(fps) if fps else None,
            duration=duration,
            rotation=int(round(first.rotation or 0)),
            pix_fmt=first.format.name,
            bit_depth=_bits(first.format),
            color_primaries=int(first.color_primaries),
            color_trc=int(first.color_trc),
            colorspace=int(first.colorspace),
            color_range=int(first.color_range),
            audio_streams=len(container.streams.audio),
            subtitle_streams=len(container.streams.subtitles),
        )


def _first_frame(container: InputContainer, stream: VideoStream, path: Path) -> VideoFrame:
    for frame in container.decode(stream):
        return frame
    raise InputError(f"{path}: the video stream holds no decodable frame")


def _to_rgb(frame: VideoFrame, deep: bool) -> np.ndarray:
    """Decoded frame -> (H, W, 3) uint8 (or uint16 when `deep`), with the frame's own matrix and range."""
    return frame.to_ndarray(format="rgb48le" if deep else "rgb24", src_color_range=frame.color_range)


def range_check(frames: FrameRange | None, time: TimeRange | None) -> None:
    if frames is not None and time is not None:
        raise UsageError("give {frames} or {time}, not both", param=("frames", "time"))
    for what, r in (("frames", frames), ("time", time)):
        if r is not None and (r[0] < 0 or (r[1] is not None and r[1] <= r[0])):
            raise UsageError(f"{{{what}}} range {r[0]}:{r[1]} is empty or negative", param=what)


def check_range(info: VideoInfo, frames: FrameRange | None, time: TimeRange | None) -> None:
    """UsageError (exit 2) when a frame or time range starts at or past the end of the clip, as its header
    tells (a header that says nothing, or too much, is caught after encoding: no empty video is ever kept)."""
    if frames is not None and info.frames is not None and frames[0] >= info.frames:
        raise UsageError(
            f"{info.path}: {{frames}} {frames[0]}:{'' if frames[1] is None else frames[1]} selects no frame "
            f"(the clip has {info.frames})",
            param="frames",
        )
    if time is not None and info.duration is not None and time[0] >= info.duration:
        raise UsageError(
            f"{info.path}: {{time}} {time[0]:g}:{'' if time[1] is None else f'{time[1]:g}'} selects no frame "
            f"(the clip lasts {info.duration:.3g} s)",
            param="time",
        )


def count_frames(path: Path) -> int:
    """Video packets holding data in the first video stream of a file (its frame count, read without decoding);
    0 for a file that does not open as a video."""
    try:
        container, stream = open_input(path)
    except InputError:
        return 0
    with container:
        try:
            with decoding(path, quiet=False):
                return sum(1 for packet in container.demux(stream) if packet.size)
        except InputError:
            return 0


def _in_range(index: int, t: float | None, frames: FrameRange | None, time: TimeRange | None) -> int:
    """-1: before the range, 0: inside, 1: past it (stop)."""
    if frames is not None:
        if index < frames[0]:
            return -1
        return 0 if frames[1] is None or index < frames[1] else 1
    if time is not None and t is not None:
        if t < time[0] - 1e-6:
            return -1
        return 0 if time[1] is None or t < time[1] - 1e-6 else 1
    return 0


def iter_frames(
    path: str | Path,
    *,
    frames: FrameRange | None = None,
    time: TimeRange | None = None,
    max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS,
) -> Iterator[Frame]:
    """Decoded frames of the first video stream, one at a time (uint8 RGB, uint16 when deeper than 8 bits).

    `frames=(a, b)`: frame numbers a <= n < b (b None: to the end); `time=(t0, t1)`: seconds, likewise.
    """
    range_check(frames, time)
    path = Path(path)
    container, stream = open_input(path)
    try:
        check_pixels(stream.codec_context.width, stream.codec_context.height, max_pixels, f"{path}: video of")
        for item in demux(container, stream, path, frames, time, copy=()):
            if isinstance(item, Frame):
                yield item
    finally:
        container.close()


def demux(
    container: InputContainer,
    stream: VideoStream,
    path: Path,
    frames: FrameRange | None,
    time: TimeRange | None,
    copy: Sequence[Stream],
) -> Iterator[Frame | Packet]:
    """Frames of `stream` in range, and the packets of the `copy` streams, in file order."""

    deep: bool | None = None
    index: int | None = 0
    if time is not None and time[0] > 0 and stream.time_base:  # (without a time base: decode from the start)
        with decoding(path, quiet=False):
            container.seek(int(time[0] / stream.time_base), stream=stream, backward=True, any_frame=False)
        index = None  # frame numbers are unknown after a seek; only `time` is used then
    streams = [stream, *copy]
    with decoding(path, quiet=False):
        for packet in container.demux(streams):
            if packet.stream is not stream:
                if packet.dts is not None:
                    yield packet
                continue
            for frame in stream.decode(packet):  # what `packet.decode()` does, typed as video frames
                t = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
                where = _in_range(index if index is not None else 0, t, frames, time)
                if where > 0:
                    return
                if where == 0:
                    if deep is None:
                        deep = _bits(frame.format) > 8
                    yield Frame(index if index is not None else -1, frame.pts, t, _to_rgb(frame, deep))
                if index is not None:
                    index += 1
