"""Output names: one table of what `upscale` (stills, videos, animations), `render` and `encode` name their
outputs, through the planner on real files, and the rules of `liif_cli.naming` that the planner asks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liif_cli.batch import BatchOptions, plan_batch
from liif_cli.sizes import SizeSpec

RNG = np.random.default_rng(3)


def still(path: Path) -> Path:
    Image.fromarray((RNG.random((6, 8, 3)) * 255).astype(np.uint8)).save(path)
    return path


def animation(path: Path) -> Path:
    frames = [Image.fromarray((RNG.random((6, 8, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return path


def clip(path: Path) -> Path:
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray((RNG.random((16, 16, 3)) * 255).astype(np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


# (input file, kind, size, --suffix, --ext) -> the output's name beside the input
UPSCALE_NAMES = [
    ("photo.jpg", still, SizeSpec(scale=2.0), None, "auto", "photo_x2.jpg"),
    ("photo.jpg", still, SizeSpec(scale=7.5), None, "auto", "photo_x7.5.jpg"),
    ("photo.jpg", still, SizeSpec(scale=(2.0, 3.0)), None, "auto", "photo_x2x3.jpg"),
    ("photo.jpg", still, SizeSpec(size=(4000, 3000)), None, "auto", "photo_4000x3000.jpg"),
    ("photo.jpg", still, SizeSpec(width=640), None, "auto", "photo_w640.jpg"),
    ("photo.jpg", still, SizeSpec(height=300), None, "auto", "photo_h300.jpg"),
    (
        "photo.jpg",
        still,
        SizeSpec(scale=20.0, region=(1200, 800.5, 64, 48)),
        None,
        "auto",
        "photo_r1200,800.5,64,48_x20.jpg",
    ),
    ("photo.jpg", still, SizeSpec(scale=2.0), "big", "auto", "photo_big.jpg"),
    ("photo.jpg", still, SizeSpec(scale=2.0), "", "png", "photo.png"),
    ("photo.jpg", still, SizeSpec(scale=2.0), None, "webp", "photo_x2.webp"),
    ("photo.jpg", still, SizeSpec(scale=2.0), None, "tif", "photo_x2.tif"),
    ("scan.bmp", still, SizeSpec(scale=2.0), None, "auto", "scan_x2.png"),  # BMP is read, not written
    ("scan.TIFF", still, SizeSpec(scale=2.0), None, "auto", "scan_x2.tiff"),
    ("logo.gif", still, SizeSpec(scale=2.0), None, "auto", "logo_x2.png"),  # one frame: a still
    ("anim.gif", animation, SizeSpec(scale=2.0), None, "auto", "anim_x2.gif"),  # an animation keeps its format
    ("anim.gif", animation, SizeSpec(scale=2.0), None, "webp", "anim_x2.webp"),
    ("anim.webp", animation, SizeSpec(width=32), None, "png", "anim_w32.png"),
    ("clip.mp4", clip, SizeSpec(scale=2.0), None, "auto", "clip_x2.mp4"),
    ("clip.mp4", clip, SizeSpec(scale=2.0), None, "png", "clip_x2.mp4"),  # --ext is for images
    ("clip.mkv", clip, SizeSpec(height=32), "hd", "auto", "clip_hd.mkv"),
]


@pytest.mark.parametrize(("name", "make", "spec", "suffix", "ext", "expected"), UPSCALE_NAMES)
def test_upscale_names_its_outputs(tmp_path, name, make, spec, suffix, ext, expected):
    src = make(tmp_path / name)
    (job,) = plan_batch([src], BatchOptions(spec=spec, suffix=suffix, ext=ext))
    assert job.error is None and job.skip is None
    assert job.output == tmp_path / expected


def test_upscale_names_in_a_mirrored_folder_and_several_sizes(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    still(tmp_path / "in" / "sub" / "a.png")
    opts = BatchOptions(spec=[SizeSpec(width=64), SizeSpec(scale=2.0)], output=tmp_path / "out", recursive=True)
    jobs = plan_batch([tmp_path / "in"], opts)
    assert [j.output for j in jobs] == [tmp_path / "out" / "sub" / "a_w64.png", tmp_path / "out" / "sub" / "a_x2.png"]
    (tmp_path / "in" / "sub" / "a_x2.png").write_bytes((tmp_path / "in" / "sub" / "a.png").read_bytes())
    jobs = plan_batch([tmp_path / "in"], opts)  # a file named like an output is taken for an earlier one
    assert [(j.input.name, str(j.skip)) for j in jobs if j.earlier_output] == [
        ("a_x2.png", "looks like an output of this command (name ends in _x2)")
    ]


def test_an_animation_asked_for_as_jpeg_is_refused_by_name(tmp_path):
    src = animation(tmp_path / "anim.gif")
    (job,) = plan_batch([src], BatchOptions(spec=SizeSpec(scale=2.0), ext="jpg"))
    assert job.error is not None and "cannot be written as .jpg" in str(job.error)


def test_the_rules_the_commands_ask():
    from liif_cli import naming

    assert naming.output_name("photo", "x2", ".jpg") == "photo_x2.jpg"
    assert naming.output_name("photo", "", ".png") == naming.output_name("photo", None, ".png") == "photo.png"
    assert naming.suffixes([SizeSpec(scale=2.0), SizeSpec(width=640)]) == ["x2", "w640"]
    assert naming.suffixes([SizeSpec(scale=2.0)], "big") == ["big"]
    assert naming.output_extension(Path("a.JPEG"), "auto") == ".jpeg"
    assert naming.output_extension(Path("a.bmp"), "auto") == ".png"
    assert naming.output_extension(Path("a.bmp"), "tiff") == ".tiff"
    assert naming.media_extension(Path("c.avi"), "video", "png") == ".avi"
    assert naming.media_extension(Path("c.m2ts"), "video", "auto") == ".mkv"  # read, not written by that name
    assert naming.media_extension(Path("a.apng"), "animation", "auto") == ".apng"
    assert naming.media_extension(Path("a.gif"), "animation", "jpg") is None
    assert naming.looks_like_output(Path("a_x2.png"), ["x2"]) == "x2"
    assert naming.looks_like_output(Path("a_x2.png"), ["", "w64"]) is None
    # encode and render (`liif encode photo.jpg`, `liif render photo.liif --width 640`)
    assert naming.encoding_path(Path("shots/photo.jpg")) == Path("shots/photo.liif")
    assert naming.render_name(Path("shots/photo.liif"), SizeSpec(width=640).tag()) == "photo_w640.png"
    region = SizeSpec(scale=20.0, region=(1200, 800, 64, 48))
    assert naming.render_name(Path("photo.liif"), region.tag()) == "photo_r1200,800,64,48_x20.png"
