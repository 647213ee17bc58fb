"""One door for every file (issue 21): hostile inputs are refused one by one, a batch never dies of one.

Every file is made here: real images and clips, and hostile ones built the way the failures were found (a
zTXt chunk inflating to 64 MiB, a GIF without a palette, frame extents of 65535x65535, an APNG missing an
fcTL chunk, libtiff fax data that makes the C library talk, truncations, lying headers...). The model is a
tiny random-weight EDSR-baseline LIIF built by the project's own code: real, and fast on 12-pixel images.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from liif_cli.cli import main
from liif_cli.errors import InputError
from liif_cli.imageio import identify, read_image

av = pytest.importorskip("av")

from test_video import make_audio_only, make_clip  # noqa: E402

RNG = np.random.default_rng(21)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> list[str]:
    import torch

    from liif_cli.models.checkpoint import build_liif, save_official

    torch.manual_seed(21)
    path = tmp_path_factory.mktemp("model") / "random-edsr-baseline.pth"
    save_official(build_liif("edsr-baseline"), "edsr-baseline", path)
    return ["--model", str(path), "--device", "cpu", "--precision", "fp32", "--threads", "1"]


def run(*args):
    """`liif upscale ARGS` in-process, on a console wide enough that the summary table keeps a row a line."""
    result = CliRunner().invoke(main, ["upscale", *map(str, args)], catch_exceptions=False, env={"COLUMNS": "500"})
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result


def pixels(h=10, w=12, channels=3) -> np.ndarray:
    return (RNG.random((h, w, channels)) * 255).astype(np.uint8)


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        n = struct.unpack(">I", data[pos : pos + 4])[0]
        out.append((data[pos + 4 : pos + 8], data[pos : pos + 12 + n]))
        pos += 12 + n
    return out


def apng(frames=3) -> bytes:
    ims = [Image.fromarray(pixels()) for _ in range(frames)]
    return encode(ims[0], "PNG", save_all=True, append_images=ims[1:], duration=100, loop=0)


def animated_gif(frames=3) -> bytes:
    ims = [Image.fromarray(pixels()) for _ in range(frames)]
    return encode(ims[0], "GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)


# --- hostile files -----------------------------------------------------------------------------------


def ztxt_bomb() -> bytes:
    """A PNG whose zTXt chunk inflates to 64 MiB (Pillow's MAX_TEXT_CHUNK is 1 MiB)."""
    data = encode(Image.fromarray(pixels()), "PNG")
    text = chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * (64 << 20), 9))
    return data[:33] + text + data[33:]


def icc_bomb() -> bytes:
    data = encode(Image.fromarray(pixels()), "PNG")
    return data[:33] + chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * (64 << 20), 9)) + data[33:]


def png_huge_ihdr() -> bytes:
    data = encode(Image.fromarray(pixels()), "PNG")
    return data[:8] + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + data[33:]


def png_bad_colour_type() -> bytes:
    data = encode(Image.fromarray(pixels()), "PNG")
    return data[:8] + chunk(b"IHDR", struct.pack(">IIBBBBB", 12, 10, 8, 7, 0, 0, 0)) + data[33:]


def png_bad_crc() -> bytes:
    data = bytearray(encode(Image.fromarray(pixels()), "PNG"))
    data[29] ^= 0xFF  # IHDR's CRC
    return bytes(data)


def png_no_idat() -> bytes:
    data = encode(Image.fromarray(pixels()), "PNG")
    return b"".join(c for kind, c in [(b"", data[:8]), *png_chunks(data)] if kind != b"IDAT")


