"""Python API: `load_model(...)`, then `Upscaler.upscale_array(...)` / `upscale(...)`.

(Engine wiring in progress: `upscale_array` currently runs the reference path; its signature is final.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .errors import UsageError
from .models import LoadedModel, load_checkpoint, reference_upscale

ProgressCallback = Callable[[int, int], None]  # (done, total) in output pixels


def output_size(
    in_hw: tuple[int, int],
    *,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    width: int | None = None,
    height: int | None = None,
) -> tuple[int, int]:
    """Resolve exactly one of scale / size (w, h) / width / height into an output (h, w).

    `scale` may be one number or (sx, sy); sizes round to the nearest pixel and are at least 1.
    """
    given = [v is not None for v in (scale, size, width, height)]
    if sum(given) != 1:
        raise UsageError("give exactly one of scale, size, width or height")
    h, w = in_hw
    if scale is not None:
        sx, sy = (scale, scale) if not isinstance(scale, tuple | list) else scale
        for s in (sx, sy):
            if not isinstance(s, int | float) or not math.isfinite(s) or s <= 0:
                raise UsageError(f"scale must be a finite number > 0, got {s!r}")
        out = (round(h * sy), round(w * sx))
    elif size is not None:
        out = (int(size[1]), int(size[0]))
    elif width is not None:
        out = (round(h * width / w), int(width))
    else:
        out = (int(height), round(w * height / h))
    if min(out) < 1:
        raise UsageError(f"output size {out[1]}x{out[0]} is empty")
    return max(1, out[0]), max(1, out[1])


class Upscaler:
    def __init__(self, loaded: LoadedModel, device: str = "cpu"):
        self.loaded = loaded
        self.device = torch.device(device)
        self.loaded.net.to(self.device)

    def upscale_array(
        self, rgb: np.ndarray, out_hw: tuple[int, int], progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """rgb: float32 (H, W, 3) in [0, 1] -> float32 (h, w, 3) in [0, 1], clamped, not rounded."""
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).to(self.device)
        norm = self.loaded.normalization
        return reference_upscale(self.loaded.net, x, out_hw, norm.sub, norm.div).cpu().numpy()


def load_model(model: str | Path = "edsr-baseline", *, device: str = "cpu") -> Upscaler:
    return Upscaler(load_checkpoint(model), device=device)
