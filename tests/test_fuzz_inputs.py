"""Fuzzing the input door (issue 21): seeded mutants of real files, each through `imageio.identify` and the
decoder it leads to, a sample through `liif upscale`.

The seed corpus is made here: PNG, APNG, JPEG, progressive JPEG, GIF (animated), WebP, TIFF, BMP, and short
MP4 (H.264) and MKV (FFV1) clips. Each mutant is one seed with one to three seeded edits: byte flips,
truncations, a chunk duplicated or removed (PNG chunks by their structure, other files by a byte range), a
length or size field set to an extreme (PNG chunk lengths, IHDR / fcTL sizes; 16- and 32-bit words
elsewhere). A mutant passes when it is decoded (it would be written) or refused with a documented exit code
and one line naming the file; anything else is a failure, a hang too (a per-file timeout: the mutants run
in worker processes, which are killed when one does not answer). No temporary file may be left.

CI runs 2,000 mutants (about 30 s on two busy cores). To run longer, set `LIIF_FUZZ_MUTANTS` (e.g. 50000);
`LIIF_FUZZ_SEED` picks another mutation seed, `LIIF_FUZZ_TIMEOUT` the per-file timeout in seconds (10).
The outcome table is printed (`pytest -s` shows it).
"""

from __future__ import annotations

import io
import os
import random
import struct
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

MUTANTS = int(os.environ.get("LIIF_FUZZ_MUTANTS", "2000"))
SEED = int(os.environ.get("LIIF_FUZZ_SEED", "21"))
TIMEOUT = float(os.environ.get("LIIF_FUZZ_TIMEOUT", "10"))
MAX_PIXELS = 4_000_000  # the door's limit for the fuzz: a mutant may declare any size, the guard must hold
DOCUMENTED_EXIT_CODES = {2, 3, 4, 9}


# --- the seed corpus ---------------------------------------------------------------------------------


def _pixels(h=12, w=16, channels=3, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, channels)) * 255).astype(np.uint8)


