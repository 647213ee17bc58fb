"""`liif upscale` on videos and animated images, end to end through the CLI (issue 11 integration).

Tiny real clips made with PyAV (tests/test_video.py's `make_clip`), real animated GIF / APNG files, and the
official EDSR-baseline-LIIF checkpoint; no mocks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import MODEL_PATH, ROOT
from PIL import Image

av = pytest.importorskip("av")

from test_video import RATE, leftovers, make_audio_only, make_clip, packets  # noqa: E402

from liif_cli.animated import read_animation  # noqa: E402
from liif_cli.cli import main  # noqa: E402
from liif_cli.errors import INTERRUPTED_EXIT_CODE  # noqa: E402
from liif_cli.video import iter_frames, probe  # noqa: E402

pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF
MODEL = ["--model", str(MODEL_PATH), "--device", "cpu", "--precision", "fp32"]


def run(*args):
    result = CliRunner().invoke(main, ["upscale", *map(str, args), *MODEL], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def animation(path: Path, n: int = 3, **save) -> Path:
    rng = np.random.default_rng(len(path.name))
    frames = [Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)) for _ in range(n)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 200, 300][:n], loop=2, **save)
    return path


def test_plan_probes_named_files_and_names_outputs_by_container(tmp_path):
    from liif_cli.batch import BatchOptions, SizeSpec, VideoOptions, plan_batch

    clip = make_clip(tmp_path / "clip.mp4", n=2, w=16, h=12, rotation=0, audio=False)
    raw = tmp_path / "raw.bin"
    raw.write_bytes(clip.read_bytes())  # a video by its content, not its name
    anim = animation(tmp_path / "anim.gif")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "one.gif")  # one frame: a still
    inputs = [clip, raw, anim, tmp_path / "one.gif"]
    jobs = plan_batch(inputs, BatchOptions(spec=SizeSpec(scale=2.0), ext="webp", video=VideoOptions(codec="vp9")))
    assert [(j.kind, j.output.name) for j in jobs] == [
        ("video", "clip_x2.mp4"),  # --ext is for images: a video keeps its container
        ("video", "raw_x2.mkv"),
        ("animation", "anim_x2.webp"),
        ("still", "one_x2.webp"),
    ]
    jobs = plan_batch([anim], BatchOptions(spec=SizeSpec(scale=2.0), ext="jpg"))
    assert "cannot be written as .jpg" in str(jobs[0].error)
    stills = plan_batch([tmp_path], BatchOptions(spec=SizeSpec(scale=2.0), media=False))  # what `liif serve` plans
    assert [(j.kind, j.input.name) for j in stills] == [("still", "anim.gif"), ("still", "one.gif")]


def test_codec_choices_are_the_library_codecs():
    from liif_cli.choices import VIDEO_CODECS
    from liif_cli.video import CODECS

    assert VIDEO_CODECS == tuple(CODECS)  # --help and completion offer exactly what the library encodes


def test_mp4_at_1_5x_keeps_frames_rate_duration_rotation_and_audio(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", n=24, w=64, h=48)
    result = run(src, "--scale", "1.5")
    assert result.exit_code == 0, result.stderr
    dst = tmp_path / "clip_x1.5.mp4"
    a, b = probe(src), probe(dst)
    assert (b.width, b.height) == (96, 72)
    assert b.frames == a.frames == 24
    assert b.fps == a.fps == RATE
    assert b.duration == pytest.approx(a.duration, abs=1e-3)
    assert b.rotation == a.rotation == 90
    assert packets(dst, "audio") == packets(src, "audio")
    assert "96x72, 24 frames" in result.stderr and "copied unchanged: audio #1 (aac)" in result.stderr
    assert leftovers(tmp_path) == []


def pcm_mkv(path: Path, channels: int) -> Path:
    """A Matroska clip (4 FFV1 frames) with a PCM track of `channels` channels, a different tone in each:
    Matroska stores no channel order, so the track reads back as 'N channels' as real MKV and WAV PCM does."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("ffv1", rate=10)
        v.width, v.height, v.pix_fmt = 16, 12, "yuv420p"
        a = out.add_stream("pcm_s16le", rate=8000)
        a.layout = f"{channels} channels"
        for i in range(4):
            for p in v.encode(av.VideoFrame.from_ndarray(np.full((12, 16, 3), i * 40, np.uint8), format="rgb24")):
                out.mux(p)
        tones = np.sin(np.arange(3200)[:, None] * 0.1 * np.arange(1, channels + 1)) * 3000
        frame = av.AudioFrame.from_ndarray(tones.astype(np.int16).reshape(1, -1), format="s16", layout=a.layout)
        frame.sample_rate = 8000
        for p in [*a.encode(frame), *a.encode(), *v.encode()]:
            out.mux(p)
    with av.open(str(path)) as c:
        assert c.streams.audio[0].layout.name == f"{channels} channels"
    return path


