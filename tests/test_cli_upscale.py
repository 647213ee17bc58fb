"""`liif upscale` end to end on real files in tmp dirs, with the official weights (no mocks).

Loads are counted by wrapping `load_checkpoint` (the behaviour is untouched).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import png  # pypng
import pytest
import tifffile
from click.testing import CliRunner
from conftest import OFFICIAL_WEIGHTS as WEIGHTS
from conftest import ROOT, needs_official_weights
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from liif_cli.cli import main

pytestmark = needs_official_weights  # the alpha edge and the rotated picture must survive a trained model
MODEL = ["--model", str(WEIGHTS), "--device", "cpu"]
EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 130}  # errors.py
RNG = np.random.default_rng(99)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def loads(monkeypatch):
    """Count checkpoint loads in-process, wherever liif_cli modules hold `load_checkpoint`."""
    import liif_cli.api  # noqa: F401  (make sure the modules that hold it are imported)
    import liif_cli.models.checkpoint as ckpt

    original = ckpt.load_checkpoint
    calls: list[str] = []

    def counting(*args, **kwargs):
        calls.append(str(args[0]) if args else "")
        return original(*args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.startswith("liif_cli") and getattr(module, "load_checkpoint", None) is original:
            monkeypatch.setattr(module, "load_checkpoint", counting)
    return calls


def run(*args: str):
    result = CliRunner().invoke(main, ["upscale", *map(str, args)], catch_exceptions=False)
    assert "Traceback" not in result.output
    assert result.exit_code in EXIT_CODES
    return result


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith(("error:", "internal error:"))]


def u8(h, w, c=3):
    return (RNG.random((h, w, c)) * 255).astype(np.uint8)


def smooth16(h, w):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=2)
    return np.clip((base * 0.8 + RNG.random((h, w, 3)) * 0.2) * 65535, 0, 65535).astype(np.uint16)


# --- a battery of real files -----------------------------------------------------------------------


def make_odd_files(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    f: dict[str, Path] = {}

    def add(name: str) -> Path:
        f[name] = d / name
        return f[name]

    Image.fromarray(u8(16, 16)).save(add("rgb.png"), icc_profile=SRGB, dpi=(300, 300))
    rgba = u8(16, 16, 4)
    rgba[:, :8, 3] = 0
    rgba[:, 8:, 3] = 255
    Image.fromarray(rgba).save(add("rgba.png"))
    Image.fromarray(rgba).convert("LA").save(add("la.png"))
    Image.fromarray(u8(16, 16)).convert("L").save(add("gray.png"))
    Image.fromarray(u8(16, 16)).convert("1").save(add("bilevel.png"))
    pal = Image.fromarray(u8(16, 16)).convert("P")
    pal.load()[0, 0] = 3
    pal.save(add("palette.png"), transparency=3)
    pal.save(add("anim.gif"), transparency=3)
    Image.fromarray(u8(16, 16)).convert("CMYK").save(add("cmyk.jpg"), quality=95)
    displayed = np.zeros((24, 16, 3), np.uint8)
    displayed[:12] = 230  # bright top half as displayed
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    Image.fromarray(np.rot90(displayed, k=1).copy()).save(add("rotated.jpg"), exif=exif.tobytes(), quality=95)
    Image.fromarray(rgba).save(add("alpha.webp"), lossless=True)
    Image.fromarray(u8(16, 16)).save(add("plain.bmp"))
    Image.fromarray(u8(16, 16)).save(add("plain8.tif"), icc_profile=SRGB)
    a16 = smooth16(16, 16)
    png.Writer(16, 16, greyscale=False, bitdepth=16).write(open(add("rgb16.png"), "wb"), a16.reshape(16, -1))
    Image.fromarray(np.rint(a16 / 257).astype(np.uint8)).save(add("rgb16as8.png"))
    tifffile.imwrite(add("rgb16.tif"), a16, photometric="rgb", iccprofile=SRGB)
    Image.fromarray(a16[..., 0]).save(add("gray16.png"))
    return f


def test_battery_of_odd_files(tmp_path, loads):
    files = make_odd_files(tmp_path / "in")
    out = tmp_path / "out"
    result = run(tmp_path / "in", "--scale", "2", "-o", out, "--alpha", "model", *MODEL)
    assert result.exit_code == 0, result.output
    assert len(loads) == 1
    assert f"{len(files)} written, 0 skipped, 0 failed" in result.stderr

    def opened(name):
        return Image.open(out / name)

    with opened("rgb_x2.png") as im:
        assert (im.mode, im.size) == ("RGB", (32, 32))
        assert im.info["icc_profile"] == SRGB and im.info["dpi"] == pytest.approx((600, 600), abs=1)
    for name, mode in [("rgba_x2.png", "RGBA"), ("la_x2.png", "LA"), ("alpha_x2.webp", "RGBA")]:
        with opened(name) as im:
            assert (im.mode, im.size) == (mode, (32, 32)), name
            a = np.asarray(im)[..., -1]
            assert a[:, :14].max() < 30 and a[:, 18:].min() > 225, name  # the alpha edge stays in place
    for name in ("gray_x2.png", "bilevel_x2.png"):
        with opened(name) as im:
            assert (im.mode, im.size) == ("L", (32, 32)), name
    with opened("palette_x2.png") as im:
        assert im.mode == "RGBA" and np.asarray(im)[0, 0, 3] < 128
    with opened("anim_x2.png") as im:  # GIF cannot be written: auto picks PNG
        assert im.mode == "RGBA"
    with opened("cmyk_x2.jpg") as im:
        assert (im.mode, im.size) == ("RGB", (32, 32))
    with opened("rotated_x2.jpg") as im:
        assert im.size == (32, 48)  # stored 24x16, displayed 16x24, then x2
        assert 0x0112 not in im.getexif() and im.getexif().get(0x010F) == "TestCam"
        a = np.asarray(im.convert("L")).astype(int)
        assert a[:20].mean() > 200 and a[28:].mean() < 40  # bright half on top, as displayed
    with opened("plain_x2.png") as im:
        assert im.mode == "RGB"
    with opened("plain8_x2.tif") as im:
        assert im.mode == "RGB" and im.info["icc_profile"] == SRGB
    # 16 bits in, 16 bits out, close to the 8-bit run of the same picture
    w, h, rows, info = png.Reader(filename=str(out / "rgb16_x2.png")).read()
    assert info["bitdepth"] == 16 and (w, h) == (32, 32)
    out16 = np.array([list(r) for r in rows], np.float64).reshape(32, 32, 3) / 65535
    with opened("rgb16as8_x2.png") as im:
        out8 = np.asarray(im).astype(np.float64) / 255
    assert np.abs(out16 - out8).mean() < 1.5 / 255 and np.abs(out16 - out8).max() < 10 / 255
    assert len(np.unique(np.rint(out16 * 65535) % 257)) > 1  # real 16-bit values, not 8-bit ones scaled
    t = tifffile.TiffFile(out / "rgb16_x2.tif")
    page = t.pages[0]
    assert page.dtype == np.uint16 and page.shape == (32, 32, 3)
    assert page.tags["InterColorProfile"].value == SRGB
    assert np.abs(page.asarray() / 65535 - out16).max() < 1e-4
    t.close()
    with opened("gray16_x2.png") as im:
        assert im.mode == "I;16" and im.size == (32, 32)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def make_bad_files(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    good = d / "good-source.png"
    Image.fromarray(u8(24, 24)).save(good)
    data = good.read_bytes()
    good.unlink()
    bomb = bytearray(data[:33])
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR declares 100000 x 100000
    import zlib

    bomb[29:33] = zlib.crc32(bytes(bomb[12:29])).to_bytes(4, "big")
    files = {
        "truncated": (d / "truncated.png", data[: len(data) // 2]),
        "empty": (d / "empty.png", b""),
        "text": (d / "text.png", b"hello, I am not an image\n"),
        "bomb": (d / "bomb.png", bytes(bomb) + data[33:]),
        "badcrc": (d / "badcrc.png", data[:40] + bytes([data[40] ^ 0xFF]) + data[41:]),
    }
    for path, content in files.values():
        path.write_bytes(content)
    return {k: p for k, (p, _) in files.items()}


def test_bad_files_one_line_errors_exit_3_without_loading(tmp_path, loads):
    bad = make_bad_files(tmp_path / "bad")
    cases = [*bad.values(), tmp_path / "missing.png"]
    (tmp_path / "adir").mkdir()
    for path in cases:
        result = run(path, "--scale", "2", *MODEL)
        assert result.exit_code == 3, (path, result.output)
        lines = error_lines(result)
        assert len(lines) == 1 and str(path.name) in lines[0], result.output
    assert "over the limit" in run(bad["bomb"], "--scale", "2", *MODEL).stderr
    result = run(tmp_path / "adir", "--scale", "2", *MODEL)  # a folder without images
    assert result.exit_code == 3 and "no image or video files" in result.stderr
    result = run(*bad.values(), "--scale", "2", *MODEL)
    assert result.exit_code == 1 and error_lines(result) == [f"error: {len(bad)} of {len(bad)} files failed"]
    assert loads == []
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == sorted(p.name for p in bad.values())


def test_folder_of_20_with_2_broken(tmp_path, loads):
    d = tmp_path / "mixed"
    d.mkdir()
    kinds = [("png", "RGB"), ("jpg", "RGB"), ("webp", "RGB"), ("tif", "RGB"), ("bmp", "RGB"), ("png", "L")]
    for i in range(18):
        ext, mode = kinds[i % len(kinds)]
        Image.fromarray(u8(12, 12)).convert(mode).save(d / f"img{i:02d}.{ext}")
    (d / "broken1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (d / "broken2.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 10)
    (d / "readme.txt").write_text("not collected from a folder")
    out = tmp_path / "out"
    result = run(d, "--scale", "1.5", "-o", out, "--quality", "90", *MODEL)
    assert result.exit_code == 1
    assert error_lines(result) == ["error: 2 of 20 files failed"]
    assert "18 written, 0 skipped, 2 failed" in result.stderr
    assert "broken1.png" in result.stderr and "broken2.jpg" in result.stderr
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 18 and all("_x1.5." in n for n in written)
    for p in out.iterdir():
        with Image.open(p) as im:
            assert im.size == (18, 18)
    assert len(loads) == 1
    again = run(d, "--scale", "1.5", "-o", out, *MODEL)  # everything exists: skipped, no model load
    assert again.exit_code == 1 and "0 written, 18 skipped, 2 failed" in again.stderr
    assert len(loads) == 1


# --- option values ---------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.png"
    Image.fromarray(u8(4, 4)).save(path)
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["--scale", "0"],
        ["--scale", "-1"],
        ["--scale=-1"],
        ["--scale", "nan"],
        ["--scale", "inf"],
        ["--scale", "abc"],
        ["--scale", "1e400"],
        ["--size", "0x5"],
        ["--size", "4000"],
        ["--size", "x"],
        ["--size", "1e9x1e9"],
        ["--size", "100000x100000"],
        ["--width", "0"],
        ["--height", "-3"],
        ["--width", "2.5"],
        [],
        ["--scale", "2", "--width", "8"],
        ["--scale", "2", "--quality", "101"],
        ["--scale", "2", "--alpha", "nearest"],
        ["--scale", "2", "--ext", "gif"],
        ["--scale", "2", "--device", "tpu"],
        ["--scale", "2", "--precision", "fp8"],
        ["--scale", "2", "--tile", "-4"],
        ["--scale", "2", "--threads", "0"],
        ["--scale", "2", "--batch-size", "x"],
        ["--scale", "2", "--max-pixels", "lots"],
        ["--scale", "2", "--suffix", "a/b"],
    ],
)
def test_bad_option_values_exit_2_on_one_line(tiny, loads, args):
    result = run(tiny, *MODEL, *args)  # args last: they win over MODEL's --device
    assert result.exit_code == 2, result.output
    assert len(error_lines(result)) == 1 and result.stderr.count("\n") == 1, result.stderr
    assert loads == []
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["tiny.png"]


def test_exit_codes(tmp_path, tiny, loads):
    out = tmp_path / "o.png"
    result = run(tiny, "--scale", "2", "-o", out, *MODEL)
    assert result.exit_code == 0 and Image.open(out).size == (8, 8)
    result = run(tiny, "--scale", "2", "-o", out, *MODEL)  # exists: skipped
    assert result.exit_code == 0 and "skipped" in result.stderr
    assert run(tiny, "--scale", "2", "-o", out, "--overwrite", *MODEL).exit_code == 0
    result = run(tiny, "--scale", "2", "-o", tiny, "--overwrite", *MODEL)  # never over an input
    assert result.exit_code == 4 and "input" in error_lines(result)[0]
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    result = run(tiny, "--scale", "2", "-o", blocker / "x.png", *MODEL)
    assert result.exit_code == 4 and len(error_lines(result)) == 1
    result = run(tiny, "--scale", "2", "-o", tmp_path / "w.jpg", "--model", tmp_path / "none.pth")
    assert result.exit_code == 5 and len(error_lines(result)) == 1
    notckpt = tmp_path / "fake.pth"
    notckpt.write_text("not a checkpoint")
    result = run(tiny, "--scale", "2", "-o", tmp_path / "w.jpg", "--model", notckpt, "--device", "cpu")
    assert result.exit_code == 5 and len(error_lines(result)) == 1
    result = run(tiny, "--width", "4000", "--max-out-pixels", "1M", *MODEL)
    assert result.exit_code == 2 and "--max-out-pixels" in result.stderr
    assert not (tmp_path / "w.jpg").exists()


def test_unwritable_outputs_fail_before_the_model_loads(tmp_path, tiny, loads):
    """A parent that is a file (or a folder that cannot be written) is exit 4 before any work: a checkpoint
    that is not one would fail with exit 5 if the model were loaded."""
    notckpt = tmp_path / "fake.pth"
    notckpt.write_text("not a checkpoint")
    blocker = tmp_path / "photo.png"
    blocker.write_bytes(tiny.read_bytes())
    for target in (blocker / "out.png", blocker / "deeper" / "out.png"):
        result = run(tiny, "--scale", "4", "-o", target, "--model", notckpt, "--device", "cpu")
        assert result.exit_code == 4, result.output
        assert error_lines(result) == [f"error: {target}: cannot write there, {blocker} is not a folder"]
    folder = tmp_path / "many"
    result = run(tiny, blocker, "--scale", "4", "-o", blocker / "sub", "--model", notckpt, "--device", "cpu")
    assert result.exit_code == 1 and "2 of 2 files failed" in result.stderr and "is not a folder" in result.stderr
    assert loads == [] and not folder.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.pth", "photo.png", "tiny.png"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_read_only_output_folder_fails_before_the_model_loads(tmp_path, tiny, loads):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run(tiny, "--scale", "4", "-o", locked / "out.png", *MODEL)
        assert result.exit_code == 4 and "cannot write in" in error_lines(result)[0]
        assert loads == [] and list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_output_file_formats_and_quiet(tmp_path, tiny):
    for ext in ("jpg", "webp", "tif"):
        result = run(tiny, "--size", "10x6", "--ext", ext, "-q", *MODEL)
        assert result.exit_code == 0 and result.stderr == ""
        with Image.open(tmp_path / f"tiny_10x6.{ext}") as im:
            assert im.size == (10, 6)


values = st.one_of(
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**7), 10**12).map(str),
    st.tuples(st.integers(-5, 10**7), st.integers(-5, 10**7)).map(lambda t: f"{t[0]}x{t[1]}"),
    st.sampled_from(["2", "0.5", "1,2", "7.5", "1e-300", "1e300", "2,nan", "3x", "x3", " 4 ", "٣"]),
)
options = st.sampled_from(["--scale", "--size", "--width", "--height"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picked=st.lists(st.tuples(options, values), min_size=0, max_size=2))
def test_property_option_values_never_traceback(tmp_path, tiny, loads, picked):
    out = tmp_path / "existing.png"  # an existing output: valid values end as "skipped", never running the model
    out.write_bytes(tiny.read_bytes())
    args = [f"{opt}={val}" for opt, val in picked]
    result = run(tiny, *args, "-o", out, *MODEL)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert len(error_lines(result)) == 1
    assert loads == []


# --- Ctrl-C ----------------------------------------------------------------------------------------


def test_sigint_exits_130_and_leaves_nothing(tmp_path):
    src = tmp_path / "big.png"
    Image.fromarray(u8(100, 100)).save(src)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "liif_cli", "upscale", str(src), "--size", "2000x2000", "-o", str(out), *MODEL]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        seen = ""
        while "[1/1]" not in seen:  # "[1/1] .../big.png" once the batch has started (imports done)
            line = proc.stderr.readline()
            assert line, f"the command ended early: {seen}"
            seen += line
        time.sleep(3.0)  # model loading, then rendering: a 4 MP output takes far longer than this
        assert proc.poll() is None, "the job finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert list(out.iterdir()) == []


def test_handle_errors_maps_every_exception_to_one_line(capsys, monkeypatch):
    from liif_cli.cli import handle_errors
    from liif_cli.errors import InputError

    def failing(exc):
        @handle_errors
        def command():
            raise exc

        with pytest.raises(SystemExit) as info:
            command()
        return info.value.code, capsys.readouterr().err

    assert failing(InputError("a.png: broken\nreally")) == (3, "error: a.png: broken really\n")
    assert failing(KeyboardInterrupt()) == (130, "interrupted\n")
    code, err = failing(RuntimeError("kaput"))
    assert code == 1 and err.startswith("internal error: RuntimeError: kaput\n") and "Traceback" not in err
    assert "LIIF_DEBUG=1" in err
    monkeypatch.setenv("LIIF_DEBUG", "1")
    code, err = failing(RuntimeError("kaput"))
    assert code == 1 and "Traceback" in err
