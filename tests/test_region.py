"""Region rendering (issue 10): a window of the continuous image, at any output size, costs what the
window costs. A random-weight EDSR-baseline-LIIF, tiny random images; `tile=8` forces many tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import MODEL_PATH

from liif_cli.engine import Renderer, RenderOptions, render_array
from liif_cli.errors import UsageError
from liif_cli.models import load_checkpoint

pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF
RGB = np.random.default_rng(3).random((30, 41, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def loaded():
    return load_checkpoint(MODEL_PATH)


def renderer(loaded, tile=None) -> Renderer:
    return Renderer(loaded, RenderOptions(torch.device("cpu"), "fp32", tile))


def region_of_crop(in_hw, out_hw, a, b, w, h):
    """The region whose render at w x h is output pixels [a, a+w) x [b, b+h) of a whole render at out_hw."""
    sx, sy = in_hw[1] / out_hw[1], in_hw[0] / out_hw[0]
    return a * sx, b * sy, w * sx, h * sy


@pytest.mark.parametrize("tile", [None, 8])
@pytest.mark.parametrize(("out_hw", "crop"), [((75, 102), (13, 21, 30, 17)), ((90, 123), (0, 50, 123, 40))])
def test_region_equals_the_crop_of_the_whole_render(loaded, tile, out_hw, crop):
    r = renderer(loaded, tile)
    whole = render_array(r, RGB, out_hw)
    a, b, w, h = crop
    window = render_array(r, RGB, (h, w), region=region_of_crop(RGB.shape[:2], out_hw, *crop))
    assert np.abs(window - whole[b : b + h, a : a + w]).max() <= 1e-6
    # an aligned window samples the whole render's own float32 coordinates: the very same pixels
    assert np.array_equal(window, whole[b : b + h, a : a + w])


def test_any_region_samples_the_official_query_at_its_pixel_centres(loaded):
    """A window not aligned to any whole render: compared with the oracle `LIIF.query_rgb` at the centres
    X + (j + 0.5) W / w with the cell (W / w, H / h), in the official [-1, 1] space."""
    x, y, w, h = 7.3, 11.8, 19.25, 9.5
    out_h, out_w = 23, 31
    window = render_array(renderer(loaded, 8), RGB, (out_h, out_w), region=(x, y, w, h))
    in_h, in_w = RGB.shape[:2]
    ys = (y + (np.arange(out_h) + 0.5) * h / out_h) * 2 / in_h - 1
    xs = (x + (np.arange(out_w) + 0.5) * w / out_w) * 2 / in_w - 1
    coord = torch.from_numpy(np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(1, -1, 2)).float()
    cell = torch.tensor([2 * h / out_h / in_h, 2 * w / out_w / in_w]).expand_as(coord)
    with torch.no_grad():
        feat = loaded.net.encode((torch.from_numpy(RGB).permute(2, 0, 1)[None] - 0.5) / 0.5)
        pred = loaded.net.query_rgb(feat, coord, cell)[0].view(out_h, out_w, 3)
    oracle = (pred * 0.5 + 0.5).clamp(0, 1).numpy()
    assert np.abs(window - oracle).max() <= 1e-6


def test_whole_image_region_is_bit_for_bit_the_plain_render(loaded):
    r = renderer(loaded, 8)
    plain = render_array(r, RGB, (61, 90))
    assert np.array_equal(render_array(r, RGB, (61, 90), region=(0, 0, 41, 30)), plain)


def test_a_region_from_the_feature_map_equals_the_streamed_region(loaded):
    r = renderer(loaded, 8)
    feat = r.encode(RGB)
    out = {}

    def sink(rows, cols, block):
        out.setdefault("a", np.zeros((40, 52, 3), np.float32))[rows, cols] = block

    region = (10.25, 3.5, 13.0, 10.0)
    r.render_features(feat, (40, 52), sink, region=region)
    assert np.abs(out["a"] - render_array(r, RGB, (40, 52), region=region)).max() <= 1e-6


def test_cost_follows_the_region_not_the_input(loaded):
    """Only tiles around the latents the region touches are encoded (counted with a forward hook)."""
    r = renderer(loaded, 8)
    big = np.random.default_rng(5).random((160, 200, 3), dtype=np.float32)
    encoded = []
    hook = r.encoder.register_forward_hook(lambda m, inp, out: encoded.append(inp[0].shape[2] * inp[0].shape[3]))
    try:
        render_array(r, big, (40, 40), region=(150.0, 110.0, 4.0, 4.0))
    finally:
        hook.remove()
    margin = r.margin
    assert sum(encoded) <= (8 + 2 * margin) ** 2 * 4  # at most 2 x 2 tiles, never the 160 x 200 input
    assert sum(encoded) < big.shape[0] * big.shape[1] / 2


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ((40.0, 0.0, 5.0, 5.0), "not inside"),
        ((-1.0, 0.0, 5.0, 5.0), "not inside"),
        ((0.0, 0.0, 0.0, 5.0), "empty"),
        ((0.0, 0.0, 5.0, -2.0), "empty"),
        ((0.0, float("nan"), 5.0, 5.0), "finite"),
        ((1, 2, 3), "four numbers"),
    ],
)
def test_bad_regions_are_one_line_usage_errors(loaded, region, message):
    with pytest.raises(UsageError, match=message) as err:
        render_array(renderer(loaded), RGB, (10, 10), region=region)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
