"""The streaming pipeline: decode, upscale and encode in three threads, then remux the other streams.

Decoding, the model and encoding run in three threads joined by small bounded queues, so memory does not
grow with the length of the clip and the (slow) model never waits on the codec. A part of a clip (frames
or time range) starts its timestamps at 0. The file is written to a temporary name beside `dst` and renamed
when complete, after checking that it opens and holds every frame encoded (a range that selects no frame, or
an encoder that wrote none, keeps nothing): an error or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import enum
import os
import queue
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias

import numpy as np

from ..errors import InputError, LiifError, OutputError, UsageError, first_line
from ..imageio import DEFAULT_MAX_INPUT_PIXELS, DEFAULT_MAX_OUTPUT_PIXELS, InputGuard, atomic_target, open_container
from .reading import (
    Frame,
    FrameRange,
    TimeRange,
    VideoInfo,
    check_range,
    count_frames,
    demux,
    iter_frames,
    open_input,
    probe,
    range_check,
)
from .writing import (
    CONTAINER_FORMATS,
    AudioReencoder,
    Codec,
    Plan,
    Warn,
    add_video_stream,
    check_out_size,
    choose_codec,
    choose_pix_fmt,
    plan_other_streams,
)

if TYPE_CHECKING:  # PyAV is imported where it is used, so that `liif --help` never loads it
    from av.container import InputContainer, OutputContainer
    from av.packet import Packet
    from av.video.stream import VideoStream

    from ..api import Upscaler

Progress = Callable[[int, int | None], None]
"""progress(frames done, frames expected or None)."""
SizeRule = Callable[[tuple[int, int]], tuple[int, int]]
"""The output (h, w) for an input (h, w): the CLI passes its size spec's `resolve`."""


def iter_upscaled(
    upscaler: Upscaler,
    src: str | Path,
    *,
    out_hw: tuple[int, int] | None = None,
    size: SizeRule | None = None,
    frames: FrameRange | None = None,
    time: TimeRange | None = None,
    dtype: type | np.dtype | None = None,
) -> Iterator[tuple[Frame, np.ndarray]]:
    """(decoded frame, upscaled pixels) pairs, one at a time; pixels are the decoded frame's dtype unless
    `dtype` is given (np.float32 for the unrounded model output)."""
    for frame in iter_frames(src, frames=frames, time=time):
        hw = _resolve_size(frame.rgb.shape[:2], out_hw, size)
        yield frame, _upscale(upscaler, frame.rgb, hw, dtype)


def _resolve_size(in_hw: tuple[int, ...], out_hw: tuple[int, int] | None, size: SizeRule | None) -> tuple[int, int]:
    if out_hw is not None and size is None:
        hw = tuple(out_hw)
    elif size is not None and out_hw is None:
        hw = tuple(size((in_hw[0], in_hw[1])))
    else:
        raise UsageError("give exactly one of out_hw or size")
    if len(hw) != 2 or min(hw) < 1:
        raise UsageError(f"output size {hw} is empty")
    return int(hw[0]), int(hw[1])


def _upscale(
    upscaler: Upscaler, rgb: np.ndarray, out_hw: tuple[int, int], dtype: type | np.dtype | None = None
) -> np.ndarray:
    top = np.float32(np.iinfo(rgb.dtype).max)
    return upscaler.upscale_array(rgb.astype(np.float32) / top, out_hw, dtype=dtype or rgb.dtype)


@dataclass(frozen=True)
class VideoResult:
    path: Path
    frames: int
    width: int
    height: int
    codec: str
    pix_fmt: str
    copied: tuple[str, ...]  # streams copied unchanged, e.g. "audio #1 (aac)"
    reencoded: tuple[str, ...]
    dropped: tuple[str, ...]


class _Stop(enum.Enum):
    STOP = "stop"


_STOP: Final = _Stop.STOP
"""The end of a queue (or the pipeline stopping)."""
Item: TypeAlias = "Frame | Packet | _Stop"
"""What travels through the queues: decoded (then upscaled) frames, packets of the copied streams, the end."""


