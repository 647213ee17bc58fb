"""Video files through the model as a stream: probe, decode to RGB arrays, upscale, encode, remux the rest.

    from liif_cli import load_model
    from liif_cli.video import upscale_video
    up = load_model("edsr-baseline")
    upscale_video(up, "clip.mp4", "clip_x2.mp4", size=lambda hw: (hw[0] * 2, hw[1] * 2))

Decoding, the model and encoding run in three threads joined by small bounded queues, so memory does not
grow with the length of the clip and the (slow) model never waits on the codec. Every video frame keeps its
timestamp (variable frame rate survives), the stream keeps its frame rate, rotation (display matrix) and
colour tags; 10-bit input is decoded to 16-bit RGB and re-encoded at 10 bits when the codec holds them.
Audio and subtitle packets are copied unchanged when the output container takes their codec, else audio is
re-encoded (and a warning says so) and subtitles are dropped (with a warning). The file is written to a
temporary name beside `dst` and renamed when complete: an error or Ctrl-C leaves nothing behind.

PyAV (`av`, the `video` extra) is imported inside functions only, so `liif --help` never loads it.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import InputError, LiifError, UsageError, first_line
from .imageio import (
    DEFAULT_MAX_INPUT_PIXELS,
    DEFAULT_MAX_OUTPUT_PIXELS,
    InputGuard,
    atomic_target,
    check_pixels,
)

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi"})
"""Extensions a folder scan should treat as video (files named explicitly are probed whatever their name)."""

CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".avi": "avi"}
"""Output extension -> FFmpeg muxer name (the temporary file's name says nothing, so the muxer is explicit)."""


@dataclass(frozen=True)
class Codec:
    """What one output codec needs: its encoder, its quality knob and default, its pixel formats."""

    name: str
    encoder: str
    default_crf: int | None
    crf_range: tuple[int, int] | None
    pix_fmt_8: str
    pix_fmt_hi: str | None  # the format that keeps more than 8 bits, None when the encoder has none
    max_side: int
    options: tuple[tuple[str, str], ...] = ()


CODECS = {
    "h264": Codec("h264", "libx264", 18, (0, 51), "yuv420p", "yuv420p10le", 16384, (("preset", "medium"),)),
    "h265": Codec(
        "h265", "libx265", 20, (0, 51), "yuv420p", "yuv420p10le", 16384, (("x265-params", "log-level=error"),)
    ),
    "vp9": Codec("vp9", "libvpx-vp9", 31, (0, 63), "yuv420p", None, 65536, (("b", "0"), ("row-mt", "1"))),
    "av1": Codec("av1", "libsvtav1", 30, (1, 63), "yuv420p", "yuv420p10le", 16384, (("preset", "8"),)),
    "ffv1": Codec("ffv1", "ffv1", None, None, "bgr0", "gbrp16le", 65536, (("level", "3"),)),
}
"""Output codecs. crf: 18 (h264) / 20 (h265) are near-transparent; vp9 31 and av1 30 are their usual
"good" settings. ffv1 is lossless and stores RGB (bgr0, or 16-bit planar RGB for deeper input), so a frame
round-trips through it exactly."""

DEFAULT_CODEC = {"webm": "vp9"}
"""Muxer -> default codec (h264 for everything else)."""

AUDIO_FALLBACK = {"webm": "libopus", "mp4": "aac", "mov": "aac", "avi": "libmp3lame", "matroska": "libopus"}

Warn = Callable[[str], None]
Progress = Callable[[int, int | None], None]
"""progress(frames done, frames expected or None)."""


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


def _open_input(path: Path):
    import av

    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a video")
    try:
        container = av.open(str(path), "r")
    except av.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({first_line(exc)})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise InputError(f"{path}: video codec '{stream.codec.name if stream.codec else '?'}' cannot be decoded")
    return container, stream


def _bits(fmt) -> int:
    return max((c.bits for c in fmt.components), default=8)


def probe(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS) -> VideoInfo:
    """Read the header and decode the first frame (rotation, colour tags and bit depth live on frames).

    InputError for a missing, corrupt or truncated file, one without a video stream, one whose codec
    cannot be decoded, or a frame size over `max_pixels`.
    """
    path = Path(path)
    container, stream = _open_input(path)
    try:
        cc = stream.codec_context
        check_pixels(cc.width, cc.height, max_pixels, f"{path}: video of", "--max-pixels")
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
    finally:
        container.close()


def _first_frame(container, stream, path: Path):
    import av

    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise InputError(f"{path}: corrupt video ({first_line(exc)})") from None
    raise InputError(f"{path}: the video stream holds no decodable frame")


def _to_rgb(frame, deep: bool) -> np.ndarray:
    """Decoded frame -> (H, W, 3) uint8 (or uint16 when `deep`), with the frame's own matrix and range."""
    return frame.to_ndarray(format="rgb48le" if deep else "rgb24", src_color_range=frame.color_range)


def _range_check(frames: tuple[int, int | None] | None, time: tuple[float, float | None] | None) -> None:
    if frames is not None and time is not None:
        raise UsageError("give frames or time, not both")
    for what, r in (("frames", frames), ("time", time)):
        if r is not None and (r[0] < 0 or (r[1] is not None and r[1] <= r[0])):
            raise UsageError(f"{what} range {r[0]}:{r[1]} is empty or negative")


def _in_range(index: int, t: float | None, frames, time) -> int:
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
    frames: tuple[int, int | None] | None = None,
    time: tuple[float, float | None] | None = None,
    max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS,
) -> Iterator[Frame]:
    """Decoded frames of the first video stream, one at a time (uint8 RGB, uint16 when deeper than 8 bits).

    `frames=(a, b)`: frame numbers a <= n < b (b None: to the end); `time=(t0, t1)`: seconds, likewise.
    """
    _range_check(frames, time)
    path = Path(path)
    container, stream = _open_input(path)
    try:
        check_pixels(
            stream.codec_context.width, stream.codec_context.height, max_pixels, f"{path}: video of", "--max-pixels"
        )
        for item in _demux(container, stream, path, frames, time, copy=()):
            if isinstance(item, Frame):
                yield item
    finally:
        container.close()


