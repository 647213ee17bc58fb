"""The Python API as the README shows it: PIL and numpy in, the same kind out."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MODEL_PATH
from PIL import Image

from liif_cli import load_model, output_size, upscale
from liif_cli.errors import InputError, UsageError

pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF


@pytest.fixture(scope="module")
def up():
    return load_model(MODEL_PATH, device="cpu", precision="fp32")


def test_output_size_rules():
    assert output_size((750, 1000), scale=4) == (3000, 4000)
    assert output_size((750, 1000), scale=(2, 3)) == (2250, 2000)  # (sx, sy)
    assert output_size((750, 1000), size=(4000, 3000)) == (3000, 4000)  # (w, h)
    assert output_size((750, 1000), width=1920) == (1440, 1920)
    assert output_size((750, 1000), height=100) == (100, 133)
    for bad in ({"scale": 0}, {"scale": float("nan")}, {"scale": -2}, {}, {"scale": 2, "width": 5}):
        with pytest.raises(UsageError):
            output_size((10, 10), **bad)


def test_pil_modes_round_trip(up):
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (12, 16, 4), dtype=np.uint8), "RGBA")
    out = up.upscale(rgba, scale=2.5)
    assert out.mode == "RGBA" and out.size == (40, 30)
    gray = Image.fromarray(rng.integers(0, 256, (12, 16), dtype=np.uint8), "L")
    assert up.upscale(gray, size=(20, 9)).mode == "L"
    # 16-bit gray keeps its depth now that PIL images take the file path's decoding
    assert up.upscale(Image.new("I;16", (8, 8), 30000), scale=2).mode == "I;16"
    with pytest.raises(InputError, match="32-bit float"):
        up.upscale(Image.new("F", (8, 8)), scale=2)


def test_numpy_kinds_and_the_one_shot_helper(up):
    rgb = np.random.default_rng(1).random((10, 14, 3), dtype=np.float32)
    as_float = up.upscale(rgb, scale=2)
    assert as_float.dtype == np.float32 and as_float.shape == (20, 28, 3)
    as_u8 = up.upscale((rgb * 255).round().astype(np.uint8), scale=2)
    assert as_u8.dtype == np.uint8 and as_u8.shape == (20, 28, 3)
    img = Image.fromarray((rgb * 255).round().astype(np.uint8))
    assert np.array_equal(np.asarray(upscale(img, scale=2, model=up)), np.asarray(up.upscale(img, scale=2)))
