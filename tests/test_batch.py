"""batch: option parsing, input collection, output planning, lazy model, per-file results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liif_cli.batch import (
    MAX_SIDE,
    BatchOptions,
    LazyModel,
    Reporter,
    SizeSpec,
    collect_inputs,
    plan_batch,
    raise_for_failures,
    run_batch,
)
from liif_cli.errors import BatchError, InputError, ModelError, OutputError, UsageError, flag_name
from liif_cli.imageio import DecodedImage
from liif_cli.load_options import LoadOptions
from liif_cli.specs import parse_int, parse_pixels, parse_scale, parse_size

RNG = np.random.default_rng(7)


def save(path: Path, h=12, w=12, mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = (RNG.random((h, w, 4)) * 255).astype(np.uint8)
    fmt = None if path.suffix in Image.registered_extensions() else "PNG"
    Image.fromarray(a).convert(mode).save(path, format=fmt)
    return path


@pytest.fixture(scope="module")
def upscaler(official_weights):
    """Trained weights (../shared or the verified cache): the alpha edge must survive a real model."""
    from liif_cli.api import load_model

    return load_model(official_weights, device="cpu")


# --- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf", "abc", "", "2,", ",2", "1,2,3", "1e999", "2e6"])
def test_bad_scales(text):
    with pytest.raises(UsageError):
        parse_scale(text)


def test_good_scales_and_tags():
    assert parse_scale("2") == 2.0
    assert parse_scale(" 7.5 ") == 7.5
    assert parse_scale("2,3") == (2.0, 3.0)
    assert SizeSpec(scale=7.5).tag() == "x7.5"
    assert SizeSpec(scale=4.0).tag() == "x4"
    assert SizeSpec(scale=(2.0, 3.0)).tag() == "x2x3"
    assert SizeSpec(size=(4000, 3000)).tag() == "4000x3000"
    assert SizeSpec(width=4000).tag() == "w4000"
    assert SizeSpec(height=300).tag() == "h300"


@pytest.mark.parametrize("text", ["0x5", "5x0", "4000", "x", "1e9x1e9", "-4x4", "4.5x3", "axb", "4x4x4", ""])
def test_bad_sizes(text):
    with pytest.raises(UsageError):
        parse_size(text)


def test_sizes_and_spec_parsing():
    assert parse_size("4000x3000") == (4000, 3000)
    assert parse_size("64X48") == (64, 48)
    assert SizeSpec(width=parse_int("100", "width", maximum=MAX_SIDE)).width == 100
    with pytest.raises(UsageError, match="exactly one"):
        SizeSpec()
    with pytest.raises(UsageError, match=r"\(got scale, width\)") as caught:
        SizeSpec(scale=2.0, width=10)
    assert caught.value.render(flag_name).endswith("(got --scale, --width)")
    for bad in ("0", "-3", "1.5", "abc", "99999999999"):
        with pytest.raises(UsageError):
            parse_int(bad, "width", maximum=MAX_SIDE)


def test_pixel_limits():
    assert parse_pixels("100M", "x") == 100_000_000
    assert parse_pixels("250MP", "x") == 250_000_000
    assert parse_pixels("1.5G", "x") == 1_500_000_000
    assert parse_pixels("12345", "x") == 12345
    assert parse_pixels("0", "x") is None and parse_pixels("none", "x") is None
    for bad in ("-5", "abc", "1e9", "M"):
        with pytest.raises(UsageError):
            parse_pixels(bad, "x")


def test_resolve_checks_output_limit():
    spec = SizeSpec(scale=2.0)
    assert spec.resolve((10, 20)) == (20, 40)
    assert SizeSpec(width=30).resolve((10, 20)) == (15, 30)
    assert SizeSpec(scale=(2.0, 3.0)).resolve((10, 20)) == (30, 40)
    with pytest.raises(UsageError, match="raise it with max out pixels") as caught:
        spec.resolve((1000, 1000), max_out_pixels=1_000_000)
    assert caught.value.param == "max_out_pixels" and "--max-out-pixels" in caught.value.render(flag_name)
    with pytest.raises(UsageError, match="too large"):
        SizeSpec(scale=900_000.0).resolve((1000, 1000), max_out_pixels=None)
    with pytest.raises(UsageError, match="^size 30000x30000") as caught:
        BatchOptions(spec=SizeSpec(size=(30000, 30000)))
    assert caught.value.render(flag_name).startswith("--size 30000x30000")


def test_batch_options_validation():
    spec = SizeSpec(scale=2.0)
    for kwargs in ({"alpha": "magic"}, {"ext": "bmp"}, {"quality": 0}, {"suffix": "a/b"}):
        with pytest.raises(UsageError):
            BatchOptions(spec=spec, **kwargs)
    assert BatchOptions(spec=spec, ext=".JPG").ext == "jpg"


# --- collecting and planning -----------------------------------------------------------------------


def test_collect_inputs(tmp_path):
    save(tmp_path / "d" / "b.png")
    save(tmp_path / "d" / "a.jpg")
    save(tmp_path / "d" / "sub" / "c.png")
    save(tmp_path / "d" / ".hidden.png")
    (tmp_path / "d" / "notes.txt").write_text("x")
    odd = save(tmp_path / "odd.data")
    flat = collect_inputs([tmp_path / "d", odd, tmp_path / "d" / "a.jpg"])
    assert [p.name for p, _ in flat] == ["a.jpg", "b.png", "odd.data"]  # a.jpg named twice: taken once
    assert flat[0][1] == tmp_path / "d" and flat[2][1] is None
    deep = collect_inputs([tmp_path / "d"], recursive=True)
    assert [p.relative_to(tmp_path / "d").as_posix() for p, _ in deep] == ["a.jpg", "b.png", "sub/c.png"]
    assert collect_inputs([tmp_path / "missing.png"]) == [(tmp_path / "missing.png", None)]


def test_plan_default_beside_input_with_scale_suffix(tmp_path):
    a = save(tmp_path / "photo.png")
    b = save(tmp_path / "pic.jpg")
    jobs = plan_batch([a, b], BatchOptions(spec=SizeSpec(scale=7.5)))
    assert [j.output for j in jobs] == [tmp_path / "photo_x7.5.png", tmp_path / "pic_x7.5.jpg"]
    jobs = plan_batch([b], BatchOptions(spec=SizeSpec(size=(40, 30)), ext="png", suffix="big"))
    assert jobs[0].output == tmp_path / "pic_big.png"
    bmp = save(tmp_path / "old.bmp")
    assert plan_batch([bmp], BatchOptions(spec=SizeSpec(width=40)))[0].output == tmp_path / "old_w40.png"


def test_plan_output_file_and_mirrored_folder(tmp_path):
    a = save(tmp_path / "in" / "a.png")
    save(tmp_path / "in" / "sub" / "b.png")
    jobs = plan_batch([a], BatchOptions(spec=SizeSpec(scale=2.0), output=tmp_path / "one.webp"))
    assert jobs[0].output == tmp_path / "one.webp"
    opts = BatchOptions(spec=SizeSpec(scale=2.0), output=tmp_path / "out", recursive=True)
    jobs = plan_batch([tmp_path / "in"], opts)
    assert [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs] == ["a_x2.png", "sub/b_x2.png"]
    with pytest.raises(UsageError, match="names a file"):
        plan_batch([tmp_path / "in"], BatchOptions(spec=SizeSpec(scale=2.0), output=tmp_path / "x.png"))
    with pytest.raises(UsageError, match="disagree"):
        plan_batch([a], BatchOptions(spec=SizeSpec(scale=2.0), output=tmp_path / "x.png", ext="jpg"))
    with pytest.raises(UsageError, match="cannot write"):
        plan_batch([a], BatchOptions(spec=SizeSpec(scale=2.0), output=tmp_path / "x.bmp"))
    with pytest.raises(InputError, match="no image or video files"):
        (tmp_path / "empty").mkdir()
        plan_batch([tmp_path / "empty"], BatchOptions(spec=SizeSpec(scale=2.0)))


def test_plan_skips_existing_refuses_inputs_and_collisions(tmp_path):
    a = save(tmp_path / "a.png")
    b = save(tmp_path / "a.jpg")
    save(tmp_path / "a_x2.png")  # existing output, and also an earlier output of this command
    opts = BatchOptions(spec=SizeSpec(scale=2.0), ext="png")
    jobs = plan_batch([a, b], opts)
    assert jobs[0].skip and "exists" in str(jobs[0].skip)
    assert isinstance(jobs[1].error, OutputError) and "also the output" in str(jobs[1].error)
    jobs = plan_batch([tmp_path], BatchOptions(spec=SizeSpec(scale=2.0), overwrite=True))
    by_name = {j.input.name: j for j in jobs}
    assert by_name["a_x2.png"].skip and "looks like an output" in str(by_name["a_x2.png"].skip)
    assert by_name["a.png"].skip is None and by_name["a.png"].error is None  # a_x2.png is not an input
    jobs = plan_batch([a], BatchOptions(spec=SizeSpec(scale=2.0), suffix="", overwrite=True))
    assert isinstance(jobs[0].error, OutputError) and "overwrite an input" in str(jobs[0].error)


# --- running ---------------------------------------------------------------------------------------


class Recorder(Reporter):
    def __init__(self):
        self.events: list[tuple] = []

    def progress(self, done, total):
        self.events.append(("progress", done, total))

    def file_end(self, result):
        self.events.append(("end", result.status))

    def warn(self, message):
        self.events.append(("warn", message))


def test_all_bad_or_skipped_batch_never_loads_the_model(tmp_path):
    (tmp_path / "bad.png").write_text("not a png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    save(tmp_path / "done.png")
    save(tmp_path / "done_x2.png")
    opts = BatchOptions(spec=SizeSpec(scale=2.0))
    jobs = plan_batch([tmp_path / "bad.png", tmp_path / "empty.jpg", tmp_path / "done.png"], opts)

    lazy = LazyModel(tmp_path / "no-such-weights.pth", LoadOptions(device="cpu"))  # loading it would fail
    results = run_batch(jobs, opts, lazy, Recorder())
    assert [r.status for r in results] == ["failed", "failed", "skipped"]
    assert lazy.loads == 0
    with pytest.raises(BatchError, match="2 of 3 files failed"):
        raise_for_failures(results)
    with pytest.raises(InputError):
        raise_for_failures(results[:1], single_input=True)


def test_model_load_errors_stop_the_batch(tmp_path):
    a = save(tmp_path / "a.png")
    opts = BatchOptions(spec=SizeSpec(scale=2.0))

    with pytest.raises(ModelError):
        run_batch(plan_batch([a], opts), opts, LazyModel(tmp_path / "no-such-weights.pth", LoadOptions(device="cpu")))
    assert not (tmp_path / "a_x2.png").exists()


def test_upscale_image_modes_and_alpha_methods(upscaler):
    rgb = RNG.random((10, 12, 3)).astype(np.float32)
    alpha = np.zeros((10, 12), np.float32)
    alpha[:, 6:] = 1.0
    img = DecodedImage(rgb=rgb, alpha=alpha, mode="RGBA", dpi=(100.0, 50.0))
    seen = []
    out_m = upscaler.upscale_image(img, (20, 24), alpha="model", progress=lambda d, t: seen.append((d, t)))
    out_b = upscaler.upscale_image(img, (20, 24), alpha="bicubic")
    assert out_m.rgb.shape == (20, 24, 3) and out_m.alpha.shape == (20, 24)
    assert np.array_equal(out_m.rgb, out_b.rgb)
    for a in (out_m.alpha, out_b.alpha):
        assert a.min() >= 0 and a.max() <= 1
        assert a[:, :10].max() < 0.1 and a[:, 14:].min() > 0.9
    assert seen and seen[-1][0] == seen[-1][1]  # two passes reported as one job that completes
    assert out_m.dpi == pytest.approx((200.0, 100.0))
    opaque = DecodedImage(rgb=rgb, alpha=np.ones((10, 12), np.float32), mode="RGBA")
    assert np.all(upscaler.upscale_image(opaque, (15, 18)).alpha == 1.0)
    with pytest.raises(UsageError):
        upscaler.upscale_image(img, (20, 24), alpha="nearest")


def test_run_batch_writes_and_loads_once(tmp_path, model_path):
    files = [save(tmp_path / f"{i}.png", mode=m) for i, m in enumerate(["RGB", "RGBA", "L", "LA"])]
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    files.insert(2, tmp_path / "broken.png")
    opts = BatchOptions(spec=SizeSpec(scale=1.5), alpha="bicubic")
    lazy = LazyModel(model_path, LoadOptions(device="cpu"))
    rec = Recorder()
    results = run_batch(plan_batch(files, opts), opts, lazy, rec)
    assert [r.status for r in results] == ["written", "written", "failed", "written", "written"]
    assert lazy.loads == 1
    for r, mode in zip([results[i] for i in (0, 1, 3, 4)], ["RGB", "RGBA", "L", "LA"], strict=True):
        with Image.open(r.output) as im:
            assert im.mode == mode and im.size == (18, 18)
    assert any(e[0] == "progress" for e in rec.events)


def test_rgb_results_are_quantized_tile_by_tile_like_quantize(upscaler):
    from liif_cli.imageio import quantize

    rgb = RNG.random((10, 12, 3)).astype(np.float32)
    for bits, dtype in ((8, np.uint8), (16, np.uint16)):
        out = upscaler.upscale_image(DecodedImage(rgb=rgb, bits=bits), (20, 24))
        assert out.rgb.dtype == dtype
        expected = quantize(upscaler.upscale_array(rgb, (20, 24)), bits)
        assert np.array_equal(out.rgb, expected)
    gray = upscaler.upscale_image(DecodedImage(rgb=rgb, mode="L"), (20, 24))
    assert gray.rgb.dtype == np.float32


# --- the library's text names parameters; the CLI names them as flags --------------------------------


def test_batch_messages_name_parameters_and_the_cli_names_flags(tmp_path):
    from liif_cli.batch import VideoOptions

    with pytest.raises(UsageError) as lossless:
        VideoOptions(codec="ffv1", crf=3)
    assert str(lossless.value) == "ffv1 is lossless and takes no crf"
    assert lossless.value.render(flag_name) == "ffv1 is lossless and takes no --crf"
    a = save(tmp_path / "a.png")
    with pytest.raises(UsageError) as video_only:
        plan_batch([a], BatchOptions(spec=SizeSpec(scale=2.0), video=VideoOptions(codec="h264", crf=20)))
    assert video_only.value.render(flag_name) == "--codec, --crf apply to videos only, and no input is a video"
    save(tmp_path / "a_x2.png")
    (job,) = plan_batch([a], BatchOptions(spec=SizeSpec(scale=2.0)))
    assert str(job.skip) == f"{tmp_path / 'a_x2.png'}: already exists (use overwrite to replace it)"
    assert job.skip.render(flag_name) == f"{tmp_path / 'a_x2.png'}: already exists (use --overwrite to replace it)"
    (result,) = run_batch([job], BatchOptions(spec=SizeSpec(scale=2.0)), LazyModel(tmp_path / "none.pth"))
    assert result.status == "skipped" and result.describe(flag_name).endswith("(use --overwrite to replace it)")


def test_library_error_texts_speak_of_no_flags():
    """Every string in a raise or an error built by the library modules: no `--flag` and no `-o`."""
    import ast
    import re

    from conftest import ROOT

    flag = re.compile(r"(^|\s|\()(--[a-z][a-z-]*|-o)(\s|$|\)|:|,)")
    files = [ROOT / "liif_cli" / name for name in ("api.py", "sources.py", "encoding.py", "specs.py", "sizes.py")]
    files += [*(ROOT / "liif_cli" / "batch").glob("*.py"), *(ROOT / "liif_cli" / "imageio").glob("*.py")]
    found = []
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            built = isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", ""))
            if not (isinstance(node, ast.Raise) or (built and (built.endswith("Error") or built in ("exists",)))):
                continue
            for text in ast.walk(node):
                if isinstance(text, ast.Constant) and isinstance(text.value, str) and flag.search(text.value):
                    found.append(f"{path.name}:{text.lineno}: {text.value!r}")
    assert found == []