def _save(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def _clip(path: Path, codec: str, pix_fmt: str) -> bytes:
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=Fraction(24))
        v.width, v.height, v.pix_fmt = 16, 12, pix_fmt
        for i in range(3):
            for p in v.encode(av.VideoFrame.from_ndarray(_pixels(seed=i), format="rgb24")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    data = path.read_bytes()
    path.unlink()
    return data


def seed_corpus(folder: Path) -> dict[str, bytes]:
    rgb, rgba = Image.fromarray(_pixels()), Image.fromarray(_pixels(channels=4, seed=1))
    frames = [Image.fromarray(_pixels(seed=s)) for s in range(3)]
    return {
        "png": _save(rgba, "PNG"),
        "apng": _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "jpg": _save(rgb, "JPEG", quality=90),
        "progressive.jpg": _save(rgb, "JPEG", quality=90, progressive=True),
        "gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "webp": _save(rgb, "WEBP", quality=80),
        "tif": _save(rgb, "TIFF", compression="tiff_adobe_deflate"),
        "bmp": _save(rgb, "BMP"),
        "mp4": _clip(folder / "seed.mp4", "libx264", "yuv420p"),
        "mkv": _clip(folder / "seed.mkv", "ffv1", "yuv420p"),
    }


# --- mutations ---------------------------------------------------------------------------------------

EXTREMES = (0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000, 65500)


def _png_chunks(data: bytes) -> list[tuple[int, int]] | None:
    """(start, end) of each chunk of a PNG, None when it is not one."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    out, pos = [], 8
    while pos + 12 <= len(data):
        n = struct.unpack(">I", data[pos : pos + 4])[0]
        out.append((pos, min(pos + 12 + n, len(data))))
        pos += 12 + n
    return out


def _span(rng: random.Random, data: bytes, chunks) -> tuple[int, int]:
    if chunks:
        return rng.choice(chunks)
    a = rng.randrange(len(data))
    return a, min(len(data), a + rng.randint(1, 64))


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if len(out) < 16:
            break
        chunks = _png_chunks(bytes(out))
        op = rng.choice(("flip", "truncate", "duplicate", "remove", "field"))
        if op == "flip":
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif op == "truncate":
            del out[rng.randint(1, len(out) - 1) :]
        elif op == "duplicate":
            a, b = _span(rng, out, chunks)
            out[b:b] = out[a:b]
        elif op == "remove":
            a, b = _span(rng, out, chunks)
            del out[a:b]
        elif chunks and rng.random() < 0.7:  # a PNG length or size field
            a, _b = rng.choice(chunks)
            kind = bytes(out[a + 4 : a + 8])
            if kind in (b"IHDR", b"fcTL") and rng.random() < 0.6:
                at = a + 8 + (4 if kind == b"fcTL" else 0) + rng.choice((0, 4))
            else:
                at = a
            out[at : at + 4] = struct.pack(">I", rng.choice(EXTREMES))
        else:
            width = rng.choice((2, 4))
            at = rng.randrange(max(1, len(out) - width))
            value = rng.choice(EXTREMES) & (0xFFFF if width == 2 else 0xFFFFFFFF)
            out[at : at + width] = value.to_bytes(width, rng.choice(("little", "big")))
    return bytes(out)


# --- one mutant through the door (in a worker process) -----------------------------------------------


def check(path_text: str) -> tuple[str, str, str]:
    """(path, outcome, detail): "decoded", "refused N" (the exit code), or "bad" with what went wrong."""
    from liif_cli.errors import LiifError

    path = Path(path_text)
    try:
        _decode(path)
    except LiifError as exc:
        message = str(exc)
        if exc.exit_code not in DOCUMENTED_EXIT_CODES:
            return path_text, "bad", f"exit code {exc.exit_code}: {message}"
        if "\n" in message or not message.startswith(str(path)):
            return path_text, "bad", f"not one line naming the file: {message!r}"
        return path_text, f"refused {exc.exit_code}", message
    except Exception as exc:
        return path_text, "bad", f"{type(exc).__name__}: {exc}"
    finally:
        path.unlink()
    return path_text, "decoded", ""


def _decode(path: Path) -> None:
    from liif_cli.animated import iter_animation
    from liif_cli.imageio import identify, read_image
    from liif_cli.video import iter_frames, probe

    found = identify(path, max_pixels=MAX_PIXELS)
    if found.kind == "still":
        read_image(path, max_pixels=MAX_PIXELS, warn=lambda _msg: None)
    elif found.kind == "animation":
        for _frame in iter_animation(path, max_pixels=MAX_PIXELS):
            pass
    elif found.kind == "video":
        probe(path, max_pixels=MAX_PIXELS)
        for i, _frame in enumerate(iter_frames(path, max_pixels=MAX_PIXELS)):
            if i >= 50:
                break
    else:
        from liif_cli.errors import InputError

        raise InputError(f"{path}: a saved encoding")


def _worker_init() -> None:
    import warnings

    warnings.simplefilter("ignore")  # decoder messages are the door's to route; here they are not the subject


# --- the test ----------------------------------------------------------------------------------------


def test_seeded_mutants_are_decoded_or_refused_in_one_line(tmp_path, monkeypatch):
    import multiprocessing

    corpus = tmp_path / "corpus"
    scratch = tmp_path / "tmp"  # the workers' TMPDIR: must be empty at the end
    corpus.mkdir()
    scratch.mkdir()
    seeds = seed_corpus(tmp_path)
    rng = random.Random(SEED)
    names = sorted(seeds)
    paths, origin = [], {}
    for i in range(MUTANTS):
        name = names[i % len(names)]
        path = corpus / f"m{i:06d}.{name.rsplit('.', 1)[-1]}"
        path.write_bytes(mutate(seeds[name], rng))
        paths.append(str(path))
        origin[str(path)] = name
    monkeypatch.setenv("TMPDIR", str(scratch))
    t0 = time.monotonic()
    outcomes: Counter = Counter()
    table: Counter = Counter()
    bad: list[str] = []
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2, initializer=_worker_init) as pool:
        results = pool.imap_unordered(check, paths)
        for _ in paths:
            try:
                path, outcome, detail = results.next(timeout=TIMEOUT)  # type: ignore[attr-defined]
            except multiprocessing.TimeoutError:
                pool.terminate()
                pytest.fail(f"a mutant did not finish within {TIMEOUT:g} s a file (a hang)")
            outcomes[outcome] += 1
            table[origin[path], outcome] += 1
            if outcome == "bad":
                bad.append(f"{Path(path).name} (from {origin[path]}): {detail}")
    seconds = time.monotonic() - t0
    _print_table(table, outcomes, seconds)
    assert not bad, "\n".join(bad[:20])
    assert sum(outcomes.values()) == MUTANTS
    assert outcomes["decoded"] > 0 and any(k.startswith("refused") for k in outcomes)
    assert list(corpus.iterdir()) == [] and list(scratch.iterdir()) == []  # no file left behind


def _print_table(table: Counter, outcomes: Counter, seconds: float) -> None:
    columns = sorted(outcomes)
    print(f"\n{sum(outcomes.values())} mutants in {seconds:.1f} s (seed {SEED})")
    print(f"{'seed':<16}" + "".join(f"{c:>12}" for c in columns))
    for name in sorted({n for n, _ in table}):
        print(f"{name:<16}" + "".join(f"{table[name, c]:>12}" for c in columns))
    print(f"{'total':<16}" + "".join(f"{outcomes[c]:>12}" for c in columns))


def test_a_sample_of_mutants_through_the_cli(tmp_path):
    """One batch of 30 mutants (3 of each seed) through `liif upscale -q` with a tiny random-weight model:
    exit 0 or 1, only `error:` and `warning:` lines, no internal error, every output readable, nothing left."""
    import torch
    from click.testing import CliRunner

    from liif_cli.cli import main
    from liif_cli.models.checkpoint import build_liif, save_official

    torch.manual_seed(0)
    model = tmp_path / "random.pth"
    save_official(build_liif("edsr-baseline"), "edsr-baseline", model)
    seeds = seed_corpus(tmp_path)
    rng = random.Random(SEED + 1)
    src = tmp_path / "in"
    src.mkdir()
    for name in sorted(seeds):
        for k in range(3):
            (src / f"{name.replace('.', '_')}_{k}.{name.rsplit('.', 1)[-1]}").write_bytes(mutate(seeds[name], rng))
    out = tmp_path / "out"
    args = ["upscale", str(src), "--scale", "1.5", "-o", str(out), "-q", "--max-pixels", str(MAX_PIXELS)]
    args += ["--model", str(model), "--device", "cpu", "--precision", "fp32", "--threads", "1"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    lines = result.stderr.splitlines()
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), result.stderr
    assert "internal error" not in result.output and "Traceback" not in result.output
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    for p in written:
        if p.suffix in (".mp4", ".mkv"):
            from liif_cli.video import probe

            assert probe(p).frames
        else:
            with Image.open(p) as im:
                im.load()
    failed = sum(line.startswith("error: ") for line in lines) - (result.exit_code == 1)
    assert len(written) + failed == 30, result.stderr
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".") and "liif-tmp" in p.name]
    print(f"\nCLI sample: 30 mutants, {len(written)} written, {failed} refused, exit {result.exit_code}")
