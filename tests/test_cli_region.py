"""Regions, several sizes and saved encodings through the CLI (issue 10), on real files with the official
weights: `liif upscale --region`, repeated `--width`, `liif encode` and `liif render`.

The encoder is counted for real: `Renderer._encode_span` (every encoder pass, streamed or kept) is wrapped
in-process, its behaviour untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import MODEL_PATH
from PIL import Image

from liif_cli.cli import main

pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF
MODEL = ["--model", str(MODEL_PATH), "--device", "cpu", "--precision", "fp32"]
RNG = np.random.default_rng(10)


def liif(*args) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture
def photo(tmp_path) -> Path:
    """A 24x20 RGB photo in its own folder."""
    src = tmp_path / "in" / "photo.png"
    src.parent.mkdir()
    Image.fromarray((RNG.random((20, 24, 3)) * 255).astype(np.uint8)).save(src)
    return src


@pytest.fixture
def encoder_passes(monkeypatch) -> list[tuple[int, int]]:
    """The (rows, cols) of every encoder pass run in this process."""
    from liif_cli.engine import Renderer

    original = Renderer._encode_span
    passes: list[tuple[int, int]] = []

    def counting(self, rgb, rows, cols):
        passes.append((rows[1] - rows[0], cols[1] - cols[0]))
        return original(self, rgb, rows, cols)

    monkeypatch.setattr(Renderer, "_encode_span", counting)
    return passes


# --- acceptance 1: a region is the crop of the whole render ---------------------------------------


@pytest.mark.parametrize("tile", ["0", "8"])
def test_region_png_is_the_crop_of_the_whole_png(photo, tile):
    whole = liif("upscale", photo, "--scale", "4", "--tile", tile, *MODEL)
    assert whole.exit_code == 0, whole.stderr
    # output pixels [6, 36) x [2, 24) of the 96x80 render are the region 1.5,0.5,7.5,5.5 at x4 (floats allowed)
    window = liif("upscale", photo, "--region", "1.5,0.5,7.5,5.5", "--scale", "4", "--tile", tile, *MODEL)
    assert window.exit_code == 0, window.stderr
    out = photo.parent / "photo_r1.5,0.5,7.5,5.5_x4.png"  # the default name says it is a region
    assert pixels(out).shape == (22, 30, 3)
    assert np.array_equal(pixels(out), pixels(photo.parent / "photo_x4.png")[2:24, 6:36])


def test_region_with_width_sizes_the_window(photo):
    result = liif("upscale", photo, "--region", "4,2,16,8", "--width", "40", *MODEL)
    assert result.exit_code == 0, result.stderr
    assert pixels(photo.parent / "photo_r4,2,16,8_w40.png").shape == (20, 40, 3)


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ("20,0,10,5", "region 20,0,10,5 is not inside the 24x20 image"),
        ("0,0,0,5", "--region 0,0,0,5 is empty"),
        ("-1,0,4,4", "X and Y must be >= 0"),
        ("1,2,3", "--region must be X,Y,W,H"),
        ("1,2,3,nan", "finite numbers"),
    ],
)
def test_bad_region_is_one_line_exit_2_and_writes_nothing(photo, region, message):
    before = sorted(photo.parent.iterdir())
    result = liif("upscale", photo, "--region", region, "--scale", "2", *MODEL)
    assert result.exit_code == 2
    assert message in one_error_line(result)
    assert sorted(photo.parent.iterdir()) == before


# --- acceptance 3: several sizes from one encoding -------------------------------------------------


@pytest.mark.parametrize(("mode", "encoders"), [("RGB", 1), ("RGBA", 2)])  # RGBA: colour + alpha planes
def test_repeated_width_encodes_once_and_writes_what_single_runs_write(tmp_path, encoder_passes, mode, encoders):
    src = tmp_path / "in" / "photo.png"
    src.parent.mkdir()
    data = (RNG.random((20, 24, len(mode))) * 255).astype(np.uint8)
    if mode == "RGBA":
        data[..., 3] = np.linspace(0, 255, 24, dtype=np.uint8)[None, :]  # a real alpha ramp: through the model
    Image.fromarray(data, mode).save(src)
    widths = ["30", "50", "70"]
    result = liif("upscale", src, *[a for w in widths for a in ("--width", w)], *MODEL)
    assert result.exit_code == 0, result.stderr
    assert len(encoder_passes) == encoders  # one tile each: the image was encoded once for three outputs
    encoder_passes.clear()
    for width in widths:
        single = liif("upscale", src, "--width", width, "-o", tmp_path / "single", *MODEL)
        assert single.exit_code == 0, single.stderr
        name = f"photo_w{width}.png"
        assert (src.parent / name).read_bytes() == (tmp_path / "single" / name).read_bytes()
    assert len(encoder_passes) == encoders * len(widths)  # each single run streams through the encoder


def test_several_sizes_skip_existing_outputs_one_by_one(photo, encoder_passes):
    (photo.parent / "photo_x2.png").write_bytes(b"not touched")
    result = liif("upscale", photo, "--scale", "2", "--scale", "3", "--scale", "2.5", *MODEL)
    assert result.exit_code == 0, result.stderr
    assert (photo.parent / "photo_x2.png").read_bytes() == b"not touched"
    assert pixels(photo.parent / "photo_x3.png").shape == (60, 72, 3)
    assert pixels(photo.parent / "photo_x2.5.png").shape == (50, 60, 3)
    assert len(encoder_passes) == 1


def test_several_sizes_refuse_one_output_name(photo):
    for extra in (["-o", photo.parent / "out.png"], ["--suffix", "big"]):
        result = liif("upscale", photo, "--width", "30", "--width", "40", *extra, *MODEL)
        assert result.exit_code == 2 and "several sizes" in one_error_line(result)
    result = liif("upscale", photo, "--width", "30", "--height", "40", *MODEL)
    assert result.exit_code == 2 and "one of --scale" in one_error_line(result)
    assert sorted(p.name for p in photo.parent.iterdir()) == ["photo.png"]


# --- saved encodings: liif encode, liif render --------------------------------------------------------


def test_encode_then_render_equals_upscale(photo, tmp_path, encoder_passes):
    result = liif("encode", photo, *MODEL)
    assert result.exit_code == 0, result.stderr
    saved = photo.with_suffix(".liif")  # the default: beside the input
    assert saved.is_file() and len(encoder_passes) == 1
    ran = len(encoder_passes)
    render = liif("render", saved, "--width", "50", "--device", "cpu")  # the model named in the file
    assert render.exit_code == 0, render.stderr
    assert len(encoder_passes) == ran  # rendering never runs the encoder
    window = liif("render", saved, "--region", "3,2,10,7", "--scale", "3", "-o", tmp_path / "window.png", *MODEL)
    assert window.exit_code == 0, window.stderr
    for args in (["--width", "50"], ["--region", "3,2,10,7", "--scale", "3"]):
        assert liif("upscale", photo, *args, "-o", tmp_path / "ref", *MODEL).exit_code == 0
    assert (photo.parent / "photo_w50.png").read_bytes() == (tmp_path / "ref" / "photo_w50.png").read_bytes()
    assert np.array_equal(pixels(tmp_path / "window.png"), pixels(tmp_path / "ref" / "photo_r3,2,10,7_x3.png"))


def test_render_takes_repeated_sizes_as_upscale_does(photo, tmp_path, encoder_passes):
    """`liif render x.liif --width 31 --width 61` writes both sizes, byte for byte what two `liif upscale` runs
    write (it used to write the last one only)."""
    assert liif("encode", photo, *MODEL).exit_code == 0
    ran = len(encoder_passes)
    result = liif("render", photo.with_suffix(".liif"), "--width", "31", "--width", "61", *MODEL)
    assert result.exit_code == 0, result.stderr
    assert len(encoder_passes) == ran
    for width in (31, 61):
        ref = tmp_path / f"ref{width}"
        assert liif("upscale", photo, "--width", width, "-o", ref, *MODEL).exit_code == 0
        name = f"photo_w{width}.png"
        assert (photo.parent / name).read_bytes() == (ref / name).read_bytes()
    folder = tmp_path / "sizes"
    result = liif("render", photo.with_suffix(".liif"), "--scale", "2", "--scale", "3", "-o", folder, *MODEL)
    assert result.exit_code == 0 and sorted(p.name for p in folder.iterdir()) == ["photo_x2.png", "photo_x3.png"]
    result = liif("render", photo.with_suffix(".liif"), "--scale", "2", "--scale", "3", "-o", tmp_path / "a.png")
    assert result.exit_code == 2 and "several sizes" in one_error_line(result)
    result = liif("render", photo.with_suffix(".liif"), "--scale", "2", "--width", "3")
    assert result.exit_code == 2 and "(got --scale, --width)" in one_error_line(result)


@pytest.mark.parametrize("kind", ["RGBA", "RGB16"])
def test_encode_then_render_keeps_alpha_and_16_bit_as_upscale_does(tmp_path, kind):
    import png  # pypng: 16-bit RGB, which Pillow cannot write

    src = tmp_path / "in" / "pic.png"
    src.parent.mkdir()
    if kind == "RGBA":
        data = (RNG.random((14, 17, 4)) * 255).astype(np.uint8)
        Image.fromarray(data, "RGBA").save(src)
    else:
        data = (RNG.random((14, 17, 3)) * 65535).astype(np.uint16)
        png.Writer(17, 14, greyscale=False, bitdepth=16).write(src.open("wb"), data.reshape(14, -1).tolist())
    assert liif("encode", src, *MODEL).exit_code == 0
    assert liif("render", src.with_suffix(".liif"), "--scale", "2.5", *MODEL).exit_code == 0
    assert liif("upscale", src, "--scale", "2.5", "-o", tmp_path / "ref", *MODEL).exit_code == 0
    rendered, ref = src.parent / "pic_x2.5.png", tmp_path / "ref" / "pic_x2.5.png"
    a, b = png.Reader(str(rendered)).asDirect(), png.Reader(str(ref)).asDirect()
    assert a[3]["bitdepth"] == b[3]["bitdepth"] == (16 if kind == "RGB16" else 8)
    assert a[3]["alpha"] == b[3]["alpha"] == (kind == "RGBA")
    assert np.array_equal(np.vstack(list(a[2])), np.vstack(list(b[2])))


def test_plan_gives_one_job_per_size_in_order_and_region_names(tmp_path):
    from liif_cli.batch import BatchOptions, SizeSpec, plan_batch

    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 6)).save(tmp_path / name)
    (tmp_path / "b_w20.png").write_bytes(b"old")
    options = BatchOptions(spec=[SizeSpec(width=10), SizeSpec(width=20), SizeSpec(width=10)])
    jobs = plan_batch([tmp_path / "a.png", tmp_path / "b.png"], options)
    assert [(j.input.name, j.output.name, j.skip is not None) for j in jobs] == [
        ("a.png", "a_w10.png", False),
        ("a.png", "a_w20.png", False),
        ("b.png", "b_w10.png", False),
        ("b.png", "b_w20.png", True),  # an existing output is skipped per size
    ]
    spec = SizeSpec(scale=20.0, region=(1200.0, 800.5, 64.0, 48.0))
    assert spec.tag() == "r1200,800.5,64,48_x20"
    assert spec.resolve((1500, 2000)) == (960, 1280)
    jobs = plan_batch([tmp_path], BatchOptions(spec=[SizeSpec(width=10), SizeSpec(width=20)]))
    earlier = [j for j in jobs if j.input.name == "b_w20.png"]  # an earlier output: no input, reported once
    assert len(earlier) == 1 and earlier[0].earlier_output and str(earlier[0].skip).endswith("(name ends in _w20)")
    assert [j.output.name for j in jobs if not j.earlier_output] == ["a_w10.png", "a_w20.png", "b_w10.png", "b_w20.png"]


def test_encode_and_render_never_overwrite_without_the_flag(photo):
    saved = photo.with_suffix(".liif")
    saved.write_bytes(b"mine")
    result = liif("encode", photo, *MODEL)
    assert result.exit_code == 4 and "already exists" in one_error_line(result)
    assert saved.read_bytes() == b"mine"
    assert liif("encode", photo, "--overwrite", *MODEL).exit_code == 0
    out = photo.parent / "photo_x2.png"
    out.write_bytes(b"mine")
    result = liif("render", saved, "--scale", "2", *MODEL)
    assert result.exit_code == 4 and out.read_bytes() == b"mine"
    assert liif("render", saved, "--scale", "2", "--overwrite", *MODEL).exit_code == 0
    assert pixels(out).shape == (40, 48, 3)
    result = liif("encode", photo, "-o", photo.parent / "x.png", *MODEL)
    assert result.exit_code == 2 and ".liif" in one_error_line(result)


def test_bad_encodings_are_exit_9_and_write_nothing(photo):
    assert liif("encode", photo, *MODEL).exit_code == 0
    data = photo.with_suffix(".liif").read_bytes()
    for name, content in {"corrupt.liif": b"\x00garbage" * 10, "truncated.liif": data[: len(data) // 2]}.items():
        (photo.parent / name).write_bytes(content)
        result = liif("render", photo.parent / name, "--scale", "2", *MODEL)
        assert result.exit_code == 9 and "corrupt or truncated" in one_error_line(result)
    result = liif("render", photo.parent / "missing.liif", "--scale", "2", *MODEL)
    assert result.exit_code == 9 and "no such encoding" in one_error_line(result)
    result = liif("render", photo.with_suffix(".liif"), "--region", "0,0,30,5", "--scale", "2", *MODEL)
    assert result.exit_code == 2 and "not inside the 24x20 image" in one_error_line(result)
    assert not [p for p in photo.parent.iterdir() if p.suffix == ".png" and p != photo]


def test_an_encoding_from_other_weights_is_exit_10(photo, tmp_path):
    ckpt = torch.load(MODEL_PATH, map_location="cpu", weights_only=True)
    sd = ckpt["model"]["sd"]
    first = next(iter(sd))
    sd[first] = sd[first] + 1e-3  # fine-tuned weights: same architecture, other numbers
    tuned = tmp_path / "tuned.pth"
    torch.save(ckpt, tuned)
    result = liif("encode", photo, "-o", tmp_path / "tuned.liif", "--model", tuned, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    result = liif("render", tmp_path / "tuned.liif", "--scale", "2", *MODEL)
    assert result.exit_code == 10 and "render it with the model that made it" in one_error_line(result)
    assert not (tmp_path / "tuned_x2.png").exists()
