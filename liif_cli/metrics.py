"""Image-quality metrics: PSNR, SSIM, the paper's Y weighting, border cropping.

Pure functions with explicit arguments (the BasicSR habit); all arithmetic in numpy float64. Images are
(H, W) or (H, W, C) arrays of any real dtype; both arguments of a metric must have the same shape. Nothing
here rounds or clips: quantize before calling if the protocol says so.

- `psnr(a, b, crop_border=, y_channel=, data_range=)`: the paper's (official `test.py`) PSNR when
  `y_channel=True` (Y of the *difference*, weights (65.738, 129.057, 25.064)/256, no +16 offset), plain RGB
  PSNR otherwise.
- `ssim(a, b, crop_border=, data_range=)`: Wang et al. 2004, 11x11 Gaussian (sigma 1.5), K1 0.01, K2 0.03,
  'valid' filtering, computed per channel and averaged; `ssim_channels` gives the per-channel values (index 2
  of an RGB image is blue: the single channel MMEditing 0.x measured).
"""

from __future__ import annotations

import math

import numpy as np

Y_WEIGHTS = np.array([65.738, 129.057, 25.064], dtype=np.float64) / 256.0
"""The paper's RGB -> Y weights (BT.601 luma scaled to 219/255 levels), applied to a difference of RGB images."""

SSIM_WIN_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

__all__ = [
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WIN_SIZE",
    "Y_WEIGHTS",
    "crop_border",
    "gaussian_kernel",
    "mse",
    "psnr",
    "psnr_from_mse",
    "rgb_to_y_diff",
    "ssim",
    "ssim_channels",
]


def _as_float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_float(a), _as_float(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def crop_border(img: np.ndarray, border: int) -> np.ndarray:
    """Drop `border` pixels from each side of the two leading (H, W) axes; 0 returns `img` unchanged."""
    border = int(border)
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return img
    h, w = img.shape[:2]
    if 2 * border >= h or 2 * border >= w:
        raise ValueError(f"crop_border {border} leaves nothing of a {w}x{h} image")
    return img[border:-border, border:-border, ...]


_crop = crop_border  # the metric functions' `crop_border` keyword shadows the function's name inside them


def rgb_to_y_diff(diff: np.ndarray) -> np.ndarray:
    """The paper's Y of an RGB *difference* (H, W, 3) -> (H, W): sum_c diff_c * (65.738, 129.057, 25.064)_c / 256.

    Linear, so it equals Y(a) - Y(b) for the offset-free luma; the +16 offset of BT.601 cancels in a difference.
    """
    diff = np.asarray(diff, dtype=np.float64)
    if diff.ndim != 3 or diff.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB difference, got shape {diff.shape}")
    return diff @ Y_WEIGHTS


def mse(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """Mean squared difference (over pixels and channels) after cropping; `y_channel` first maps it to Y."""
    a, b = _check_pair(a, b)
    diff = a - b
    if y_channel:
        if diff.ndim == 3 and diff.shape[2] == 3:
            diff = rgb_to_y_diff(diff)
        elif not (diff.ndim == 2 or diff.shape[2] == 1):
            raise ValueError(f"y_channel needs RGB or single-channel images, got shape {a.shape}")
    diff = _crop(diff, crop_border)
    return float(np.mean(diff * diff))


def psnr_from_mse(value: float, data_range: float = 1.0) -> float:
    """10 log10(data_range^2 / mse); infinite for identical images."""
    if value == 0:
        return math.inf
    return 10.0 * math.log10(float(data_range) ** 2 / value)


def psnr(
    a: np.ndarray, b: np.ndarray, *, crop_border: int = 0, y_channel: bool = False, data_range: float = 1.0
) -> float:
    """PSNR in dB between two images of the same shape.

    crop_border: pixels dropped from each side before measuring (the paper's `shave`, mmagic's `crop_border`).
    y_channel: measure the paper's Y of the difference (see `rgb_to_y_diff`) instead of all channels.
    data_range: peak value (1.0 for floats in [0, 1], 255 for uint8 values).
    """
    return psnr_from_mse(mse(a, b, crop_border=crop_border, y_channel=y_channel), data_range)


def gaussian_kernel(size: int = SSIM_WIN_SIZE, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """1-D normalized Gaussian of `size` taps (the separable factor of the 2-D SSIM window)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / k.sum()


def _filter_valid(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D float64 image with the outer product k k^T."""
    n = k.size
    h, w = img.shape
    rows = k[0] * img[0 : h - n + 1]
    for i in range(1, n):
        rows += k[i] * img[i : h - n + 1 + i]
    out = k[0] * rows[:, 0 : w - n + 1]
    for i in range(1, n):
        out += k[i] * rows[:, i : w - n + 1 + i]
    return out


def _ssim_2d(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    k = gaussian_kernel()
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x = _filter_valid(x, k)
    mu_y = _filter_valid(y, k)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    s_xx = _filter_valid(x * x, k) - mu_xx
    s_yy = _filter_valid(y * y, k) - mu_yy
    s_xy = _filter_valid(x * y, k) - mu_xy
    num = (2.0 * mu_xy + c1) * (2.0 * s_xy + c2)
    den = (mu_xx + mu_yy + c1) * (s_xx + s_yy + c2)
    return float(np.mean(num / den))


def ssim_channels(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0, data_range: float = 255.0) -> np.ndarray:
    """Per-channel SSIM (float64 array of length C; length 1 for an (H, W) image), after cropping.

    Wang et al. 2004 with the population (not sample) covariance, i.e. what BasicSR / mmagic compute and
    what scikit-image gives with gaussian_weights=True, sigma=1.5, use_sample_covariance=False.
    """
    a, b = _check_pair(a, b)
    a = _crop(a, crop_border)
    b = _crop(b, crop_border)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if min(a.shape[:2]) < SSIM_WIN_SIZE:
        raise ValueError(
            f"SSIM needs at least {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} pixels after cropping, got {a.shape[:2]}"
        )
    return np.array([_ssim_2d(a[..., c], b[..., c], float(data_range)) for c in range(a.shape[2])])


def ssim(a: np.ndarray, b: np.ndarray, *, crop_border: int = 0, data_range: float = 255.0) -> float:
    """Mean over channels of `ssim_channels` (the correct RGB SSIM of BasicSR / mmagic 1.x)."""
    return float(np.mean(ssim_channels(a, b, crop_border=crop_border, data_range=data_range)))
