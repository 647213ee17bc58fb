"""Saved encodings (issue 10): encode -> save -> load_encoding -> render equals `upscale` of the same
image, for RGB, RGBA and 16-bit inputs; bad .liif files are refused with one line and their exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import png  # pypng
import pytest
import torch
from conftest import MODEL_PATH
from safetensors.torch import load_file, save_file

from liif_cli import load_encoding, load_model
from liif_cli.api import Upscaler
from liif_cli.errors import EncodingError, EncodingModelError, OutputError
from liif_cli.imageio import DecodedImage, read_image

pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF
RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def up():
    return load_model(MODEL_PATH, device="cpu", precision="fp32", tile=12)


def round_trip(up, image, tmp_path):
    path = up.encode(image).save(tmp_path / "x.liif")
    return load_encoding(path, model=up)


def test_rgb_round_trip_equals_upscale(up, tmp_path):
    rgb = RNG.random((20, 27, 3), dtype=np.float32)
    enc = round_trip(up, DecodedImage(rgb=rgb), tmp_path)
    assert enc.meta["input_size"] == [27, 20] and enc.meta["precision"] == "fp32"
    assert np.abs(enc.render_array((50, 67)) - up.upscale_array(rgb, (50, 67))).max() <= 1e-6
    rendered, direct = enc.render(size=(67, 50)), up.upscale(DecodedImage(rgb=rgb), size=(67, 50))
    assert rendered.rgb.dtype == np.uint8 and np.array_equal(rendered.rgb, direct.rgb)
    region = (3.5, 2.0, 10.0, 8.0)
    assert np.array_equal(
        enc.render(scale=3, region=region).rgb, up.upscale(DecodedImage(rgb=rgb), scale=3, region=region).rgb
    )


def test_rgba_round_trip_equals_upscale(up, tmp_path):
    rgb = RNG.random((14, 17, 3), dtype=np.float32)
    alpha = (RNG.random((14, 17)) > 0.5).astype(np.float32)
    img = DecodedImage(rgb=rgb, alpha=alpha, mode="RGBA")
    enc = round_trip(up, img, tmp_path)
    assert enc.meta["alpha"] == "model" and enc.alpha_features is not None
    rendered, direct = enc.render(scale=2.5), up.upscale(img, scale=2.5)
    assert rendered.mode == "RGBA" and rendered.rgb.shape == (35, 42, 3)
    assert np.abs(rendered.rgb - direct.rgb).max() <= 1e-6
    assert np.abs(rendered.alpha - direct.alpha).max() <= 1e-6
    bicubic = load_encoding(up.encode(img, alpha="bicubic").save(tmp_path / "b.liif"), model=up)
    assert np.array_equal(bicubic.render(scale=2.5).alpha, up.upscale(img, scale=2.5, alpha="bicubic").alpha)


def test_16bit_png_round_trip_equals_upscale(up, tmp_path):
    values = RNG.integers(0, 65536, (13, 16, 3), dtype=np.uint16)
    path = tmp_path / "deep.png"
    png.from_array(values.reshape(13, -1), "RGB;16").save(str(path))
    enc = round_trip(up, path, tmp_path)
    assert enc.meta["bits"] == 16
    rendered, direct = enc.render(scale=3), up.upscale(path, scale=3)
    assert rendered.rgb.dtype == np.uint16 and np.array_equal(rendered.rgb, direct.rgb)
    assert np.abs(enc.render_array((39, 48)) - up.upscale_array(read_image(path).rgb, (39, 48))).max() <= 1e-6


def test_half_precision_encoding_halves_the_bytes(up, tmp_path):
    half = Upscaler(up.loaded, type(up.renderer.options)(torch.device("cpu"), "bf16", 12), name="h")
    rgb = RNG.random((9, 10, 3), dtype=np.float32)
    assert up.encode(rgb).nbytes == 9 * 10 * 64 * 4 and half.encode(rgb).nbytes == 9 * 10 * 64 * 2


def test_bad_files_are_refused_with_one_line(up, tmp_path):
    good = up.encode(RNG.random((8, 9, 3), dtype=np.float32)).save(tmp_path / "good.liif")
    data = good.read_bytes()
    cases = {
        "corrupt.liif": b"\x00garbage" * 10,
        "truncated.liif": data[: len(data) // 2],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(EncodingError, match="corrupt or truncated") as err:
            load_encoding(tmp_path / name, model=up)
        assert err.value.exit_code == 9 and "\n" not in str(err.value)
    tensors = load_file(good)
    meta = json.loads(__import__("safetensors").safe_open(str(good), "pt").metadata()["liif"])
    save_file(tensors, str(tmp_path / "newer.liif"), metadata={"liif": json.dumps({**meta, "format_version": 99})})
    with pytest.raises(EncodingError, match="newer liif") as err:
        load_encoding(tmp_path / "newer.liif", model=up)
    assert err.value.exit_code == 9
    save_file(tensors, str(tmp_path / "plain.liif"))
    with pytest.raises(EncodingError, match="not a liif encoding"):
        load_encoding(tmp_path / "plain.liif", model=up)
    with pytest.raises(EncodingError, match="no such"):
        load_encoding(tmp_path / "missing.liif", model=up)


def test_an_encoding_from_other_weights_is_refused(up, tmp_path):
    from liif_cli.models import load_checkpoint

    other = load_checkpoint(MODEL_PATH)
    with torch.no_grad():
        next(other.net.parameters()).add_(1e-3)  # fine-tuned weights: same architecture, other numbers
    other_up = Upscaler(other, type(up.renderer.options)(torch.device("cpu"), "fp32", 12), name="tuned")
    path = other_up.encode(RNG.random((8, 9, 3), dtype=np.float32)).save(tmp_path / "tuned.liif")
    with pytest.raises(EncodingModelError, match="encoded with model 'tuned'") as err:
        load_encoding(path, model=up)
    assert err.value.exit_code == 10 and "\n" not in str(err.value)
    assert load_encoding(path, model=other_up).meta["model"] == "tuned"


def test_save_is_atomic_and_never_overwrites_silently(up, tmp_path, monkeypatch):
    enc = up.encode(RNG.random((8, 9, 3), dtype=np.float32))
    path = enc.save(tmp_path / "a.liif")
    before = path.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        enc.save(path)
    assert path.read_bytes() == before

    class Interrupted(KeyboardInterrupt):
        pass

    import safetensors.torch

    def interrupted(tensors, filename, metadata=None):  # the save is cut off half-way through writing
        Path(filename).write_bytes(b"partial")
        raise Interrupted

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    with pytest.raises(Interrupted):
        enc.save(tmp_path / "b.liif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.liif"]
