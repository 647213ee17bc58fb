"""imageio: decoding and encoding real files (no model involved), written to tmp dirs."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import png  # pypng
import pytest
import tifffile
from PIL import ExifTags, Image, ImageCms, ImageOps

from liif_cli.errors import InputError, OutputError
from liif_cli.imageio import (
    DecodedImage,
    InputGuard,
    apply_orientation,
    check_output_size,
    format_for_path,
    quantize,
    read_image,
    write_image,
)

RNG = np.random.default_rng(1234)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def rgb8(h=10, w=14):
    return (RNG.random((h, w, 3)) * 255).astype(np.uint8)


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_declaring(w: int, h: int) -> bytes:
    """A PNG whose header declares w x h but whose data is tiny: a decompression-bomb shape."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


# --- quantize --------------------------------------------------------------------------------------


def test_quantize_rounds_half_to_even_and_clips():
    x = np.array([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.5, 1.0, 2.0, np.nan], dtype=np.float32)
    q = quantize(x)
    assert q.dtype == np.uint8
    assert q.tolist() == [0, 0, 0, 2, 2, 128, 255, 255, 0]
    assert quantize(np.array([1.0, 0.5], np.float32), 16).tolist() == [65535, 32768]
    assert quantize(np.array([0.5], np.float32), 16).dtype == np.uint16
    with pytest.raises(ValueError):
        quantize(x, 12)


def test_quantize_passes_integers_through_or_converts_depth():
    a8 = np.array([0, 1, 128, 255], np.uint8)
    assert quantize(a8) is a8
    assert quantize(a8, 16).tolist() == [0, 257, 32896, 65535]
    assert quantize(np.array([0, 257, 32896, 32895, 65535], np.uint16), 8).tolist() == [0, 1, 128, 128, 255]
    with pytest.raises(ValueError):
        quantize(np.array([3], np.int32))


def test_quantize_does_not_modify_input():
    x = np.array([0.2, 1.7], dtype=np.float32)
    quantize(x)
    assert x.tolist() == pytest.approx([0.2, 1.7])


# --- orientation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_matches_pillow_exif_transpose(orientation, tmp_path):
    a = rgb8(5, 7)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(a).save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    assert np.array_equal(apply_orientation(a, orientation), expected)
    img = read_image(path)
    assert np.array_equal(quantize(img.rgb), expected)
    out = tmp_path / f"o{orientation}_out.png"
    write_image(img, out)
    with Image.open(out) as im:
        assert im.size == (expected.shape[1], expected.shape[0])
        assert 0x0112 not in im.getexif()  # applied, so dropped
        assert np.array_equal(np.asarray(im), expected)


