"""`liif upscale` end to end against the official implementation's output, pixel for pixel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from conftest import OFFICIAL, SHARED, needs_shared
from PIL import Image

from liif_cli.cli import main


@needs_shared
def test_png_from_the_cli_equals_the_rounded_official_output(tmp_path):
    case = next(
        c
        for c in json.loads((SHARED / "fixtures" / "manifest.json").read_text())["cases"]
        if c["name"] == "butterfly_237w_163h"
    )
    out = tmp_path / "butterfly.png"
    w, h = case["output_size_wh"]
    result = CliRunner().invoke(
        main,
        [
            "upscale",
            str(SHARED / case["input"]),
            "--size",
            f"{w}x{h}",
            "--model",
            str(OFFICIAL),
            "--precision",
            "fp32",
            "--device",
            "cpu",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(out))
    assert written.shape == (h, w, 3) and written.dtype == np.uint8
    expected = np.rint(np.load(SHARED / case["file"]) * 255).astype(np.uint8)  # the documented rounding rule
    assert np.abs(written.astype(int) - expected).max() == 0


def test_example_image_ships_with_the_repo():
    example = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"
    with Image.open(example) as im:
        assert im.size == (128, 128) and im.mode == "RGB"