class _Pipeline:
    """Three stages (demux+decode, model, encode+mux) joined by bounded queues; errors stop all of them."""

    def __init__(self, depth: int = 4):
        self.decoded: queue.Queue[Item] = queue.Queue(depth)
        self.upscaled: queue.Queue[Item] = queue.Queue(depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.frames_done = 0

    def put(self, q: queue.Queue[Item], item: Item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue[Item]) -> Item:
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _STOP

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop.set()

    def thread(self, target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # handed to the caller's thread, which raises it
                self.fail(exc)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def upscale_video(
    upscaler: Upscaler,
    src: str | Path,
    dst: str | Path,
    *,
    out_hw: tuple[int, int] | None = None,
    size: SizeRule | None = None,
    codec: str | None = None,
    crf: int | None = None,
    pix_fmt: str | None = None,
    frames: FrameRange | None = None,
    time: TimeRange | None = None,
    progress: Progress | None = None,
    warn: Warn | None = None,
    overwrite: bool = False,
    protect: InputGuard | Iterable[str | os.PathLike] | None = None,
    max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS,
    max_out_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
) -> VideoResult:
    """Upscale the first video stream of `src` into `dst` (container from its extension), streaming.

    The output size is `out_hw` (h, w), or `size((h, w))` of the input (the CLI passes its size spec's
    `resolve`). `codec`: h264 (default; vp9 for .webm), h265, vp9, av1, ffv1 (lossless RGB). `crf`: the
    codec's quality (default per codec, see CODECS). `pix_fmt`: default keeps the input's when the codec
    takes it, else 4:2:0 at the input's depth (10 bits where the codec holds them). `frames=(a, b)` or
    `time=(t0, t1)` render a part; its timestamps then start at 0. Messages about streams that could not
    be copied go to `warn` (default: `warnings.warn`). Errors: InputError (unreadable input), UsageError
    (options, sizes), OutputError (cannot write); KeyboardInterrupt passes through, leaving no file.
    """
    import av

    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    range_check(frames, time)
    src, dst = Path(src), Path(dst)
    muxer = CONTAINER_FORMATS.get(dst.suffix.lower())
    if muxer is None:
        raise UsageError(
            f"{dst}: cannot write '{dst.suffix or '(no extension)'}' video; use {', '.join(CONTAINER_FORMATS)}"
        )
    info = probe(src, max_pixels=max_pixels)
    check_range(info, frames, time)
    hw = _resolve_size((info.height, info.width), out_hw, size)
    chosen = choose_codec(muxer, codec)
    fmt = choose_pix_fmt(chosen, info, pix_fmt, warn)
    check_out_size(chosen, fmt, hw, max_out_pixels)
    guard = protect if isinstance(protect, InputGuard) else InputGuard(protect or ())
    guard.add(src)
    container, in_stream = open_input(src)
    try:
        with atomic_target(dst, overwrite=overwrite, protect=guard) as tmp:
            try:
                out = open_container(tmp, "w", format=muxer)
            except av.FFmpegError as exc:
                raise UsageError(f"{dst}: cannot write {muxer} ({first_line(exc)})") from None
            try:
                result = _run(
                    upscaler, container, in_stream, out, info, chosen, fmt, hw, crf, frames, time, progress, warn, dst
                )
            except BaseException:
                with contextlib.suppress(av.FFmpegError):  # the error that stopped the run is the one to report
                    out.close()
                raise
            try:
                out.close()  # the muxer's last word: a stream it cannot finish is refused only here
            except av.FFmpegError as exc:
                why = exc.strerror or first_line(exc)  # (its text names the temporary file, not the output)
                raise OutputError(
                    f"{dst}: {muxer} refused to finish the file ({why}): a stream it cannot hold? .mkv holds any"
                ) from None
            _verify(tmp, src, dst, result.frames, frames, time)
    finally:
        container.close()
    return result


def _run(
    upscaler: Upscaler,
    container: InputContainer,
    in_stream: VideoStream,
    out: OutputContainer,
    info: VideoInfo,
    codec: Codec,
    pix_fmt: str,
    hw: tuple[int, int],
    crf: int | None,
    frames: FrameRange | None,
    time: TimeRange | None,
    progress: Progress | None,
    warn: Warn,
    dst: Path,
) -> VideoResult:
    import av

    muxer = out.format.name
    vs = add_video_stream(out, in_stream, codec, pix_fmt, hw, crf, info)
    copy, plan, notes = plan_other_streams(container, out, muxer, warn, info.path)
    total = info.frames
    if frames is not None:
        total = max(0, min(total, frames[1] if frames[1] is not None else total) - frames[0]) if total else None
    elif time is not None and info.fps:
        end = time[1] if time[1] is not None else (info.duration or 0)
        total = max(0, round((end - time[0]) * info.fps))
    pipe = _Pipeline()
    shift: dict[str, float | None] = {"seconds": None}  # the first kept frame's time, subtracted from every
    # timestamp of a part
    partial = frames is not None or time is not None

    def decode_stage() -> None:
        for item in demux(container, in_stream, info.path, frames, time, copy):
            if not pipe.put(pipe.decoded, item):
                return
        pipe.put(pipe.decoded, _STOP)

    def encode_stage() -> None:
        done = 0
        while True:
            item = pipe.get(pipe.upscaled)
            if item is _STOP:
                if pipe.stop.is_set():
                    return  # stopped by an error or Ctrl-C: no flush, the temporary file goes anyway
                break
            if isinstance(item, Frame):
                vf = av.VideoFrame.from_ndarray(item.rgb, format="rgb48le" if item.rgb.dtype == np.uint16 else "rgb24")
                if not pix_fmt.startswith(("gbr", "bgr", "rgb")):
                    vf = vf.reformat(
                        format=pix_fmt, dst_colorspace=info.colorspace or None, dst_color_range=info.color_range
                    )
                else:
                    vf = vf.reformat(format=pix_fmt)
                vf.color_primaries = info.color_primaries
                vf.color_trc = info.color_trc
                if item.pts is not None:
                    vf.pts = item.pts - _offset(shift, in_stream.time_base) if partial else item.pts
                vf.time_base = in_stream.time_base
                for p in vs.encode(vf):
                    out.mux(p)
                done += 1
                if progress is not None:
                    progress(done, total)
            else:
                _mux_other(out, plan, item, shift, partial)
        for p in vs.encode(None):
            out.mux(p)
        for target in plan.values():
            if isinstance(target, AudioReencoder):
                for p in target.packets(None):
                    out.mux(p)
        pipe.frames_done = done

    decoder = pipe.thread(decode_stage)
    encoder = pipe.thread(encode_stage)
    finished = False
    try:
        while True:
            item = pipe.get(pipe.decoded)
            if item is _STOP:
                break
            if isinstance(item, Frame):
                if shift["seconds"] is None:
                    shift["seconds"] = item.time or 0.0
                if item.rgb.shape[:2] != (info.height, info.width):
                    raise InputError(
                        f"{info.path}: frame size changes mid-stream ({item.rgb.shape[1]}x{item.rgb.shape[0]})"
                    )
                item = Frame(item.index, item.pts, item.time, _upscale(upscaler, item.rgb, hw))
            elif shift["seconds"] is None and partial:
                continue  # packets before the first kept frame of a part
            if not pipe.put(pipe.upscaled, item):
                break
        pipe.put(pipe.upscaled, _STOP)
        encoder.join()
        finished = True
    except BaseException as exc:
        pipe.fail(exc)
        raise
    finally:
        if not finished:
            pipe.stop.set()
        decoder.join(timeout=5)
        encoder.join(timeout=5)
    if pipe.error is not None:
        if isinstance(pipe.error, LiifError | KeyboardInterrupt):
            raise pipe.error
        if isinstance(pipe.error, av.FFmpegError):
            raise InputError(f"{info.path}: {first_line(pipe.error)}") from None
        raise pipe.error
    return VideoResult(
        dst,
        pipe.frames_done,
        hw[1],
        hw[0],
        codec.name,
        pix_fmt,
        tuple(notes["copied"]),
        tuple(notes["reencoded"]),
        tuple(notes["dropped"]),
    )


def _verify(tmp: Path, src: Path, dst: Path, encoded: int, frames: FrameRange | None, time: TimeRange | None) -> None:
    """The written video opens and holds every frame that was encoded, or it is not renamed into place."""
    if encoded == 0:
        if frames is not None or time is not None:
            given = "frames" if frames is not None else "time"
            raise UsageError(f"{src}: the {{{given}}} range selects no frame; nothing written", param=given)
        raise InputError(f"{src}: no frame could be decoded; nothing written")
    found = count_frames(tmp)
    if found != encoded:
        raise OutputError(f"{dst}: the written video holds {found} of the {encoded} frames encoded; not kept")


def _offset(shift: dict[str, float | None], time_base: Fraction | None) -> int:
    """The first kept frame's time in `time_base` units (0 for a stream without a time base)."""
    return int(round((shift["seconds"] or 0.0) / time_base)) if time_base else 0


def _mux_other(out: OutputContainer, plan: Plan, packet: Packet, shift: dict[str, float | None], partial: bool) -> None:
    target = plan[packet.stream.index]
    if partial:
        off = _offset(shift, packet.time_base)
        if packet.pts is not None and packet.pts - off < 0:
            return
        packet.pts = packet.pts - off if packet.pts is not None else None
        packet.dts = packet.dts - off if packet.dts is not None else None
    if isinstance(target, AudioReencoder):
        for p in target.packets(packet):
            out.mux(p)
    else:
        packet.stream = target
        out.mux(packet)
