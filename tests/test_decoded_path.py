"""One upscale path (issue 9, acceptance 1): `liif upscale` and the library (`Upscaler.upscale` on the PIL
image, and on the file path written with `write_image`) give identical pixels with default options, for
RGBA, LA, L, palette-with-transparency and 16-bit RGB files."""

from __future__ import annotations

import numpy as np
import png  # pypng
import pytest
from click.testing import CliRunner
from conftest import MODEL_PATH
from PIL import Image

from liif_cli import load_model
from liif_cli.cli import main
from liif_cli.imageio import write_image

pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF
RNG = np.random.default_rng(21)
H, W = 10, 13


def sharp_alpha() -> np.ndarray:
    a = np.zeros((H, W), np.uint8)
    a[2:8, 3:10] = 255
    a[4:6, 5:7] = 128
    return a


def make_inputs(folder) -> dict[str, object]:
    folder.mkdir()
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    gray = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    files = {
        "rgba": Image.fromarray(np.dstack([rgb, sharp_alpha()])),
        "la": Image.fromarray(np.dstack([gray, sharp_alpha()])),
        "l": Image.fromarray(gray),
    }
    palette = Image.fromarray(rgb).quantize(16)
    palette.info["transparency"] = 0  # palette entry 0 is transparent
    files["p"] = palette
    for name, im in files.items():
        im.save(folder / f"{name}.png")
    deep = RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    png.from_array(deep.reshape(H, -1), "RGB;16").save(str(folder / "rgb16.png"))
    return {name: folder / f"{name}.png" for name in [*files, "rgb16"]}


def read_pixels(path) -> np.ndarray:
    reader = png.Reader(filename=str(path))
    w, h, rows, info = reader.asDirect()
    return np.vstack([np.asarray(r) for r in rows]).reshape(h, w, -1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("decoded") / "in")


@pytest.fixture(scope="module")
def cli_outputs(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    for name, path in files.items():
        args = ["upscale", str(path), "--scale", "2.5", "-o", str(out / f"{name}.png"), "--model", str(MODEL_PATH)]
        result = CliRunner().invoke(main, [*args, "--device", "cpu"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return {name: out / f"{name}.png" for name in files}


@pytest.fixture(scope="module")
def up():
    return load_model(MODEL_PATH, device="cpu")


@pytest.mark.parametrize("name", ["rgba", "la", "l", "p", "rgb16"])
def test_library_file_path_equals_the_cli(name, files, cli_outputs, up, tmp_path):
    written = write_image(up.upscale(files[name], scale=2.5), tmp_path / "lib.png")
    expected = read_pixels(cli_outputs[name])
    assert read_pixels(written).shape == expected.shape
    assert np.array_equal(read_pixels(written), expected)


@pytest.mark.parametrize("name", ["rgba", "la", "l", "p"])
def test_pil_image_equals_the_cli(name, files, cli_outputs, up):
    with Image.open(files[name]) as im:
        result = up.upscale(im, scale=2.5)
    with Image.open(cli_outputs[name]) as cli:
        assert result.mode == cli.mode
        assert np.array_equal(np.asarray(result), np.asarray(cli))


def test_alpha_goes_through_the_model_by_default(files, up):
    """The disagreement this path removed: the API resized alpha bicubically, the CLI used the model."""
    with Image.open(files["rgba"]) as im:
        model = np.asarray(up.upscale(im, scale=2.5).getchannel("A"))
        bicubic = np.asarray(up.upscale(im, scale=2.5, alpha="bicubic").getchannel("A"))
    assert not np.array_equal(model, bicubic)