def _demux(container, stream, path: Path, frames, time, copy) -> Iterator:
    """Frames of `stream` in range, and the packets of the `copy` streams, in file order."""
    import av

    deep = None
    index = 0
    if time is not None and time[0] > 0:
        container.seek(int(time[0] / stream.time_base), stream=stream, backward=True, any_frame=False)
        index = None  # frame numbers are unknown after a seek; only `time` is used then
    streams = [stream, *copy]
    try:
        for packet in container.demux(streams):
            if packet.stream is not stream:
                if packet.dts is not None:
                    yield packet
                continue
            for frame in packet.decode():
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
    except av.FFmpegError as exc:
        raise InputError(f"{path}: corrupt video ({first_line(exc)})") from None


def iter_upscaled(
    upscaler,
    src: str | Path,
    *,
    out_hw: tuple[int, int] | None = None,
    size: Callable[[tuple[int, int]], tuple[int, int]] | None = None,
    frames: tuple[int, int | None] | None = None,
    time: tuple[float, float | None] | None = None,
    dtype: type | np.dtype | None = None,
) -> Iterator[tuple[Frame, np.ndarray]]:
    """(decoded frame, upscaled pixels) pairs, one at a time; pixels are the decoded frame's dtype unless
    `dtype` is given (np.float32 for the unrounded model output)."""
    for frame in iter_frames(src, frames=frames, time=time):
        hw = _resolve_size(frame.rgb.shape[:2], out_hw, size)
        yield frame, _upscale(upscaler, frame.rgb, hw, dtype)


def _resolve_size(in_hw, out_hw, size) -> tuple[int, int]:
    if (out_hw is None) == (size is None):
        raise UsageError("give exactly one of out_hw or size")
    hw = tuple(out_hw) if out_hw is not None else tuple(size(tuple(in_hw)))
    if len(hw) != 2 or min(hw) < 1:
        raise UsageError(f"output size {hw} is empty")
    return int(hw[0]), int(hw[1])


def _upscale(upscaler, rgb: np.ndarray, out_hw, dtype=None) -> np.ndarray:
    top = np.float32(np.iinfo(rgb.dtype).max)
    return upscaler.upscale_array(rgb.astype(np.float32) / top, out_hw, dtype=dtype or rgb.dtype)


# --- writing -------------------------------------------------------------------------------------


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


def _choose_codec(muxer: str, codec: str | None) -> Codec:
    name = (codec or DEFAULT_CODEC.get(muxer, "h264")).lower()
    aliases = {"hevc": "h265", "x264": "h264", "x265": "h265", "vp09": "vp9", "svt-av1": "av1"}
    try:
        return CODECS[aliases.get(name, name)]
    except KeyError:
        raise UsageError(f"unknown codec '{codec}' (use one of {', '.join(CODECS)})") from None


