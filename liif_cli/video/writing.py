"""Writing a video: output codecs and pixel formats, the upscaled stream's settings, and what becomes of
the audio and subtitle streams (copied, re-encoded or dropped).

These are choices made before the first frame is encoded, and checks that fail early (a size the codec
cannot hold, a crf out of range); the streaming itself is `pipeline.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..sizes import check_output_pixels
from .reading import VideoInfo

if TYPE_CHECKING:  # PyAV is imported where it is used, so that `liif --help` never loads it
    from av.audio.layout import AudioLayout
    from av.audio.stream import AudioStream
    from av.container import InputContainer, OutputContainer
    from av.packet import Packet
    from av.stream import Stream
    from av.video.stream import VideoStream

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


def choose_codec(muxer: str, codec: str | None) -> Codec:
    name = (codec or DEFAULT_CODEC.get(muxer, "h264")).lower()
    aliases = {"hevc": "h265", "x264": "h264", "x265": "h265", "vp09": "vp9", "svt-av1": "av1"}
    try:
        return CODECS[aliases.get(name, name)]
    except KeyError:
        raise UsageError(f"unknown {{codec}} '{codec}' (use one of {', '.join(CODECS)})", param="codec") from None


def choose_pix_fmt(codec: Codec, info: VideoInfo, pix_fmt: str | None, warn: Warn) -> str:
    import av

    supported = {f.name for f in av.codec.Codec(codec.encoder, "w").video_formats or ()}
    if pix_fmt is not None:
        if pix_fmt not in supported:
            raise UsageError(
                f"{codec.name} cannot encode pixel format '{pix_fmt}' (it takes {', '.join(sorted(supported))})",
                param="pix_fmt",
            )
        return pix_fmt
    if codec.name == "ffv1":
        return codec.pix_fmt_hi if info.bit_depth > 8 and codec.pix_fmt_hi else codec.pix_fmt_8
    if info.pix_fmt in supported:
        return info.pix_fmt  # keeps chroma subsampling and depth
    if info.bit_depth > 8:
        if codec.pix_fmt_hi:
            return codec.pix_fmt_hi
        warn(f"{info.path}: {codec.name} holds 8 bits here; the {info.bit_depth}-bit input is reduced to 8 bits")
    return codec.pix_fmt_8


def check_out_size(codec: Codec, pix_fmt: str, out_hw: tuple[int, int], max_out_pixels: int | None) -> None:
    import av

    h, w = out_hw
    if max(h, w) > codec.max_side:
        raise UsageError(f"{codec.name} cannot hold a {w}x{h} video (at most {codec.max_side} px a side)")
    check_output_pixels(w, h, max_out_pixels, "output video")
    probe_fmt = av.VideoFormat(pix_fmt, 64, 64)  # the chroma plane's size tells the subsampling
    sub_w, sub_h = 64 // probe_fmt.chroma_width(), 64 // probe_fmt.chroma_height()
    if w % sub_w or h % sub_h:
        raise UsageError(
            f"{w}x{h} cannot be encoded as {pix_fmt} (chroma subsampling needs sides divisible by "
            f"{sub_w} and {sub_h}); pick an even size or a 4:4:4 pixel format",
            param="pix_fmt",
        )


def check_crf(codec: Codec, crf: int | None) -> None:
    """UsageError about `crf` when the codec takes none (lossless) or it is outside the codec's range."""
    if crf is None:
        return
    if codec.crf_range is None:
        raise UsageError(f"{codec.name} is lossless and takes no {{crf}}", param="crf")
    lo, hi = codec.crf_range
    if not lo <= crf <= hi:
        raise UsageError(f"{{crf}} for {codec.name} must be between {lo} and {hi}, got {crf}", param="crf")


def add_video_stream(
    out: OutputContainer,
    in_stream: VideoStream,
    codec: Codec,
    pix_fmt: str,
    out_hw: tuple[int, int],
    crf: int | None,
    info: VideoInfo,
) -> VideoStream:
    from av.video.stream import VideoStream

    cc_in = in_stream.codec_context
    rate = in_stream.average_rate or in_stream.guessed_rate or Fraction(25)
    options = dict(codec.options)
    check_crf(codec, crf)
    if codec.default_crf is not None:
        options["crf"] = str(codec.default_crf if crf is None else crf)
    vs = out.add_stream(codec.encoder, rate=rate, options=options)
    assert isinstance(vs, VideoStream), f"{codec.encoder} is a video encoder"
    vs.height, vs.width = out_hw
    vs.pix_fmt = pix_fmt
    vs.time_base = in_stream.time_base
    if in_stream.time_base is not None:  # (the codec context takes no None: PyAV fails on it)
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