def test_rotated_jpeg_swaps_dpi_and_keeps_other_exif(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[271] = "Maker"
    path = tmp_path / "r.jpg"
    Image.fromarray(rgb8(10, 16)).save(path, exif=exif.tobytes(), dpi=(72, 144), quality=95)
    img = read_image(path)
    assert img.hw == (16, 10)
    assert img.dpi == pytest.approx((144, 72))
    out = tmp_path / "r_out.jpg"
    write_image(img.with_pixels(np.zeros((32, 20, 3), np.float32), None), out)
    with Image.open(out) as im:
        assert im.size == (20, 32)
        assert im.info["dpi"] == pytest.approx((288, 144), abs=1)
        e = im.getexif()
        assert e.get(271) == "Maker" and 0x0112 not in e


def test_exif_thumbnail_is_dropped(tmp_path):
    # Hand-made EXIF: IFD0 (orientation, Make) -> IFD1 with a thumbnail (JPEGInterchangeFormat).
    thumb = b"\xff\xd8THUMBNAIL-BYTES\xff\xd9"
    make = b"CameraMaker\x00"  # > 4 bytes: stored at an offset
    ifd0_off = 8
    ifd0 = struct.pack("<H", 2)
    make_off = ifd0_off + 2 + 2 * 12 + 4
    ifd1_off = make_off + len(make)
    ifd0 += struct.pack("<HHII", 0x010F, 2, len(make), make_off)
    ifd0 += struct.pack("<HHIHH", 0x0112, 3, 1, 3, 0)
    ifd0 += struct.pack("<I", ifd1_off)
    thumb_off = ifd1_off + 2 + 2 * 12 + 4
    ifd1 = struct.pack("<H", 2)
    ifd1 += struct.pack("<HHII", 0x0201, 4, 1, thumb_off)
    ifd1 += struct.pack("<HHII", 0x0202, 4, 1, len(thumb))
    ifd1 += struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", ifd0_off) + ifd0 + make + ifd1 + thumb
    path = tmp_path / "thumb.jpg"
    Image.fromarray(rgb8(6, 8)).save(path, exif=b"Exif\x00\x00" + tiff)
    with Image.open(path) as im:
        assert im.getexif().get_ifd(ExifTags.IFD.IFD1)  # the input really has a thumbnail IFD
    img = read_image(path)
    assert img.hw == (6, 8)  # orientation 3 is a 180 degree turn: same size
    assert img.exif and b"THUMBNAIL" not in img.exif
    out = tmp_path / "thumb_out.png"
    write_image(img, out)
    with Image.open(out) as im:
        e = im.getexif()
        assert e.get(0x010F) == "CameraMaker" and 0x0112 not in e
        assert not e.get_ifd(ExifTags.IFD.IFD1)


# --- modes -----------------------------------------------------------------------------------------


def test_rgb_png_with_icc_and_dpi_round_trip(tmp_path):
    a = rgb8()
    path = tmp_path / "in.png"
    Image.fromarray(a).save(path, icc_profile=SRGB, dpi=(300, 300))
    img = read_image(path)
    assert (img.mode, img.bits, img.format) == ("RGB", 8, "PNG")
    assert img.icc_profile == SRGB
    for ext in ("png", "jpg", "webp", "tif"):
        out = tmp_path / f"out.{ext}"
        write_image(img, out, quality=100)
        with Image.open(out) as im:
            assert im.mode == "RGB" and im.size == (14, 10)
            assert im.info.get("icc_profile") == SRGB, ext
            if ext != "webp":
                assert im.info["dpi"] == pytest.approx((300, 300), abs=0.5), ext
            if ext in ("png", "tif"):
                assert np.array_equal(np.asarray(im), a)


def test_rgba_la_l_modes_are_kept(tmp_path):
    a = (RNG.random((9, 11, 4)) * 255).astype(np.uint8)
    for mode in ("RGBA", "LA", "L"):
        im = Image.fromarray(a).convert(mode)
        path = tmp_path / f"{mode}.png"
        im.save(path)
        img = read_image(path)
        assert img.mode == mode and img.has_alpha == ("A" in mode)
        out = tmp_path / f"{mode}_out.png"
        write_image(img, out)
        with Image.open(out) as back:
            assert back.mode == mode
            assert np.array_equal(np.asarray(back), np.asarray(im))


def test_palette_with_and_without_transparency(tmp_path):
    im = Image.fromarray(rgb8()).convert("P")
    im.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").mode == "RGB"
    px = im.load()
    px[0, 0] = 7
    im.save(tmp_path / "pt.png", transparency=7)
    img = read_image(tmp_path / "pt.png")
    assert img.mode == "RGBA" and img.source_mode == "P"
    assert img.alpha[0, 0] == 0.0 and img.alpha.max() == 1.0
    gif = tmp_path / "t.gif"
    im.save(gif, transparency=7)
    assert read_image(gif).mode == "RGBA"


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    a = rgb8()
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(a).convert("CMYK").save(path, quality=100)
    img = read_image(path)
    assert img.mode == "RGB" and img.source_mode == "CMYK" and img.icc_profile is None
    assert np.abs(quantize(img.rgb).astype(int) - a).mean() < 8


def test_bilevel_becomes_gray(tmp_path):
    path = tmp_path / "b.png"
    Image.fromarray(rgb8()).convert("1").save(path)
    img = read_image(path)
    assert img.mode == "L" and set(np.unique(img.rgb)) <= {0.0, 1.0}


def test_gray_output_uses_bt601_luma():
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    img = DecodedImage(rgb=rgb, mode="L")
    buf = io.BytesIO()
    Image.fromarray(quantize(rgb)).convert("L").save(buf, "PNG")
    expected = np.asarray(Image.open(buf))
    from liif_cli.imageio.write import _gray

    assert np.abs(quantize(_gray(img)).astype(int) - expected).max() <= 1


# --- 16 bits ---------------------------------------------------------------------------------------


def test_16bit_rgb_png_in_and_out(tmp_path):
    a = (RNG.random((9, 11, 3)) * 65535).astype(np.uint16)
    path = tmp_path / "rgb16.png"
    png.Writer(11, 9, greyscale=False, bitdepth=16).write(open(path, "wb"), a.reshape(9, -1))
    img = read_image(path)
    assert (img.mode, img.bits, img.source_mode) == ("RGB", 16, "RGB;16")
    assert np.array_equal(quantize(img.rgb, 16), a)
    img.icc_profile, img.dpi = SRGB, (300.0, 300.0)
    out = tmp_path / "rgb16_out.png"
    write_image(img, out)
    w, h, rows, info = png.Reader(filename=str(out)).read()
    assert info["bitdepth"] == 16 and info["planes"] == 3
    assert np.array_equal(np.array([list(r) for r in rows], np.uint16).reshape(9, 11, 3), a)
    with Image.open(out) as im:  # metadata chunks readable by Pillow
        assert im.info["icc_profile"] == SRGB
        assert im.info["dpi"] == pytest.approx((300, 300), abs=0.5)


def test_16bit_rgba_and_la_png(tmp_path):
    a = (RNG.random((7, 5, 4)) * 65535).astype(np.uint16)
    path = tmp_path / "rgba16.png"
    png.Writer(5, 7, greyscale=False, alpha=True, bitdepth=16).write(open(path, "wb"), a.reshape(7, -1))
    img = read_image(path)
    assert (img.mode, img.bits) == ("RGBA", 16)
    assert np.array_equal(quantize(img.alpha, 16), a[..., 3])
    g = a[..., :2]
    path = tmp_path / "la16.png"
    png.Writer(5, 7, greyscale=True, alpha=True, bitdepth=16).write(open(path, "wb"), g.reshape(7, -1))
    img = read_image(path)
    assert (img.mode, img.bits) == ("LA", 16)
    out = tmp_path / "la16_out.png"
    write_image(img, out)
    w, h, rows, info = png.Reader(filename=str(out)).read()
    assert info["greyscale"] and info["alpha"] and info["bitdepth"] == 16
    assert np.array_equal(np.array([list(r) for r in rows], np.uint16).reshape(7, 5, 2), g)


def test_16bit_gray_png(tmp_path):
    a = (RNG.random((6, 8)) * 65535).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(a).save(path)
    img = read_image(path)
    assert (img.mode, img.bits) == ("L", 16)
    out = tmp_path / "g16_out.png"
    write_image(img, out)
    with Image.open(out) as im:
        assert im.mode == "I;16" and np.array_equal(np.asarray(im), a)


@pytest.mark.parametrize("planar", [False, True])
def test_16bit_tiff_rgb_rgba_gray(tmp_path, planar):
    a = (RNG.random((9, 11, 4)) * 65535).astype(np.uint16)
    cases = {
        "rgb": (a[..., :3], {"photometric": "rgb"}, "RGB"),
        "rgba": (a, {"photometric": "rgb", "extrasamples": ["unassalpha"]}, "RGBA"),
        "gray": (a[..., 0], {"photometric": "minisblack"}, "L"),
    }
    for name, (data, kw, mode) in cases.items():
        path = tmp_path / f"{name}.tif"
        if planar and data.ndim == 3:
            tifffile.imwrite(path, np.moveaxis(data, -1, 0), planarconfig="separate", **kw)
        else:
            tifffile.imwrite(path, data, **kw)
        img = read_image(path)
        assert (img.mode, img.bits) == (mode, 16), name
        img.icc_profile = SRGB if mode != "L" else None
        for ext in ("tif", "png"):
            out = tmp_path / f"{name}_out.{ext}"
            write_image(img, out, overwrite=True)
            back = read_image(out)
            assert (back.mode, back.bits) == (mode, 16), (name, ext)
            assert np.array_equal(quantize(back.rgb, 16), quantize(img.rgb, 16))
            if ext == "tif":
                assert np.array_equal(tifffile.imread(out), data)
                if mode != "L":
                    assert back.icc_profile == SRGB


def lzw16(tmp_path) -> tuple[Path, np.ndarray]:
    """A 16-bit LZW TIFF: Pillow cannot read 16-bit RGB, and tifffile needs imagecodecs for LZW."""
    a = (RNG.random((6, 8, 3)) * 65535).astype(np.uint16)
    path = tmp_path / "lzw16.tif"
    tifffile.imwrite(path, a, photometric="rgb", compression="lzw")
    return path, a


def test_16bit_tiff_needing_imagecodecs_decodes_with_it(tmp_path):
    pytest.importorskip("imagecodecs", reason="needs imagecodecs (in the test extra)")
    path, a = lzw16(tmp_path)
    img = read_image(path)
    assert img.bits == 16 and np.array_equal(quantize(img.rgb, 16), a)


def test_16bit_tiff_needing_imagecodecs_is_a_clean_error_without_it(tmp_path):
    """A fresh interpreter in which `import imagecodecs` fails, as where the package is not installed."""
    import subprocess
    import sys

    path, _ = lzw16(tmp_path)
    code = (
        "import sys\nsys.modules['imagecodecs'] = None\n"
        "from liif_cli.errors import InputError\nfrom liif_cli.imageio import read_image\n"
        "try:\n    read_image(sys.argv[1])\nexcept InputError as exc:\n    print(f'InputError: {exc}')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.strip() == (
        f"InputError: {path}: this TIFF's compression needs the optional 'imagecodecs' package (pip install imagecodecs)"
    )


def test_16bit_to_jpeg_warns_and_reduces(tmp_path):
    img = DecodedImage(rgb=np.full((4, 4, 3), 0.5, np.float32), bits=16)
    warnings: list[str] = []
    write_image(img, tmp_path / "x.jpg", warn=warnings.append)
    assert any("8 bits" in w for w in warnings)


# --- bad files -------------------------------------------------------------------------------------


def make_bad_files(d: Path) -> dict[str, Path]:
    good = d / "good.png"
    Image.fromarray(rgb8(32, 32)).save(good)
    data = good.read_bytes()
    Image.fromarray(rgb8(32, 32)).save(d / "good.jpg")
    files = {
        "missing": d / "missing.png",
        "directory": d / "adir.png",
        "empty": d / "empty.png",
        "text": d / "text.png",
        "truncated_png": d / "trunc.png",
        "truncated_jpg": d / "trunc.jpg",
        "bad_crc": d / "badcrc.png",
        "bomb": d / "bomb.png",
        "garbage": d / "garbage.webp",
        "truncated_png16": d / "trunc16.png",
    }
    files["directory"].mkdir()
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not an image\n")
    files["truncated_png"].write_bytes(data[: len(data) // 2])
    jpg = (d / "good.jpg").read_bytes()
    files["truncated_jpg"].write_bytes(jpg[: len(jpg) // 2])
    bad = bytearray(data)
    bad[40] ^= 0xFF  # inside IDAT: CRC no longer matches
    files["bad_crc"].write_bytes(bytes(bad))
    files["bomb"].write_bytes(png_declaring(100_000, 100_000))
    files["garbage"].write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(range(200)))
    a16 = (RNG.random((20, 20, 3)) * 65535).astype(np.uint16)
    buf = io.BytesIO()
    png.Writer(20, 20, greyscale=False, bitdepth=16).write(buf, a16.reshape(20, -1))
    files["truncated_png16"].write_bytes(buf.getvalue()[:300])
    return files


def test_bad_files_give_one_line_input_errors(tmp_path):
    for name, path in make_bad_files(tmp_path).items():
        with pytest.raises(InputError) as info:
            read_image(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message, name
        assert info.value.exit_code == 3


def test_size_limit_is_checked_on_the_header(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_declaring(12_000, 9_000))  # 108 MP declared, a few bytes of data
    with pytest.raises(InputError, match="over the limit of 100.0 MP"):
        read_image(path)
    with pytest.raises(InputError, match="over the limit"):
        read_image(tmp_path / "big.png", max_pixels=1000)
    small = tmp_path / "small.png"
    Image.fromarray(rgb8(40, 40)).save(small)
    with pytest.raises(InputError, match=r"\(raise it with max pixels\)$") as caught:
        read_image(small, max_pixels=1599)
    assert caught.value.param == "max_pixels"  # the CLI names it --max-pixels, the server its own option
    assert read_image(small, max_pixels=1600).hw == (40, 40)
    saved = Image.MAX_IMAGE_PIXELS
    read_image(small)
    assert Image.MAX_IMAGE_PIXELS == saved  # Pillow's global is restored


# --- writing safety --------------------------------------------------------------------------------


def test_write_refuses_existing_and_inputs(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(rgb8()).save(src)
    img = read_image(src)
    out = tmp_path / "out.png"
    write_image(img, out)
    with pytest.raises(OutputError, match="exists"):
        write_image(img, out)
    write_image(img, out, overwrite=True)
    with pytest.raises(OutputError, match="input"):
        write_image(img, src, overwrite=True, protect=[src])
    link = tmp_path / "link.png"
    link.hardlink_to(src)
    with pytest.raises(OutputError, match="input"):
        write_image(img, link, overwrite=True, protect=InputGuard([src]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "link.png", "out.png"]


def test_unwritable_target_is_an_output_error(tmp_path):
    img = DecodedImage(rgb=np.zeros((4, 4, 3), np.float32))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        write_image(img, blocker / "out.png")
    with pytest.raises(OutputError, match="cannot write '.bmp'"):
        write_image(img, tmp_path / "out.bmp")
    with pytest.raises(OutputError, match="JPEG"):
        check_output_size("JPEG", 70_000, 10)
    assert format_for_path("a.TIFF") == "TIFF"


def test_interrupt_during_encoding_leaves_no_file(tmp_path):
    img = DecodedImage(rgb=np.zeros((8, 8, 3), np.float32), alpha=np.zeros((8, 8), np.float32), mode="RGBA")

    def interrupt(message):  # JPEG can't hold alpha: the flatten warning comes mid-write
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_image(img, tmp_path / "out.jpg", warn=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_jpeg_flattens_alpha_onto_white(tmp_path):
    alpha = np.zeros((4, 4), np.float32)
    alpha[:2] = 1.0
    img = DecodedImage(rgb=np.zeros((4, 4, 3), np.float32), alpha=alpha, mode="RGBA")
    notes: list[str] = []
    write_image(img, tmp_path / "f.jpg", quality=100, warn=notes.append)
    with Image.open(tmp_path / "f.jpg") as im:
        a = np.asarray(im).astype(int)
    assert a[0].max() < 10 and a[3].min() > 245
    assert any("flattened" in n for n in notes)


def test_output_files_get_normal_permissions(tmp_path):
    img = DecodedImage(rgb=np.zeros((4, 4, 3), np.float32))
    out = write_image(img, tmp_path / "p.png")
    assert out.stat().st_mode & 0o644 == 0o644


def test_transparent_colour_becomes_alpha(tmp_path):
    a = rgb8()
    a[0, 0] = (10, 20, 30)
    Image.fromarray(a).save(tmp_path / "trns.png", transparency=(10, 20, 30))
    img = read_image(tmp_path / "trns.png")
    assert img.mode == "RGBA" and img.alpha[0, 0] == 0.0 and img.alpha.max() == 1.0
    g = a[..., 0].copy()
    g[0, 0] = 5
    Image.fromarray(g).save(tmp_path / "trnsl.png", transparency=5)
    img = read_image(tmp_path / "trnsl.png")
    assert img.mode == "LA" and img.alpha[0, 0] == 0.0


def test_tiff_that_pillow_cannot_open_goes_through_tifffile(tmp_path):
    la = (RNG.random((6, 7, 2)) * 65535).astype(np.uint16)
    path = tmp_path / "la16.tif"
    kw = {"photometric": "minisblack", "extrasamples": ["unassalpha"], "planarconfig": "contig"}
    tifffile.imwrite(path, la, resolution=(300, 300), resolutionunit="INCH", iccprofile=SRGB, **kw)
    img = read_image(path)
    assert (img.mode, img.bits, img.icc_profile) == ("LA", 16, SRGB)
    assert img.dpi == pytest.approx((300, 300))
    write_image(img, tmp_path / "out.tif")
    assert np.array_equal(tifffile.imread(tmp_path / "out.tif"), la)
    with pytest.raises(InputError, match="42 pixels"):
        read_image(path, max_pixels=41)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\xff" * 50)
    with pytest.raises(InputError, match="bad.tif"):
        read_image(bad)


# --- header_size: the one header reader ------------------------------------------------------------


def _header_size_files(tmp_path: Path) -> dict[str, Path]:
    """Real files of every kind header_size meets, each 9 x 14 stored (h x w)."""
    a = rgb8(9, 14)
    files = {"png": tmp_path / "a.png", "tiff": tmp_path / "a.tif", "png16": tmp_path / "a16.png"}
    Image.fromarray(a).save(files["png"])
    Image.fromarray(a).save(files["tiff"])
    png.from_array((a.astype(np.uint16) * 257).reshape(9, -1), "RGB;16").save(str(files["png16"]))
    for orientation in (3, 6, 8):  # 180 degrees keeps the sides; 6 and 8 turn them
        exif = Image.Exif()
        exif[0x0112] = orientation
        files[f"jpeg-o{orientation}"] = tmp_path / f"o{orientation}.jpg"
        Image.fromarray(a).save(files[f"jpeg-o{orientation}"], exif=exif.tobytes())
    la = (RNG.random((9, 14, 2)) * 65535).astype(np.uint16)  # a layout only tifffile reads, turned by its tag
    files["tiff-la16-o6"] = tmp_path / "la16.tif"
    kw = {"photometric": "minisblack", "extrasamples": ["unassalpha"], "planarconfig": "contig"}
    tifffile.imwrite(files["tiff-la16-o6"], la, extratags=[(274, "H", 1, 6, True)], **kw)
    for bits in (8, 16):  # TIFFs Pillow reads, turned by their tag: Pillow's own size is already turned
        files[f"tiff{bits}-o6"] = tmp_path / f"rgb{bits}o6.tif"
        pixels = a if bits == 8 else a.astype(np.uint16) * 257
        tifffile.imwrite(files[f"tiff{bits}-o6"], pixels, extratags=[(274, "H", 1, 6, True)])
    return files


def test_header_size_is_the_decoded_size_with_exif_orientation(tmp_path):
    from liif_cli.imageio import header_size

    files = _header_size_files(tmp_path)
    expected = {"png": (14, 9), "tiff": (14, 9), "png16": (14, 9), "jpeg-o3": (14, 9)}
    expected |= {"jpeg-o6": (9, 14), "jpeg-o8": (9, 14), "tiff-la16-o6": (9, 14), "tiff8-o6": (9, 14)}
    expected |= {"tiff16-o6": (9, 14)}
    for name, path in files.items():
        img = read_image(path)
        h, w = img.hw
        assert header_size(path) == (w, h) == expected[name], name
    assert read_image(files["png16"]).bits == 16 and read_image(files["tiff-la16-o6"]).mode == "LA"


def test_header_size_reads_no_pixels_and_keeps_the_input_doors_errors(tmp_path):
    from liif_cli.imageio import header_size

    files = _header_size_files(tmp_path)
    truncated = tmp_path / "truncated.png"  # the header is whole, the pixels are not: only a decode would fail
    truncated.write_bytes(files["png"].read_bytes()[:60])
    with pytest.raises(InputError):
        read_image(truncated)
    assert header_size(truncated) == (14, 9)
    for path in (files["png"], files["tiff-la16-o6"]):
        with pytest.raises(InputError, match="126 pixels"):
            header_size(path, max_pixels=125)
        assert header_size(path, max_pixels=None) == header_size(path)
    for bad, why in ((tmp_path / "missing.png", "not found|no such|does not exist"), (tmp_path, "folder|directory")):
        with pytest.raises(InputError, match=why):
            header_size(bad)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        header_size(tmp_path / "text.png")
