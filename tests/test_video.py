"""Video and animated images (issue 11), at the library level, on tiny clips made here with PyAV.

The clips are real H.264 / AAC / FFV1 files; the model is the official EDSR-baseline-LIIF checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import MODEL_PATH, ROOT
from PIL import Image

av = pytest.importorskip("av")

from liif_cli import load_model  # noqa: E402
from liif_cli.animated import read_animation, upscale_animation  # noqa: E402
from liif_cli.errors import INTERRUPTED_EXIT_CODE, InputError, UsageError, flag_name  # noqa: E402
from liif_cli.video import iter_frames, probe, upscale_video  # noqa: E402
from liif_cli.video.reading import check_range, range_check  # noqa: E402
from liif_cli.video.writing import CODECS, check_crf, check_out_size, choose_codec, choose_pix_fmt  # noqa: E402

pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF

RATE = Fraction(24000, 1001)


def make_audio_only(path: Path, encoder: str, *, samples: int, sample_format: str, frames: int) -> Path:
    """A file with one silent mono audio stream and no video: `frames` frames of `samples` samples."""
    with av.open(str(path), "w") as out:
        a = out.add_stream(encoder, rate=48000)
        for i in range(frames):
            af = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format=sample_format, layout="mono")
            af.sample_rate, af.pts = 48000, i * samples
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    return path


def make_clip(path: Path, *, n=12, w=32, h=24, rotation=90, audio=True, codec="libx264", pix_fmt="yuv420p", pts=None):
    """A real clip: moving bars on noise at 24000/1001 fps, optional AAC stereo, a display-matrix rotation."""
    out = av.open(str(path), "w")
    v = out.add_stream(codec, rate=RATE)
    v.width, v.height, v.pix_fmt = w, h, pix_fmt
    if pts is not None:
        v.codec_context.time_base = Fraction(1, 24000)
    if rotation:
        v.set_display_rotation(rotation)
    a = None
    if audio:
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
        img[..., 0] += np.uint8(i * 5 % 190)
        img[h // 4 : h // 2, (2 * i) % w : (2 * i) % w + 6] = 230
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        if pts is not None:
            frame.pts, frame.time_base = pts[i], Fraction(1, 24000)
        for p in v.encode(frame):
            out.mux(p)
    for p in v.encode():
        out.mux(p)
    if a is not None:
        t = 0
        for _ in range(int(n / RATE * 48000) // 1024):
            s = (np.sin((np.arange(1024) + t) * 0.05) * 0.1).astype(np.float32)[None].repeat(2, 0)
            af = av.AudioFrame.from_ndarray(s, format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, t
            t += 1024
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    out.close()
    return path


def packets(path: Path, kind: str) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as c:
        s = c.streams.get(**{kind: 0})[0]
        return [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(s) if p.dts is not None]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or "liif-tmp" in p.name)


@pytest.fixture(scope="module")
def up():
    return load_model(MODEL_PATH, device="cpu", precision="fp32")


def test_mp4_keeps_frames_rate_duration_rotation_and_audio(up, tmp_path):
    src = make_clip(tmp_path / "clip.mp4", w=24, h=16)
    dst = tmp_path / "big.mp4"
    seen = []
    result = upscale_video(
        up,
        src,
        dst,
        size=lambda hw: (round(hw[0] * 1.5), round(hw[1] * 1.5)),
        progress=lambda d, t: seen.append((d, t)),
    )
    a, b = probe(src), probe(dst)
    assert (b.width, b.height) == (36, 24)
    assert b.frames == a.frames == 12 and result.frames == 12
    assert b.fps == a.fps == RATE
    assert b.duration == pytest.approx(a.duration, abs=1e-3)
    assert b.rotation == a.rotation == 90
    assert (b.color_primaries, b.color_trc, b.colorspace) == (a.color_primaries, a.color_trc, a.colorspace)
    assert packets(dst, "audio") == packets(src, "audio")  # copied, not re-encoded
    assert result.copied == ("audio #1 (aac)",)
    assert seen[-1] == (12, 12)
    assert leftovers(tmp_path) == []


def test_ffv1_frames_equal_the_still_path_and_keep_vfr_timestamps(up, tmp_path):
    pts = [0, 1001, 3003, 4004, 8008]  # variable frame rate
    src = make_clip(tmp_path / "vfr.mkv", n=5, w=24, h=16, rotation=0, audio=False, pts=pts)
    dst = tmp_path / "big.mkv"
    upscale_video(up, src, dst, out_hw=(24, 36), codec="ffv1")
    ins, outs = list(iter_frames(src)), list(iter_frames(dst))
    assert [f.time for f in ins] == pytest.approx([p / 24000 for p in pts], abs=1e-3)  # Matroska counts in ms
    assert [f.time for f in outs] == pytest.approx([f.time for f in ins], abs=1e-9)
    assert [f.time for f in iter_frames(src, time=(0.04, 0.2))] == [ins[1].time, ins[2].time, ins[3].time]
    assert [f.index for f in iter_frames(src, frames=(3, None))] == [3, 4]
    for i, o in zip(ins, outs, strict=True):
        still = up.upscale_array(i.rgb.astype(np.float32) / 255, (24, 36), dtype=np.uint8)
        np.testing.assert_array_equal(o.rgb, still)


def test_ten_bit_input_stays_ten_bit(up, tmp_path):
    src = make_clip(tmp_path / "deep.mkv", n=2, w=16, h=16, rotation=0, audio=False, pix_fmt="yuv420p10le")
    assert probe(src).bit_depth == 10
    assert next(iter_frames(src)).rgb.dtype == np.uint16
    upscale_video(up, src, tmp_path / "deep_h264.mkv", out_hw=(24, 24))
    out = probe(tmp_path / "deep_h264.mkv")
    assert (out.pix_fmt, out.bit_depth) == ("yuv420p10le", 10)
    upscale_video(up, src, tmp_path / "deep_ffv1.mkv", out_hw=(24, 24), codec="ffv1")
    assert probe(tmp_path / "deep_ffv1.mkv").bit_depth == 16


def test_webm_reencodes_aac_and_says_so(up, tmp_path):
    src = make_clip(tmp_path / "clip.mp4", n=6, w=16, h=12)
    said = []
    result = upscale_video(up, src, tmp_path / "part.webm", out_hw=(24, 32), frames=(2, 5), warn=said.append)
    assert result.codec == "vp9" and result.reencoded == ("audio #1 (aac)",)
    assert any("re-encoded as libopus" in s for s in said)
    assert probe(tmp_path / "part.webm").audio_streams == 1
    assert [f.index for f in iter_frames(tmp_path / "part.webm")] == [0, 1, 2]


@pytest.mark.parametrize("ext", ["gif", "png"])
def test_animation_keeps_count_durations_loop_and_disposal(up, tmp_path, ext):
    rng = np.random.default_rng(1)
    frames = [Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    disposal = [1, 2, 1] if ext == "gif" else [0, 1, 0]
    src = tmp_path / f"anim.{ext}"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=2, disposal=disposal)
    dst = tmp_path / f"big.{ext}"
    upscale_animation(up, src, dst, size=lambda hw: (hw[0] * 2, hw[1] * 2))
    a, b = read_animation(src), read_animation(dst)
    assert len(b.frames) == 3 and b.frames[0].size == (32, 24)
    assert b.durations == a.durations == [100, 200, 300]
    assert b.loop == a.loop == 2
    assert b.disposals == a.disposals == disposal


def test_truncated_audio_only_and_absurd_sizes_are_one_line_errors(up, tmp_path):
    src = make_clip(tmp_path / "clip.mp4", n=4, w=16, h=12)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    audio_only = make_audio_only(tmp_path / "sound.mp4", "aac", samples=1024, sample_format="fltp", frames=5)
    before = sorted(p.name for p in tmp_path.iterdir())
    for bad, words in ((cut, "not a readable video"), (audio_only, "has no video stream")):
        with pytest.raises(InputError, match=words) as err:
            upscale_video(up, bad, tmp_path / "out.mp4", out_hw=(24, 32))
        assert err.value.exit_code == 3 and "\n" not in str(err.value)
    with pytest.raises(UsageError, match="cannot hold a 100000x90000 video") as err:
        upscale_video(up, src, tmp_path / "out.mp4", out_hw=(90000, 100000))
    assert err.value.exit_code == 2
    with pytest.raises(InputError, match="over the limit") as err:
        upscale_video(up, src, tmp_path / "out.mp4", out_hw=(24, 32), max_pixels=100)
    assert err.value.exit_code == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_video_errors_name_parameters_and_the_cli_shows_flags(tmp_path):
    """Each check of a video option names its parameter; the library's text speaks of neither face, the CLI's
    rendering (`render(flag_name)`) names the flags."""
    info = probe(make_clip(tmp_path / "clip.mp4", n=4, w=16, h=12, rotation=0, audio=False))
    h264 = CODECS["h264"]
    cases = [
        (lambda: range_check((5, 2), None), ("frames",), "--frames range 5:2 is empty or negative"),
        (lambda: range_check((1, 2), (0.0, 1.0)), ("frames", "time"), "give --frames or --time, not both"),
        (lambda: check_range(info, (10, None), None), ("frames",), f"{info.path}: --frames 10: selects no frame"),
        (lambda: check_range(info, None, (100.0, None)), ("time",), f"{info.path}: --time 100: selects no frame"),
        (lambda: choose_codec("mp4", "x"), ("codec",), "unknown --codec 'x' (use one of h264, h265, vp9, av1, ffv1)"),
        (lambda: check_crf(CODECS["ffv1"], 3), ("crf",), "ffv1 is lossless and takes no --crf"),
        (lambda: check_crf(h264, 60), ("crf",), "--crf for h264 must be between 0 and 51, got 60"),
        (lambda: choose_pix_fmt(h264, info, "rgb9", print), ("pix_fmt",), "h264 cannot encode pixel format 'rgb9'"),
        (
            lambda: check_out_size(h264, "yuv420p", (400, 500), 1000),
            ("max_out_pixels",),
            "output video 500x400 (0.2 MP) is over the limit of 1000 pixels (raise it with --max-out-pixels)",
        ),
    ]
    for call, params, shown in cases:
        with pytest.raises(UsageError) as caught:
            call()
        assert caught.value.params == params and "--" not in str(caught.value), shown
        assert caught.value.render(flag_name).startswith(shown)
    check_crf(h264, None)
    check_crf(h264, 51)


def test_ctrl_c_mid_video_leaves_nothing(tmp_path):
    src = make_clip(tmp_path / "long.mp4", n=200, w=32, h=24, audio=False)
    script = textwrap.dedent(
        f"""
        import sys
        from liif_cli import load_model
        from liif_cli.errors import INTERRUPTED_EXIT_CODE
        from liif_cli.video import upscale_video
        up = load_model({str(MODEL_PATH)!r}, device="cpu", precision="fp32")
        def progress(done, total):
            print("frame", done, flush=True)
        try:
            upscale_video(up, {str(src)!r}, {str(tmp_path / "out.mp4")!r}, out_hw=(48, 64), progress=progress)
        except KeyboardInterrupt:
            sys.exit(INTERRUPTED_EXIT_CODE)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().startswith("frame")  # mid-video: the first frame is encoded
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == INTERRUPTED_EXIT_CODE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]
