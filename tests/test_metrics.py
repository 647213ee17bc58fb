"""liif_cli.metrics against scikit-image and against the formulas written out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from liif_cli import metrics

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, win_size=11)
SK_PAD = (11 - 1) // 2  # skimage filters with 'reflect' padding, then averages only this far inside the border


def _pair(seed: int, shape: tuple[int, ...], dtype=np.uint8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape).astype(dtype)
    noise = rng.integers(-30, 31, shape)
    b = np.clip(a.astype(np.int64) + noise, 0, 255).astype(dtype)
    return a, b


def _skimage_ssim_valid(a: np.ndarray, b: np.ndarray, data_range: float) -> np.ndarray:
    """Per-channel SSIM from skimage's full map, averaged over the 'valid' region like ours."""
    out = []
    chans = [(a, b)] if a.ndim == 2 else [(a[..., c], b[..., c]) for c in range(a.shape[2])]
    for x, y in chans:
        _, full = structural_similarity(
            x.astype(np.float64), y.astype(np.float64), data_range=data_range, full=True, **SK_SSIM
        )
        out.append(full[SK_PAD:-SK_PAD, SK_PAD:-SK_PAD].mean())
    return np.array(out)


@pytest.mark.parametrize("shape", [(32, 40, 3), (11, 11, 3), (57, 23), (64, 48, 1)])
def test_ssim_matches_skimage(shape):
    a, b = _pair(1, shape)
    ours = metrics.ssim_channels(a, b, data_range=255)
    theirs = _skimage_ssim_valid(a, b, 255.0)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert metrics.ssim(a, b, data_range=255) == pytest.approx(float(theirs.mean()), abs=1e-6)


def test_ssim_mean_matches_skimage_mean():
    """skimage's own scalar (mean over channels of the cropped map) is our RGB-mean SSIM."""
    a, b = _pair(2, (48, 52, 3))
    theirs = structural_similarity(a, b, data_range=255, channel_axis=2, **SK_SSIM)
    assert metrics.ssim(a, b, data_range=255) == pytest.approx(theirs, abs=1e-6)


@pytest.mark.parametrize("border", [0, 2, 4])
def test_ssim_crop_border(border):
    a, b = _pair(3, (40, 44, 3))
    ours = metrics.ssim_channels(a, b, crop_border=border)
    c = slice(border, -border or None)
    theirs = _skimage_ssim_valid(a[c, c], b[c, c], 255.0)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_ssim_float_data_range():
    a, b = _pair(4, (30, 30, 3))
    af, bf = a / 255.0, b / 255.0
    ours = metrics.ssim(af, bf, data_range=1.0)
    assert ours == pytest.approx(metrics.ssim(a, b, data_range=255.0), abs=1e-9)
    theirs = structural_similarity(af, bf, data_range=1.0, channel_axis=2, **SK_SSIM)
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_ssim_identical_is_one_and_channels_ordered():
    a, b = _pair(5, (24, 24, 3))
    b2 = a.copy()
    b2[..., 2] = b[..., 2]  # only blue differs
    ch = metrics.ssim_channels(a, b2)
    assert ch[0] == pytest.approx(1.0) and ch[1] == pytest.approx(1.0) and ch[2] < 0.99
    assert metrics.ssim(a, a) == pytest.approx(1.0)


@pytest.mark.parametrize("border", [0, 3])
def test_psnr_rgb_matches_skimage(border):
    a, b = _pair(6, (37, 29, 3))
    c = slice(border, -border or None)
    theirs = peak_signal_noise_ratio(a[c, c], b[c, c], data_range=255)
    assert metrics.psnr(a, b, crop_border=border, data_range=255) == pytest.approx(theirs, abs=1e-6)
    af, bf = a / 255.0, b / 255.0
    assert metrics.psnr(af, bf, crop_border=border) == pytest.approx(theirs, abs=1e-6)


def test_psnr_y_channel_is_the_papers_formula():
    rng = np.random.default_rng(7)
    hr = rng.random((20, 24, 3)).astype(np.float32)
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1).astype(np.float32)
    shave = 4
    diff = sr.astype(np.float64) - hr
    diff_y = diff[..., 0] * 65.738 / 256 + diff[..., 1] * 129.057 / 256 + diff[..., 2] * 25.064 / 256
    valid = diff_y[shave:-shave, shave:-shave]
    expected = -10 * math.log10(np.mean(valid**2))
    assert metrics.psnr(sr, hr, crop_border=shave, y_channel=True) == pytest.approx(expected, abs=1e-9)
    # Y of the difference is the difference of (offset-free) Y: skimage on the Y planes agrees
    y_sr, y_hr = sr.astype(np.float64) @ metrics.Y_WEIGHTS, hr.astype(np.float64) @ metrics.Y_WEIGHTS
    theirs = peak_signal_noise_ratio(y_hr[shave:-shave, shave:-shave], y_sr[shave:-shave, shave:-shave], data_range=1)
    assert metrics.psnr(sr, hr, crop_border=shave, y_channel=True) == pytest.approx(theirs, abs=1e-6)


def test_rgb_to_y_diff_and_crop_border():
    d = np.ones((5, 6, 3))
    np.testing.assert_allclose(metrics.rgb_to_y_diff(d), np.full((5, 6), (65.738 + 129.057 + 25.064) / 256))
    img = np.arange(7 * 8).reshape(7, 8)
    assert metrics.crop_border(img, 0) is img
    np.testing.assert_array_equal(metrics.crop_border(img, 2), img[2:-2, 2:-2])
    with pytest.raises(ValueError):
        metrics.crop_border(img, 4)
    with pytest.raises(ValueError):
        metrics.rgb_to_y_diff(np.ones((3, 3)))


def test_psnr_identical_is_inf_and_shape_mismatch_raises():
    a, _ = _pair(8, (8, 8, 3))
    assert metrics.psnr(a, a) == math.inf
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(a, a[:-1])
    with pytest.raises(ValueError, match="shape"):
        metrics.ssim(a, a[:, :-1])


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(11, 30),
    w=st.integers(11, 30),
    c=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_ssim_psnr_random_shapes_match_skimage(h, w, c, seed):
    a, b = _pair(seed, (h, w, c))
    np.testing.assert_allclose(metrics.ssim_channels(a, b), _skimage_ssim_valid(a, b, 255.0), rtol=0, atol=1e-6)
    if not np.array_equal(a, b):
        assert metrics.psnr(a, b, data_range=255) == pytest.approx(
            peak_signal_noise_ratio(a, b, data_range=255), abs=1e-6
        )