@pytest.mark.parametrize("ext", ["mp4", "mov", "mkv"])
def test_pcm_audio_without_a_channel_order_is_copied_into_mp4_and_mov(tmp_path, ext):
    """Matroska (and WAV) PCM carries no channel order ('2 channels'); MP4 and MOV refused to close such a file
    (an internal error after the whole video was upscaled). The samples are copied with the default order."""
    src = pcm_mkv(tmp_path / "pcm.mkv", 2)
    result = run(src, "--scale", "2", "-o", tmp_path / f"out.{ext}")
    assert result.exit_code == 0, result.stderr
    dst = tmp_path / f"out.{ext}"
    with av.open(str(dst)) as c:
        audio = c.streams.audio[0]
        assert (audio.codec_context.name, audio.layout.nb_channels) == ("pcm_s16le", 2)
        assert audio.layout.name == ("2 channels" if ext == "mkv" else "stereo")  # Matroska stores no order
    assert b"".join(p for _, p in packets(dst, "audio")) == b"".join(p for _, p in packets(src, "audio"))
    assert "copied unchanged: audio #1 (pcm_s16le)" in result.stderr and leftovers(tmp_path) == []


def test_a_stream_the_muxer_cannot_finish_is_an_output_error_and_leaves_nothing(tmp_path):
    """Nine unordered PCM channels have no default layout: MP4 refuses them only when the file is closed, after
    the upscale. That is one line, exit 4 (not an internal error), and no file; .mkv, as the line says, takes it."""
    src = pcm_mkv(tmp_path / "pcm9.mkv", 9)
    result = run(src, "--scale", "2", "-o", tmp_path / "out.mp4")
    assert result.exit_code == 4, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'out.mp4'}: mp4 refused to finish the file (") and ".mkv" in last
    assert "internal error" not in result.stderr and not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []
    assert run(src, "--scale", "2", "-o", tmp_path / "out.mkv").exit_code == 0


def test_folder_with_a_still_a_clip_a_gif_and_an_apng(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(src / "still.png")
    make_clip(src / "sub" / "clip.mkv", n=4, w=16, h=12, rotation=0)
    animation(src / "anim.gif")
    animation(src / "moving.png", default_image=False)
    (src / "notes.txt").write_text("not an input")
    result = run(src, "-r", "--scale", "2", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "anim_x2.gif",
        "moving_x2.png",
        "still_x2.png",
        "sub/clip_x2.mkv",
    ]
    assert Image.open(out / "still_x2.png").size == (32, 24)
    info = probe(out / "sub" / "clip_x2.mkv")
    assert (info.width, info.height, info.container) == (32, 24, "matroska,webm")
    assert len(list(iter_frames(out / "sub" / "clip_x2.mkv"))) == 4
    for name in ("anim_x2.gif", "moving_x2.png"):
        anim = read_animation(out / name)
        assert len(anim.frames) == 3 and anim.frames[0].size == (32, 24)
        assert anim.durations == [100, 200, 300] and anim.loop == 2
    assert "3 frames" in result.stderr


def test_truncated_mp4_fails_alone_and_the_others_are_written(tmp_path):
    good = make_clip(tmp_path / "good.mp4", n=3, w=16, h=12, rotation=0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    Image.fromarray(np.full((12, 16, 3), 40, np.uint8)).save(tmp_path / "still.png")
    sound = make_audio_only(tmp_path / "sound.mkv", "libopus", samples=960, sample_format="flt", frames=3)
    result = run(cut, good, tmp_path / "still.png", sound, "--scale", "2")
    assert result.exit_code == 1
    assert "not a readable video" in result.stderr and "has no video stream" in result.stderr
    assert "2 written, 0 skipped, 2 failed" in result.stderr
    assert probe(tmp_path / "good_x2.mp4").frames == 3
    assert Image.open(tmp_path / "still_x2.png").size == (32, 24)
    assert not (tmp_path / "cut_x2.mp4").exists() and not (tmp_path / "sound_x2.mkv").exists()
    assert leftovers(tmp_path) == []
    single = run(cut, "--scale", "2")  # alone, the file's own error and exit code
    assert single.exit_code == 3 and single.stderr.splitlines()[-1].startswith("error: ")


def test_frames_and_time_render_a_part_with_the_chosen_codec(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", n=10, w=16, h=12, rotation=0, audio=False)
    quiet = run(src, "--scale", "2", "--frames", "2:5", "--codec", "ffv1", "--suffix", "f", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    part = probe(tmp_path / "clip_f.mp4")
    assert (part.codec, part.frames, part.width) == ("ffv1", 3, 32)
    # lossless: each frame is `liif upscale` of that decoded frame as a still, pixel for pixel
    stills = tmp_path / "stills"
    stills.mkdir()
    for f in iter_frames(src, frames=(2, 5)):
        Image.fromarray(f.rgb).save(stills / f"{f.index}.png")
    assert run(stills, "--scale", "2", "-q").exit_code == 0
    for i, f in enumerate(iter_frames(tmp_path / "clip_f.mp4")):
        np.testing.assert_array_equal(f.rgb, np.asarray(Image.open(stills / f"{i + 2}_x2.png")))
    shutil.rmtree(stills)
    assert run(src, "--scale", "2", "--time", "0.2:", "--crf", "30", "--suffix", "t").exit_code == 0
    times = [f.time for f in iter_frames(tmp_path / "clip_t.mp4")]
    assert len(times) == 10 - round(0.2 * RATE) and times[0] == 0.0
    bad = run(src, "--scale", "2", "--frames", "5:2")
    assert bad.exit_code == 2 and "empty" in bad.stderr
    both = run(src, "--scale", "2", "--frames", "1:2", "--time", "0:1")
    assert both.exit_code == 2 and "error: give --frames or --time, not both\n" in both.stderr
    crf = run(src, "--scale", "2", "--codec", "ffv1", "--crf", "3")
    assert crf.exit_code == 2 and "error: ffv1 is lossless and takes no --crf\n" in crf.stderr
    late = run(src, "--scale", "2", "--frames", "50:")
    assert (late.exit_code, late.stderr) == (2, f"error: {src}: --frames 50: selects no frame (the clip has 10)\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "still.png")
    stills = run(tmp_path / "still.png", "--scale", "2", "--codec", "h265")
    assert stills.exit_code == 2 and "applies to videos only" in stills.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip_f.mp4", "clip_t.mp4", "still.png"]


def test_python_api_video_methods(tmp_path):
    import liif_cli
    from liif_cli import load_model

    src = make_clip(tmp_path / "clip.mkv", n=3, w=16, h=12, rotation=0, audio=False)
    up = load_model(MODEL_PATH, device="cpu", precision="fp32")
    result = up.upscale_video(src, tmp_path / "big.mkv", out_hw=(24, 32), codec="ffv1")
    assert result.frames == 3 and (result.width, result.height) == (32, 24)
    pairs = list(up.iter_video(src, out_hw=(24, 32), frames=(1, None)))
    assert [f.index for f, _ in pairs] == [1, 2] and pairs[0][1].shape == (24, 32, 3)
    frames_out = [f.rgb for f in iter_frames(tmp_path / "big.mkv")]
    np.testing.assert_array_equal(frames_out[1], pairs[0][1])  # ffv1: the file holds exactly the iterator's pixels
    assert liif_cli.iter_upscaled is not None and liif_cli.upscale_video is not None


def test_ctrl_c_mid_video_through_the_cli_leaves_nothing(tmp_path):
    src = make_clip(tmp_path / "long.mp4", n=200, w=32, h=24, audio=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "liif_cli", "upscale", str(src), "--scale", "2", *MODEL]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size > 0 for p in tmp_path.glob(".*.liif-tmp")):  # the output is being written
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == INTERRUPTED_EXIT_CODE
    assert proc.stderr.read().strip().splitlines()[-1] == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]