def _choose_pix_fmt(codec: Codec, info: VideoInfo, pix_fmt: str | None, warn: Warn) -> str:
    import av

    supported = {f.name for f in av.codec.Codec(codec.encoder, "w").video_formats}
    if pix_fmt is not None:
        if pix_fmt not in supported:
            raise UsageError(
                f"{codec.name} cannot encode pixel format '{pix_fmt}' (it takes {', '.join(sorted(supported))})"
            )
        return pix_fmt
    if codec.name == "ffv1":
        return codec.pix_fmt_8 if info.bit_depth <= 8 else codec.pix_fmt_hi
    if info.pix_fmt in supported:
        return info.pix_fmt  # keeps chroma subsampling and depth
    if info.bit_depth > 8:
        if codec.pix_fmt_hi:
            return codec.pix_fmt_hi
        warn(f"{info.path}: {codec.name} holds 8 bits here; the {info.bit_depth}-bit input is reduced to 8 bits")
    return codec.pix_fmt_8


def _check_out_size(codec: Codec, pix_fmt: str, out_hw: tuple[int, int], max_out_pixels: int | None) -> None:
    import av

    h, w = out_hw
    if max(h, w) > codec.max_side:
        raise UsageError(f"{codec.name} cannot hold a {w}x{h} video (at most {codec.max_side} px a side)")
    if max_out_pixels and h * w > max_out_pixels:
        raise UsageError(
            f"output {w}x{h} is over the limit of {max_out_pixels / 1e6:.1f} MP (raise it with --max-out-pixels)"
        )
    probe_fmt = av.VideoFormat(pix_fmt, 64, 64)  # the chroma plane's size tells the subsampling
    sub_w, sub_h = 64 // probe_fmt.chroma_width(), 64 // probe_fmt.chroma_height()
    if w % sub_w or h % sub_h:
        raise UsageError(
            f"{w}x{h} cannot be encoded as {pix_fmt} (chroma subsampling needs sides divisible by "
            f"{sub_w} and {sub_h}); pick an even size or a 4:4:4 pixel format"
        )


def _add_video_stream(out, in_stream, codec: Codec, pix_fmt: str, out_hw, crf, info: VideoInfo):
    cc_in = in_stream.codec_context
    rate = in_stream.average_rate or in_stream.guessed_rate or Fraction(25)
    options = dict(codec.options)
    if codec.default_crf is not None:
        crf = codec.default_crf if crf is None else crf
        lo, hi = codec.crf_range
        if not lo <= crf <= hi:
            raise UsageError(f"crf for {codec.name} must be in {lo}..{hi}, got {crf}")
        options["crf"] = str(crf)
    elif crf is not None:
        raise UsageError(f"{codec.name} is lossless and takes no crf")
    vs = out.add_stream(codec.encoder, rate=rate, options=options)
    vs.height, vs.width = out_hw
    vs.pix_fmt = pix_fmt
    vs.time_base = in_stream.time_base
    vs.codec_context.time_base = in_stream.time_base
    cc = vs.codec_context
    if not pix_fmt.startswith(("gbr", "bgr", "rgb")):
        cc.colorspace = info.colorspace
        cc.color_range = info.color_range
    cc.color_primaries = info.color_primaries
    cc.color_trc = info.color_trc
    if cc_in.sample_aspect_ratio:
        vs.sample_aspect_ratio = cc_in.sample_aspect_ratio
    if info.rotation:
        vs.set_display_rotation(info.rotation)
    if in_stream.language:
        vs.metadata["language"] = in_stream.language
    return vs


class _AudioReencoder:
    """Decode an audio stream the output container cannot hold and encode it with the container's codec."""

    def __init__(self, out, in_stream, encoder: str):
        import av

        codec = av.codec.Codec(encoder, "w")
        rates = codec.audio_rates or ()
        rate = in_stream.rate if not rates or in_stream.rate in rates else 48000
        self.stream = out.add_stream(encoder, rate=rate)
        layout = in_stream.layout.name if in_stream.layout.nb_channels <= 2 else "stereo"
        self.stream.layout = layout
        fmt = codec.audio_formats[0].name
        self.stream.format = fmt
        self.resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        self.in_stream = in_stream

    def packets(self, packet) -> list:
        out = []
        frames = packet.decode() if packet is not None else [None]
        for frame in frames:
            for rf in self.resampler.resample(frame):
                out.extend(self.stream.encode(rf))
        if packet is None:
            out.extend(self.stream.encode(None))
        return out


_STOP = object()


