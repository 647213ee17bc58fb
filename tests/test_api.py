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


# --- LazyModel and planning_model: the model options as one LoadOptions ------------------------------


def test_lazy_model_imports_no_torch_until_get_and_loads_once():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from liif_cli.api import LazyModel\n"
        "from liif_cli.load_options import LoadOptions\n"
        f"lazy = LazyModel({str(MODEL_PATH)!r}, LoadOptions(device='cpu', precision='fp32'))\n"
        "print('torch' in sys.modules, lazy.loaded, lazy.loads)\n"
        "first = lazy.get()\n"
        "print('torch' in sys.modules, lazy.get() is first, lazy.loads, first.precision)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split("\n")[:2] == ["False False 0", "True True 1 fp32"]


def test_lazy_model_load_errors_are_model_errors(tmp_path):
    from liif_cli.api import LazyModel
    from liif_cli.errors import ModelError
    from liif_cli.load_options import LoadOptions

    not_weights = tmp_path / "notes.pth"
    not_weights.write_bytes(b"not a checkpoint")
    for model in (tmp_path / "missing.pth", not_weights):
        lazy = LazyModel(model, LoadOptions(device="cpu"))
        with pytest.raises(ModelError):
            lazy.get()
        assert lazy.loads == 1 and not lazy.loaded


def test_lazy_model_estimates_with_its_loaded_model():
    from liif_cli.api import LazyModel
    from liif_cli.load_options import LoadOptions

    lazy = LazyModel(MODEL_PATH, LoadOptions(device="cpu", precision="fp32"))
    line = lazy.estimate((10, 10), (4000, 4000))  # loads the model to ask it
    assert lazy.loads == 1 and lazy.loaded
    assert line.startswith("10x10 -> 4000x4000: about ") and "on cpu (fp32)" in line
    lazy.estimate((10, 10), (20, 20))
    assert lazy.loads == 1


def test_planning_model_takes_load_options_as_load_model_does():
    from liif_cli.api import planning_model
    from liif_cli.load_options import LoadOptions

    options = LoadOptions(device="cpu", precision="bf16", tile=48, batch_size=4096)
    planner, encoder = planning_model(MODEL_PATH, options)
    assert encoder == "edsr-baseline"  # a file is not opened: the default architecture is assumed
    render = planner.renderer.options
    assert (planner.device.type, planner.precision, render.tile, render.query_batch) == ("cpu", "bf16", 48, 4096)
    same, _ = planning_model(MODEL_PATH, device="cpu", precision="bf16", tile=48, batch_size=4096)  # as keywords
    assert same.renderer.options == render
    defaults, _ = planning_model(MODEL_PATH, LoadOptions(device="cpu", precision="fp32"))
    assert defaults.renderer.options.tile is None and defaults.precision == "fp32"
    with pytest.raises(UsageError):
        planning_model(MODEL_PATH, LoadOptions(device="cpu"), tile=0)