def png16_truncated() -> bytes:
    data = encode(Image.fromarray((RNG.random((40, 40)) * 65535).astype(np.uint16)), "PNG")
    return data[: len(data) // 2]


def apng_missing_fctl() -> bytes:
    data = apng()
    kept, seen = [data[:8]], 0
    for kind, c in png_chunks(data):
        seen += kind == b"fcTL"
        if not (kind == b"fcTL" and seen == 2):
            kept.append(c)
    return b"".join(kept)


def apng_frame_outside() -> bytes:
    """An fcTL whose frame is far larger than the canvas."""
    data = apng()
    out, seen = [data[:8]], 0
    for kind, c in png_chunks(data):
        if kind == b"fcTL":
            seen += 1
            if seen == 2:
                body = bytearray(c[8:-4])
                body[4:12] = struct.pack(">II", 60000, 60000)
                c = chunk(b"fcTL", bytes(body))
        out.append(c)
    return b"".join(out)


def apng_truncated() -> bytes:
    data = apng(4)
    return data[: int(len(data) * 0.7)]


def gif_no_palette() -> bytes:
    out = b"GIF89a" + struct.pack("<HHBBB", 4, 4, 0, 0, 0)
    return out + b"\x2c" + struct.pack("<HHHHB", 0, 0, 4, 4, 0) + b"\x02\x02\x44\x01\x00\x3b"


def gif_anim_no_palette() -> bytes:
    frame = (
        b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 4, 4, 0) + b"\x02\x02\x44\x01\x00"
    )
    return b"GIF89a" + struct.pack("<HHBBB", 4, 4, 0, 0, 0) + frame * 3 + b"\x3b"


def gif_huge_frame() -> bytes:
    data = bytearray(encode(Image.new("P", (4, 4)), "GIF"))
    i = data.index(b"\x2c")
    data[i + 5 : i + 9] = struct.pack("<HH", 65535, 65535)  # 4.29 billion pixels
    return bytes(data)


def gif_huge_later_frame() -> bytes:
    data = bytearray(animated_gif())
    i = data.index(b"\x2c", data.index(b"\x2c") + 1)  # the second image descriptor
    data[i + 5 : i + 9] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def gif_truncated() -> bytes:
    return animated_gif()[:40]