class _Pipeline:
    """Three stages (demux+decode, model, encode+mux) joined by bounded queues; errors stop all of them."""

    def __init__(self, depth: int = 4):
        self.decoded: queue.Queue = queue.Queue(depth)
        self.upscaled: queue.Queue = queue.Queue(depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.frames_done = 0

    def put(self, q: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue):
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

    def thread(self, target, *args) -> threading.Thread:
        def run():
            try:
                target(*args)
            except BaseException as exc:  # handed to the caller's thread, which raises it
                self.fail(exc)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def upscale_video(
    upscaler,
    src: str | Path,
    dst: str | Path,
    *,
    out_hw: tuple[int, int] | None = None,
    size: Callable[[tuple[int, int]], tuple[int, int]] | None = None,
    codec: str | None = None,
    crf: int | None = None,
    pix_fmt: str | None = None,
    frames: tuple[int, int | None] | None = None,
    time: tuple[float, float | None] | None = None,
    progress: Progress | None = None,
    warn: Warn | None = None,
    overwrite: bool = False,
    protect=None,
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
    _range_check(frames, time)
    src, dst = Path(src), Path(dst)
    muxer = CONTAINER_FORMATS.get(dst.suffix.lower())
    if muxer is None:
        raise UsageError(
            f"{dst}: cannot write '{dst.suffix or '(no extension)'}' video; use {', '.join(CONTAINER_FORMATS)}"
        )
    info = probe(src, max_pixels=max_pixels)
    hw = _resolve_size((info.height, info.width), out_hw, size)
    chosen = _choose_codec(muxer, codec)
    fmt = _choose_pix_fmt(chosen, info, pix_fmt, warn)
    _check_out_size(chosen, fmt, hw, max_out_pixels)
    guard = protect if isinstance(protect, InputGuard) else InputGuard(protect or ())
    guard.add(src)
    container, in_stream = _open_input(src)
    try:
        with atomic_target(dst, overwrite=overwrite, protect=guard) as tmp:
            try:
                out = av.open(str(tmp), "w", format=muxer)
            except av.FFmpegError as exc:
                raise UsageError(f"{dst}: cannot write {muxer} ({first_line(exc)})") from None
            try:
                result = _run(
                    upscaler, container, in_stream, out, info, chosen, fmt, hw, crf, frames, time, progress, warn, dst
                )
                out.close()
            except BaseException:
                out.close()
                raise
    finally:
        container.close()
    return result


def _plan_other_streams(container, out, muxer: str, warn: Warn, src: Path):
    """Output streams for audio and subtitles: copied when the muxer takes the codec, else re-encoded or dropped."""
    supported = out.supported_codecs
    copy, plan, notes = [], {}, {"copied": [], "reencoded": [], "dropped": []}
    for s in container.streams:
        if s.type not in ("audio", "subtitle"):
            continue
        label = f"{s.type} #{s.index} ({s.codec_context.name if s.codec_context else '?'})"
        name = s.codec_context.name if s.codec_context else None
        if name in supported:
            plan[s.index] = ("copy", out.add_stream_from_template(s))
            notes["copied"].append(label)
        elif s.type == "audio" and s.codec_context is not None and muxer in AUDIO_FALLBACK:
            plan[s.index] = ("encode", _AudioReencoder(out, s, AUDIO_FALLBACK[muxer]))
            notes["reencoded"].append(label)
            warn(f"{src}: {label} cannot be copied into {muxer}; re-encoded as {AUDIO_FALLBACK[muxer]}")
        else:
            notes["dropped"].append(label)
            warn(f"{src}: {label} cannot be stored in {muxer}; dropped")
            continue
        copy.append(s)
    return copy, plan, notes


def _run(upscaler, container, in_stream, out, info, codec, pix_fmt, hw, crf, frames, time, progress, warn, dst):
    import av

    muxer = out.format.name
    vs = _add_video_stream(out, in_stream, codec, pix_fmt, hw, crf, info)
    copy, plan, notes = _plan_other_streams(container, out, muxer, warn, info.path)
    total = info.frames
    if frames is not None:
        total = max(0, min(total, frames[1] if frames[1] is not None else total) - frames[0]) if total else None
    elif time is not None and info.fps:
        end = time[1] if time[1] is not None else (info.duration or 0)
        total = max(0, round((end - time[0]) * info.fps))
    pipe = _Pipeline()
    shift = {"seconds": None}  # the first kept frame's time, subtracted from every timestamp of a part
    partial = frames is not None or time is not None

    def decode_stage():
        for item in _demux(container, in_stream, info.path, frames, time, copy):
            if not pipe.put(pipe.decoded, item):
                return
        pipe.put(pipe.decoded, _STOP)

    def encode_stage():
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
        for kind, target in plan.values():
            if kind == "encode":
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


def _offset(shift: dict, time_base) -> int:
    return int(round((shift["seconds"] or 0.0) / time_base))


def _mux_other(out, plan, packet, shift, partial: bool) -> None:
    kind, target = plan[packet.stream.index]
    if partial:
        off = _offset(shift, packet.time_base)
        if packet.pts is not None and packet.pts - off < 0:
            return
        packet.pts = packet.pts - off if packet.pts is not None else None
        packet.dts = packet.dts - off if packet.dts is not None else None
    if kind == "copy":
        packet.stream = target
        out.mux(packet)
    else:
        for p in target.packets(packet):
            out.mux(p)
