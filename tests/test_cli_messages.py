"""The CLI's messages for people: one line each, no Python names, a hint where the input is the wrong kind.
Real files, a real (random-weight) model and a real checkpoint that torch refuses."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from liif_cli.cli import main

FORBIDDEN = ("=True", "=False", "weights_only")
SEEN: list[str] = []  # every error line of this module, checked at the end


def invoke(*args, **kwargs):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, prog_name="liif", **kwargs)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    SEEN.extend(errors)
    for line in errors:
        assert not any(bad in line for bad in FORBIDDEN), line
    return result


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(6).random((12, 16, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIIF_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("LIIF_OFFLINE", "HF_HUB_OFFLINE", "LIIF_REGISTRY"):
        monkeypatch.delenv(var, raising=False)


def test_a_checkpoint_torch_refuses_is_one_line_without_the_flag_name(image, tmp_path):
    bad = tmp_path / "pickled.pth"
    torch.save({"state": collections.OrderedDict(a=torch.zeros(1)), "hook": print}, bad)  # needs code to load
    result = invoke("upscale", image, "--scale", 2, "-n", bad)
    assert result.exit_code == 5
    assert result.stderr.splitlines() == [result.stderr.strip()]  # one line, the file named once
    assert result.stderr.startswith(f"error: {bad}: refused: loading this checkpoint would run code stored in it")
    assert "Weights only load failed" not in result.stderr


def test_render_of_an_image_says_encode_it_first(image):
    result = invoke("render", image, "--scale", 2)
    assert result.exit_code == 9
    assert result.stderr == (
        f"error: {image}: this is a PNG image, not a .liif encoding: run 'liif encode {image}' first "
        f"(or 'liif upscale {image}' for one size)\n"
    )


def test_a_single_failing_input_is_reported_once(tmp_path):
    missing = tmp_path / "missing.png"
    result = invoke("upscale", missing, "--scale", 2)
    assert result.exit_code == 3
    assert result.stderr == f"error: {missing}: no such file\n"


def test_decimal_comma_scale_prints_a_notice_and_means_x_by_y(image):
    result = invoke("upscale", image, "--scale", "7,5", "--dry-run")
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: --scale 7,5 means 7x wider and 5x taller; for a scale of 7.5 write --scale 7.5\n"
    )
    assert "16x12 -> 112x60" in result.stdout  # 7 x 5, as asked
    assert invoke("upscale", image, "--scale", "7.5", "--dry-run").stderr == ""


def test_missing_arguments_point_at_help(image):
    result = invoke("render")
    assert result.exit_code == 2 and result.stderr.strip().endswith("(see 'liif render --help')")
    result = invoke("models", "rm")
    assert result.exit_code == 2 and result.stderr.strip().endswith("(see 'liif models rm --help')")


def test_unverified_and_offline_refusals_name_no_python_keywords(image):
    result = invoke("upscale", image, "--scale", 2, "-n", "rdn")  # rdn has no pinned sha256
    assert result.exit_code == 5 and "--allow-unverified" in result.stderr
    result = invoke("upscale", image, "--scale", 2, "--offline")  # nothing is cached in this test's cache
    assert result.exit_code == 8 and result.stderr.startswith("error: offline mode is on (--offline)")
    assert len(result.stderr.splitlines()) == 1


def test_no_error_line_of_this_module_names_a_python_keyword():
    assert len(SEEN) >= 6  # the tests above ran first and produced their lines
    assert not [line for line in SEEN if any(bad in line for bad in FORBIDDEN)]


def test_stdin_input_without_an_output_says_where_to_write(image):
    result = invoke("upscale", "-", "--scale", 2, input=image.read_bytes())
    assert result.exit_code == 2
    assert (
        result.stderr
        == "error: an input read from stdin has no folder to write beside: give -o FILE, or -o - for stdout\n"
    )


def test_quiet_batch_error_lines_name_flags(image, model_path):
    """-q prints one `error:` line per failed file of a batch: its parameters as the CLI's flags, as without -q."""
    frames = [Image.open(image).convert("RGB"), Image.open(image).convert("RGB").rotate(180)]
    gif = image.with_name("clip.gif")
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = invoke("upscale", image, gif, "--scale", 2, "--region", "0,0,4,4", "-n", model_path, "-q")
    assert result.exit_code == 1
    assert f"error: {gif}: --region renders a window of a still image, not of a video or animation" in result.stderr
