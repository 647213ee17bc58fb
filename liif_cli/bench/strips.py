"""Comparison strips for `liif bench --report`: per image and scale, the same small crop from bicubic, each
model and the ground truth, taken where the leading model gains most over bicubic.

Memory stays bounded: the runner hands over each prediction as it is made, and only the crops (PNG-encoded,
a few kB each) are kept; the full outputs are dropped at once. The crop is chosen when the first model that is
not bicubic arrives (the "leading" model; later models are cropped at the same place). Bicubic is recomputed
here from the same uint8 LR, so the strip does not depend on whether or when the bicubic row runs.
The error that picks the crop, and each panel's PSNR, are measured as the protocol scores: the paper's Y
difference on clamped floats (RGB for DIV2K), or RGB on the uint8-rounded output for mmagic.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .. import metrics
from ..imageio import quantize
from .bicubic import NAME as BICUBIC
from .bicubic import bicubic_upscale, is_bicubic
from .protocols import Pair, PaperProtocol, Protocol

CROP = 64
"""Side of the crop in HR pixels (smaller where the image is smaller)."""


@dataclass
class Panel:
    label: str
    png: bytes
    crop_psnr: float | None  # None for the ground truth
    image_psnr: float | None = None  # the whole image's score, where the run measured it


@dataclass
class Strip:
    dataset: str
    image: str
    scale: int
    box: tuple[int, int, int]  # top, left, side in HR pixels
    lead: str | None  # the model whose gain over bicubic chose the crop; None: bicubic's worst region
    panels: dict[str, Panel] = field(default_factory=dict)

    def ordered(self, models: list[str]) -> list[Panel]:
        """bicubic, each model in run order, ground truth."""
        names = [BICUBIC] + [m for m in models if m != BICUBIC and m in self.panels] + ["GT"]
        return [self.panels[n] for n in names if n in self.panels]


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class StripCollector:
    def __init__(self, protocol: Protocol, crop: int = CROP) -> None:
        self.protocol = protocol
        self.crop = crop
        self._strips: dict[tuple[str, str, int], Strip] = {}

    # --- how the protocol sees an output -----------------------------------------------------------------

    def _y_channel(self, dataset: str) -> bool:
        return self.protocol.name == "paper" and dataset != "div2k"

    def _border(self, dataset: str, scale: int) -> int:
        return PaperProtocol.shave(scale, dataset) if self.protocol.name == "paper" else scale

    def _scored(self, pred: np.ndarray) -> np.ndarray:
        """The prediction as the protocol scores it, float64 in [0, 1]."""
        if self.protocol.name == "mmagic":
            return quantize(pred, 8).astype(np.float64) / 255
        return np.clip(pred, 0, 1).astype(np.float64)

    def _sq_error(self, pred: np.ndarray, gt: np.ndarray, dataset: str) -> np.ndarray:
        diff = self._scored(pred) - gt
        if self._y_channel(dataset):
            return metrics.rgb_to_y_diff(diff) ** 2
        return (diff**2).mean(axis=2)

    # --- choosing the crop -------------------------------------------------------------------------------

    def _box(self, score_map: np.ndarray, border: int) -> tuple[int, int, int]:
        """(top, left, side) of the window with the largest sum of `score_map`, inside the scored region."""
        h, w = score_map.shape
        if min(h, w) - 2 * border < 8:
            border = 0
        side = min(self.crop, h - 2 * border, w - 2 * border)
        inner = score_map[border : h - border, border : w - border]
        s = np.zeros((inner.shape[0] + 1, inner.shape[1] + 1))
        s[1:, 1:] = inner.cumsum(0).cumsum(1)
        win = s[side:, side:] - s[:-side, side:] - s[side:, :-side] + s[:-side, :-side]
        top, left = np.unravel_index(int(np.argmax(win)), win.shape)
        return int(top) + border, int(left) + border, int(side)

    # --- the runner's hook -------------------------------------------------------------------------------

    def add(self, model: str, dataset: str, pair: Pair, pred: np.ndarray, image_psnr: float | None = None) -> None:
        """Take one prediction of `model` for `pair`; keep only its crop."""
        key = (dataset, pair.name, pair.scale)
        strip = self._strips.get(key)
        if strip is not None and is_bicubic(model):
            strip.panels[BICUBIC].image_psnr = image_psnr
            return
        if strip is None or (strip.lead is None and not is_bicubic(model)):
            strip = self._start(model, dataset, pair, pred, image_psnr, previous=strip)
            self._strips[key] = strip
            if is_bicubic(model):
                return
        strip.panels[model] = self._panel(model, strip, pred, pair.hr, dataset, image_psnr)

    def _start(
        self,
        model: str,
        dataset: str,
        pair: Pair,
        pred: np.ndarray,
        image_psnr: float | None,
        previous: Strip | None,
    ) -> Strip:
        gt = pair.hr.astype(np.float64) / 255
        bic = bicubic_upscale(pair.lr, pair.hr.shape[:2])
        bic_err = self._sq_error(bic.astype(np.float32) / 255, gt, dataset)
        border = self._border(dataset, pair.scale)
        if is_bicubic(model):  # no model yet: show where bicubic does worst
            lead, box = None, self._box(bic_err, border)
        else:
            lead, box = model, self._box(bic_err - self._sq_error(pred, gt, dataset), border)
        strip = Strip(dataset, pair.name, pair.scale, box, lead)
        bic_psnr = previous.panels[BICUBIC].image_psnr if previous else (image_psnr if lead is None else None)
        strip.panels[BICUBIC] = self._panel(BICUBIC, strip, bic.astype(np.float32) / 255, pair.hr, dataset, bic_psnr)
        top, left, side = box
        strip.panels["GT"] = Panel("ground truth", _png(pair.hr[top : top + side, left : left + side]), None)
        return strip

    def _panel(
        self, label: str, strip: Strip, pred: np.ndarray, hr: np.ndarray, dataset: str, image_psnr: float | None
    ) -> Panel:
        top, left, side = strip.box
        p = pred[top : top + side, left : left + side]
        g = hr[top : top + side, left : left + side].astype(np.float64) / 255
        value = metrics.psnr(self._scored(p), g, y_channel=self._y_channel(dataset), data_range=1.0)
        return Panel(label, _png(quantize(p, 8)), value, image_psnr)

    def strips(self) -> list[Strip]:
        return [self._strips[k] for k in sorted(self._strips)]
