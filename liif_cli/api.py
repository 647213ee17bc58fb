"""Python API: `load_model(...)` then `upscale(...)`. (Work in progress: engine wiring lands next.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .models import LoadedModel, load_checkpoint, reference_upscale


class Upscaler:
    def __init__(self, loaded: LoadedModel, device: str = "cpu"):
        self.loaded = loaded
        self.device = torch.device(device)
        self.loaded.net.to(self.device)

    def upscale_array(self, rgb: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        """rgb: float32 (H, W, 3) in [0, 1] -> float32 (h, w, 3) in [0, 1], clamped, not rounded."""
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).to(self.device)
        norm = self.loaded.normalization
        return reference_upscale(self.loaded.net, x, out_hw, norm.sub, norm.div).cpu().numpy()


def load_model(model: str | Path = "edsr-baseline", *, device: str = "cpu") -> Upscaler:
    return Upscaler(load_checkpoint(model), device=device)
