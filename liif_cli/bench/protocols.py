"""Evaluation protocols: how LR/HR pairs are made from a benchmark set, and how a prediction is scored.

Two protocols, as specified in NOTES.md ("Evaluation protocols"):

- `paper` (official `test.py`): x2-x4 use the set's provided LR (`LR_bicubic/X{s}`) with the HR cropped
  top-left to `[:h_lr*s, :w_lr*s]`; other scales make LR on the fly (`floor(H/s + 1e-9)`, HR cropped to
  `round(h_lr*s)`, PIL bicubic). Predictions are clamped floats, never rounded. PSNR on the paper's Y of the
  difference with `scale` px shaved; DIV2K: RGB PSNR with `scale + 6` px shaved.
- `mmagic` (the MMEditing/mmagic LIIF table): HR cropped top-left to a multiple of 12 ("GTmod12"), LR by PIL
  bicubic as above at every scale, output rounded to uint8, PSNR and SSIM on RGB 0-255 with `scale` px
  cropped. SSIM is reported twice: the correct mean over R, G, B, and the blue channel alone, which is what
  MMEditing 0.x measured (its BGR channel 0) and what the published SSIM column can be compared with.

The official code makes its on-the-fly LR with torchvision `ToPILImage` on the float HR tensor, which truncates
`x*255` to uint8. For float32 `k/255` that product is exactly `k` for every k in 0..255
(`truncation_roundtrip_is_exact` checks it), so resizing the uint8 crop directly is the same computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .. import metrics
from ..imageio import quantize

PROTOCOLS = ("mmagic", "paper")
DEFAULT_SCALES: dict[str, tuple[int, ...]] = {
    "mmagic": (2, 3, 4, 6, 18, 30),
    "paper": (2, 3, 4, 6, 8),
    "paper-div2k": (2, 3, 4, 6, 12, 18, 24, 30),
}
PROVIDED_LR_SCALES = (2, 3, 4)
"""Scales at which the paper protocol uses the set's own (MATLAB-bicubic) LR images."""
MOD = 12
"""mmagic's GTmod12: HR cropped top-left to a multiple of this."""


def default_scales(protocol: str, dataset: str) -> tuple[int, ...]:
    if protocol == "paper" and dataset == "div2k":
        return DEFAULT_SCALES["paper-div2k"]
    return DEFAULT_SCALES[protocol]


def truncation_roundtrip_is_exact() -> bool:
    """True when float32 `(k / 255) * 255` truncates back to k for all uint8 k (so ToPILImage is lossless)."""
    k = np.arange(256, dtype=np.uint8)
    x = k.astype(np.float32) / np.float32(255)
    return bool(np.array_equal((x * np.float32(255)).astype(np.uint8), k))


def mod_crop(img: np.ndarray, mod: int = MOD) -> np.ndarray:
    """Crop top-left to the largest multiple of `mod` in each of H and W."""
    h, w = img.shape[:2]
    return img[: h - h % mod, : w - w % mod]


def lr_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """LR size the reference code makes for an (h, w) HR at `scale`: floor(h/s + 1e-9), floor(w/s + 1e-9)."""
    return math.floor(h / scale + 1e-9), math.floor(w / scale + 1e-9)


def bicubic_pair(hr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(hr_crop, lr): HR cropped top-left to round(h_lr*s) x round(w_lr*s), LR by PIL bicubic of that crop."""
    h, w = hr.shape[:2]
    h_lr, w_lr = lr_size(h, w, scale)
    if h_lr < 1 or w_lr < 1:
        raise ValueError(f"a {w}x{h} image is too small for x{scale:g}")
    crop = np.ascontiguousarray(hr[: round(h_lr * scale), : round(w_lr * scale)])
    lr = np.asarray(Image.fromarray(crop).resize((w_lr, h_lr), Image.Resampling.BICUBIC))
    return crop, lr


def crop_to_lr(hr: np.ndarray, lr: np.ndarray, scale: int) -> np.ndarray:
    """HR cropped top-left to `[:h_lr*s, :w_lr*s]` to match a provided LR image."""
    h_lr, w_lr = lr.shape[:2]
    h, w = hr.shape[:2]
    if h_lr * scale > h or w_lr * scale > w:
        raise ValueError(f"LR {w_lr}x{h_lr} at x{scale} is larger than its HR {w}x{h}")
    return hr[: h_lr * scale, : w_lr * scale]


@dataclass(frozen=True)
class Pair:
    """One benchmark case: uint8 RGB LR input and the uint8 RGB HR it is scored against."""

    name: str
    scale: int
    lr: np.ndarray
    hr: np.ndarray
    lr_source: str  # "provided" or "bicubic"


@dataclass(frozen=True)
class Score:
    psnr: float
    ssim: float | None = None
    ssim_blue: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


class Protocol:
    name: str = ""
    metric_names: tuple[str, ...] = ()

    def needs_provided_lr(self, dataset: str, scale: int) -> bool:
        return False

    def pair(self, name: str, hr: np.ndarray, scale: int, provided_lr: np.ndarray | None = None) -> Pair:
        raise NotImplementedError

    def score(self, pred: np.ndarray, hr: np.ndarray, scale: int, dataset: str) -> Score:
        raise NotImplementedError

    def output_uint8(self, pred: np.ndarray) -> np.ndarray:
        """What `save_images` writes: the rounded uint8 image."""
        return quantize(pred, 8)


class PaperProtocol(Protocol):
    name = "paper"
    metric_names = ("psnr",)

    def needs_provided_lr(self, dataset: str, scale: int) -> bool:
        return scale in PROVIDED_LR_SCALES

    def pair(self, name: str, hr: np.ndarray, scale: int, provided_lr: np.ndarray | None = None) -> Pair:
        if provided_lr is not None:
            return Pair(name, scale, provided_lr, crop_to_lr(hr, provided_lr, scale), "provided")
        crop, lr = bicubic_pair(hr, scale)
        return Pair(name, scale, lr, crop, "bicubic")

    @staticmethod
    def shave(scale: int, dataset: str) -> int:
        return scale + 6 if dataset == "div2k" else scale

    def score(self, pred: np.ndarray, hr: np.ndarray, scale: int, dataset: str) -> Score:
        gt = hr.astype(np.float32) / np.float32(255)  # what ToTensor gives
        pred = np.clip(pred, 0, 1)
        y = dataset != "div2k"
        return Score(metrics.psnr(pred, gt, crop_border=self.shave(scale, dataset), y_channel=y, data_range=1.0))


class MmagicProtocol(Protocol):
    name = "mmagic"
    metric_names = ("psnr", "ssim", "ssim_blue")

    def pair(self, name: str, hr: np.ndarray, scale: int, provided_lr: np.ndarray | None = None) -> Pair:
        crop, lr = bicubic_pair(mod_crop(hr), scale)
        return Pair(name, scale, lr, crop, "bicubic")

    def score(self, pred: np.ndarray, hr: np.ndarray, scale: int, dataset: str) -> Score:
        out = quantize(pred, 8)
        p = metrics.psnr(out, hr, crop_border=scale, data_range=255.0)
        ch = metrics.ssim_channels(out, hr, crop_border=scale, data_range=255.0)
        return Score(p, float(ch.mean()), float(ch[2]))


def get_protocol(name: str) -> Protocol:
    if name == "paper":
        return PaperProtocol()
    if name == "mmagic":
        return MmagicProtocol()
    raise ValueError(f"unknown protocol {name!r} (expected one of {', '.join(PROTOCOLS)})")