def jpeg_truncated() -> bytes:
    data = encode(Image.fromarray(pixels(64, 64)), "JPEG", quality=90)
    return data[: len(data) // 2]


def jpeg_huge_sof() -> bytes:
    data = bytearray(encode(Image.fromarray(pixels()), "JPEG"))
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", 65000, 65000)
    return bytes(data)


def jpeg_garbage() -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes(RNG.integers(0, 256, 300, dtype=np.uint8))


def webp_truncated() -> bytes:
    data = encode(Image.fromarray(pixels(32, 32)), "WEBP", quality=80)
    return data[: len(data) // 2]


def webp_bad_riff() -> bytes:
    data = bytearray(encode(Image.fromarray(pixels()), "WEBP", lossless=True))
    data[20:40] = b"\xff" * 20
    return bytes(data)


def tiff_fax_chatter() -> bytes:
    """Group 4 fax data scrambled: libtiff prints `Fax4Decode: Bad code word ...` from C."""
    data = bytearray(encode(Image.fromarray(RNG.random((64, 64)) > 0.5), "TIFF", compression="group4"))
    for i in range(8, 60):
        data[i] ^= 0x5A
    return bytes(data)


def tiff_huge() -> bytes:
    data = bytearray(encode(Image.fromarray(pixels()), "TIFF"))
    n = struct.unpack("<H", data[data[4] : data[4] + 2])[0]
    ifd = struct.unpack("<I", data[4:8])[0]
    for k in range(n):
        entry = ifd + 2 + 12 * k
        tag = struct.unpack("<H", data[entry : entry + 2])[0]
        if tag in (256, 257):
            data[entry + 2 : entry + 12] = struct.pack("<HII", 4, 1, 90000)
    return bytes(data)


def tiff_truncated() -> bytes:
    data = encode(Image.fromarray(pixels(40, 40)), "TIFF", compression="tiff_lzw")
    return data[:200]


def tiff_float() -> bytes:
    return encode(Image.fromarray(RNG.random((10, 12)).astype(np.float32)), "TIFF")


def bmp_huge() -> bytes:
    data = bytearray(encode(Image.fromarray(pixels()), "BMP"))
    data[18:26] = struct.pack("<ii", 80000, -80000)
    return bytes(data)


def bmp_truncated() -> bytes:
    return encode(Image.fromarray(pixels(40, 40)), "BMP")[:300]


def ppm_huge_header() -> bytes:
    return b"P6\n100000 100000\n255\n" + bytes(100)


def ico_lying_entry() -> bytes:
    data = bytearray(encode(Image.fromarray(pixels(16, 16)), "ICO", sizes=[(16, 16)]))
    data[18:22] = struct.pack("<I", 10**9)  # the image's offset, past the end
    return bytes(data)


def encoding_named_png() -> bytes:
    header = b'{"__metadata__":{"liif":"{}"}}'
    return struct.pack("<Q", len(header)) + header


def mp4_truncated(tmp: Path) -> bytes:
    clip = make_clip(tmp / "seed.mp4", n=3, w=16, h=12, rotation=0, audio=False)
    return clip.read_bytes()[:600]


HOSTILE = {
    "ztxt_64mib.png": ztxt_bomb,
    "iccp_64mib.png": icc_bomb,
    "ihdr_100000.png": png_huge_ihdr,
    "bad_colour_type.png": png_bad_colour_type,
    "bad_crc.png": png_bad_crc,
    "no_idat.png": png_no_idat,
    "png16_cut.png": png16_truncated,
    "apng_missing_fctl.png": apng_missing_fctl,
    "apng_frame_outside.png": apng_frame_outside,
    "apng_cut.apng": apng_truncated,
    "gif_no_palette.gif": gif_no_palette,
    "gif_anim_no_palette.gif": gif_anim_no_palette,
    "gif_4_billion.gif": gif_huge_frame,
    "gif_later_frame_huge.gif": gif_huge_later_frame,
    "gif_cut.gif": gif_truncated,
    "jpeg_cut.jpg": jpeg_truncated,
    "jpeg_65000.jpg": jpeg_huge_sof,
    "jpeg_garbage.jpeg": jpeg_garbage,
    "webp_cut.webp": webp_truncated,
    "webp_bad_riff.webp": webp_bad_riff,
    "tiff_90000.tif": tiff_huge,
    "tiff_cut.tiff": tiff_truncated,
    "float32.tif": tiff_float,
    "bmp_80000.bmp": bmp_huge,
    "bmp_cut.bmp": bmp_truncated,
    "ppm_100000.ppm": ppm_huge_header,
    "ico_lying.ico": ico_lying_entry,
    "encoding_inside.png": encoding_named_png,
    "empty.png": lambda: b"",
    "text.jpg": lambda: b"this is not an image\n" * 4,
    "random.mkv": lambda: bytes(RNG.integers(0, 256, 2000, dtype=np.uint8)),
    "empty.mp4": lambda: b"",
}


def make_hostile(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in HOSTILE.items():
        (folder / name).write_bytes(make())
        paths.append(folder / name)
    paths.append(folder / "cut.mp4")
    paths[-1].write_bytes(mp4_truncated(folder.parent))
    (folder.parent / "seed.mp4").unlink()
    paths.append(make_audio_only(folder / "sound_only.mkv", "libopus", samples=960, sample_format="flt", frames=3))
    return paths


def make_valid(folder: Path) -> dict[Path, tuple[str, tuple[int, int]]]:
    """Good inputs -> the output extension and size (w, h) each must get at --scale 1.5; the scrambled fax
    is readable (libtiff decodes what it can) and talks while it is decoded."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb, rgba = Image.fromarray(pixels()), Image.fromarray(pixels(channels=4))
    files = {
        "rgb.png": (encode(rgb, "PNG"), ".png"),
        "rgba.png": (encode(rgba, "PNG"), ".png"),
        "photo.jpg": (encode(rgb, "JPEG", quality=90), ".jpg"),
        "progressive.jpg": (encode(rgb, "JPEG", quality=90, progressive=True), ".jpg"),
        "still.gif": (encode(rgb.convert("P"), "GIF"), ".png"),
        "moving.gif": (animated_gif(), ".gif"),
        "moving.png": (apng(), ".png"),
        "lossless.webp": (encode(rgb, "WEBP", lossless=True), ".webp"),
        "deflate.tif": (encode(rgb, "TIFF", compression="tiff_adobe_deflate"), ".tif"),
        "plain.bmp": (encode(rgb, "BMP"), ".png"),
        "bilevel.pbm": (encode(rgb.convert("1"), "PPM"), ".png"),
        "gray.pgm": (encode(rgb.convert("L"), "PPM"), ".png"),
        "sgi.sgi": (encode(rgb, "SGI"), ".png"),
        "qoi.qoi": (encode(rgb, "QOI"), ".png"),
        "icon.ico": (encode(rgba, "ICO", sizes=[(12, 10)]), ".png"),
    }
    out = {}
    for name, (data, ext) in files.items():
        (folder / name).write_bytes(data)
        out[folder / name] = (ext, (18, 15))
    (folder / "fax4_scrambled.tif").write_bytes(tiff_fax_chatter())
    out[folder / "fax4_scrambled.tif"] = (".tif", (96, 96))
    out[make_clip(folder / "clip.mp4", n=3, w=16, h=12, rotation=0, audio=False)] = (".mp4", (24, 18))
    return out


def test_every_hostile_file_is_refused_by_the_door_in_one_line(tmp_path):
    warnings_seen: list[str] = []
    for path in make_hostile(tmp_path / "bad"):
        with pytest.raises(InputError) as caught:
            found = identify(path)
            if found.kind == "still":
                read_image(path, warn=warnings_seen.append)
            elif found.kind == "animation":
                from liif_cli.animated import read_animation

                read_animation(path)
            elif found.kind == "video":
                from liif_cli.video import iter_frames, probe

                probe(path)
                list(iter_frames(path))
            else:
                raise InputError(f"{path}: an encoding, not an image")
        message = str(caught.value)
        assert "\n" not in message and message.startswith(str(path)), message
    fax = tmp_path / "fax.tif"
    fax.write_bytes(tiff_fax_chatter())
    talk: list[str] = []
    read_image(fax, warn=talk.append)  # readable: libtiff decodes what it can, and talks
    assert talk and all(w.startswith(f"{fax}: Fax4Decode: ") for w in talk), talk
    assert all(w.startswith(str(tmp_path / "bad")) for w in warnings_seen), warnings_seen  # each names its file


def test_ztxt_bomb_alone_and_among_five_good_images(tmp_path, model):
    bomb = tmp_path / "ztxt.png"
    bomb.write_bytes(ztxt_bomb())
    alone = run(bomb, "--scale", "1.5", *model)
    assert alone.exit_code == 3
    errors = [line for line in alone.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [alone.stderr.splitlines()[-1]] and "decompression bomb" in errors[0], alone.stderr
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    bomb.rename(folder / "sub" / "ztxt.png")
    for i in range(5):
        Image.fromarray(pixels()).save(folder / ("sub" if i % 2 else ".") / f"good{i}.png")
    result = run(folder, "-r", "--scale", "1.5", "-o", tmp_path / "out", *model)
    assert result.exit_code == 1, result.stderr
    written = sorted(p.name for p in (tmp_path / "out").rglob("*.png"))
    assert written == [f"good{i}_x1.5.png" for i in range(5)]
    assert "5 written, 0 skipped, 1 failed" in result.stderr
    assert "ztxt.png" in result.stderr and "decompression bomb" in result.stderr


def test_a_folder_of_hostile_and_valid_files_in_one_recursive_batch(tmp_path, model):
    src = tmp_path / "in"
    hostile = make_hostile(src / "hostile")
    valid = make_valid(src / "valid" / "deeper")
    assert len(hostile) >= 30 and len(valid) >= 10
    out = tmp_path / "out"
    result = run(src, "-r", "--scale", "1.5", "-o", out, *model)
    assert result.exit_code == 1, result.stderr
    summary = result.stderr.split("\n")
    for path, (ext, size) in valid.items():
        target = out / "valid" / "deeper" / f"{path.stem}_x1.5{ext}"
        assert target.is_file(), (path.name, result.stderr)
        if ext == ".mp4":
            from liif_cli.video import probe

            assert (probe(target).width, probe(target).height) == size
        else:
            with Image.open(target) as im:
                im.load()
                assert im.size == size
    assert f"{len(valid)} written, 0 skipped, {len(hostile)} failed" in result.stderr
    for path in hostile:  # listed in the summary table, with a reason
        rows = [line.split() for line in summary if line.startswith("failed ")]  # status, file, reason
        reasons = [" ".join(row[2:]) for row in rows if row[1] == str(path)]
        assert len(reasons) == 1 and reasons[0].startswith(f"{path}: "), (path.name, result.stderr)
    assert "warning:" in result.stderr and "Fax4Decode" in result.stderr
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".liif-tmp")]

    fax = src / "valid" / "deeper" / "fax4_scrambled.tif"
    quiet = run(src / "hostile", fax, "-r", "--scale", "1.5", "-o", tmp_path / "quiet", "-q", *model)
    assert quiet.exit_code == 1
    lines = quiet.stderr.splitlines()
    assert lines and all(line.startswith(("error: ", "warning: ")) for line in lines), quiet.stderr
    assert sum(line.startswith("error: ") for line in lines) == len(hostile) + 1  # each file, then the count
    assert any(line.startswith("warning: ") and "Fax4Decode" in line for line in lines)


def test_stills_stay_stills_and_match_the_same_picture_as_png(tmp_path, model):
    picture = Image.fromarray(pixels())
    formats = {
        "pbm": picture.convert("1"),
        "pgm": picture.convert("L"),
        "sgi": picture,
        "qoi": picture,
        "ico": picture.convert("RGBA"),
    }
    for ext, im in formats.items():
        src = tmp_path / f"pic.{ext}"
        im.save(src, **({"sizes": [im.size]} if ext == "ico" else {}))
        with Image.open(src) as decoded:
            decoded.save(tmp_path / f"same_{ext}.png")  # the same picture, as PNG
        for path in (src, tmp_path / f"same_{ext}.png"):
            result = run(path, "--scale", "1.5", *model)
            assert result.exit_code == 0, result.stderr
        out = tmp_path / "pic_x1.5.png"
        assert out.is_file() and not list(tmp_path.glob("pic_x1.5.mkv")), ext
        with Image.open(out) as a, Image.open(tmp_path / f"same_{ext}_x1.5.png") as b:
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b)), ext
        out.unlink()


def one_frame_clip(path: Path) -> Path:
    return make_clip(path, n=1, w=16, h=12, rotation=0, audio=False)


@pytest.mark.parametrize(
    "args",
    [["--frames", "1000:"], ["--frames", "1:3"], ["--time", "100:"], ["--time", "0.05:0.2"], ["--frames", "2:2"]],
)
def test_ranges_past_the_end_or_empty_are_exit_2_with_nothing_written(tmp_path, model, args):
    clip = one_frame_clip(tmp_path / "one.mp4")
    result = run(clip, "--scale", "2", "-q", *args, *model)
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.mp4"]


def test_a_video_with_no_frame_encoded_is_not_renamed_into_place(tmp_path, model):
    """One video frame and two seconds of sound: the header says the clip lasts 2 s, so `--time 1:` passes the
    up-front check, selects no video frame, and the encoder writes none: the file is removed, not kept."""
    clip = tmp_path / "short.mkv"
    with av.open(str(clip), "w") as out:
        v = out.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 16, 12, "yuv420p"
        a = out.add_stream("libopus", rate=48000)
        for p in v.encode(av.VideoFrame.from_ndarray(pixels(12, 16), format="rgb24")):
            out.mux(p)
        for p in v.encode():
            out.mux(p)
        for i in range(100):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
            af.sample_rate, af.pts = 48000, i * 960
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    result = run(clip, "--scale", "2", "--time", "1:", "-q", *model)
    assert result.exit_code == 2, result.stderr
    assert f"error: {clip}: the --time range selects no frame; nothing written\n" == result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.mkv"]