# FFmpeg's default layout for a channel count (av_channel_layout_default), for streams that carry none
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def ordered_layout(layout: AudioLayout) -> str | None:
    """The default layout for a layout whose channels have no order (PCM from Matroska or WAV reads as
    '2 channels'), else None. MP4 and MOV refuse to close a file with such an audio stream, copied or encoded."""
    if layout.channels and all(c.name == "NONE" for c in layout.channels):
        return DEFAULT_LAYOUTS.get(len(layout.channels))
    return None


class AudioReencoder:
    """Decode an audio stream the output container cannot hold and encode it with the container's codec."""

    def __init__(self, out: OutputContainer, in_stream: AudioStream, encoder: str):
        import av
        from av.audio.stream import AudioStream

        codec = av.codec.Codec(encoder, "w")
        rates = codec.audio_rates or ()
        rate = in_stream.rate if not rates or in_stream.rate in rates else 48000
        stream = out.add_stream(encoder, rate=rate)
        assert isinstance(stream, AudioStream), f"{encoder} is an audio encoder"
        self.stream = stream
        layout = (
            (ordered_layout(in_stream.layout) or in_stream.layout.name)
            if in_stream.layout.nb_channels <= 2
            else "stereo"
        )
        self.stream.layout = layout
        fmt = (codec.audio_formats or [self.stream.format])[0].name  # (an encoder that lists none: its default)
        self.stream.format = fmt
        self.resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        self.in_stream = in_stream

    def packets(self, packet: Packet | None) -> list[Packet]:
        """The re-encoded packets of one input packet; None: flush the resampler and the encoder."""
        out: list[Packet] = []
        frames = self.in_stream.decode(packet) if packet is not None else [None]
        for frame in frames:
            for rf in self.resampler.resample(frame):
                out.extend(self.stream.encode(rf))
        if packet is None:
            out.extend(self.stream.encode(None))
        return out


Plan = dict[int, "Stream | AudioReencoder"]
"""Input stream index -> the output stream its packets are copied into, or the re-encoder they go through."""


def plan_other_streams(
    container: InputContainer, out: OutputContainer, muxer: str, warn: Warn, src: Path
) -> tuple[list[Stream], Plan, dict[str, list[str]]]:
    """Output streams for audio and subtitles: copied when the muxer takes the codec, else re-encoded or dropped.

    (the input streams whose packets to demux, the plan for each, labels of the copied, re-encoded and dropped)"""
    from av.audio.stream import AudioStream

    supported = out.supported_codecs
    copy: list[Stream] = []
    plan: Plan = {}
    notes: dict[str, list[str]] = {"copied": [], "reencoded": [], "dropped": []}
    for s in container.streams:
        if s.type not in ("audio", "subtitle"):
            continue
        label = f"{s.type} #{s.index} ({s.codec_context.name if s.codec_context else '?'})"
        name = s.codec_context.name if s.codec_context else None
        if name in supported:
            copied = out.add_stream_from_template(s)
            if isinstance(s, AudioStream) and isinstance(copied, AudioStream):
                layout = ordered_layout(s.layout)
                if layout is not None:  # the same samples, their channels given the order the muxer needs
                    copied.codec_context.layout = layout
            plan[s.index] = copied
            notes["copied"].append(label)
        elif isinstance(s, AudioStream) and s.codec_context is not None and muxer in AUDIO_FALLBACK:
            plan[s.index] = AudioReencoder(out, s, AUDIO_FALLBACK[muxer])
            notes["reencoded"].append(label)
            warn(f"{src}: {label} cannot be copied into {muxer}; re-encoded as {AUDIO_FALLBACK[muxer]}")
        else:
            notes["dropped"].append(label)
            warn(f"{src}: {label} cannot be stored in {muxer}; dropped")
            continue
        copy.append(s)
    return copy, plan, notes
