"""`bicubic`: the baseline row of every SR table, as a model `liif bench` can run beside LIIF.

It upsamples the same uint8 LR image the model gets with Pillow's BICUBIC filter (the cubic convolution kernel
with a = -0.5, the kernel MATLAB's `imresize` uses), so its output is the standard bicubic figure of the SR
literature (Set5, paper protocol: 33.66 / 30.39 / 28.42 at x2 / x3 / x4). torch's `interpolate(mode="bicubic")`
uses a = -0.75 and would not be that row. It has no weights and no registry entry: the runner recognises the
name before asking the registry.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..imageio import quantize

NAME = "bicubic"


def is_bicubic(model: object) -> bool:
    return str(model) == NAME


def bicubic_upscale(lr: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """uint8 RGB LR -> uint8 RGB of size out_hw (h, w), Pillow BICUBIC (rounded to uint8 as MATLAB's is)."""
    h, w = out_hw
    return np.asarray(Image.fromarray(np.ascontiguousarray(lr)).resize((w, h), Image.Resampling.BICUBIC))


class BicubicUpscaler:
    """Duck-types the loaded model the runner calls: `upscale_array(rgb float [0, 1], (h, w))` -> float32."""

    name = NAME
    device = "cpu"
    precision = "uint8 (Pillow)"

    def upscale_array(self, rgb: np.ndarray, out_hw: tuple[int, int], **_: object) -> np.ndarray:
        # the runner hands over uint8 / 255; rounding gives back exactly the uint8 LR the protocol made
        out = bicubic_upscale(quantize(rgb, 8), out_hw)
        return out.astype(np.float32) / np.float32(255)
