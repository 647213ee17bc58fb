"""Published (and reference) figures to compare a benchmark run with, from NOTES.md "Reference results".

A figure belongs to a *source model* (which weights produced it), a protocol, a dataset and a scale. Registry
names map to source models: `edsr-baseline` -> the official EDSR-baseline-LIIF, `rdn` -> the official RDN-LIIF,
`mmagic-edsr` / `mmagic-rdn` -> the mmagic checkpoints. The mmagic table is for the mmagic checkpoints only, the
paper's tables for the official ones; a model without a figure for a case shows "—".

The mmagic SSIM figures are the MMEditing 0.x blue-channel values, so they are compared with our blue-only
SSIM (`ssim_blue`), never with the RGB mean. Besides the published tables, NOTES.md gives reference measurements
of the official EDSR-baseline checkpoint with the official code (paper protocol, Set5) and under the mmagic
protocol (Set5 SSIM, blue and RGB, at x2 x3 x6); they are shown the same way, with their source named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..registry import load_registry, sha256_file

SOURCE_MODELS = {
    "edsr-baseline": "EDSR-baseline-LIIF (official)",
    "rdn": "RDN-LIIF (official)",
    "mmagic-edsr": "LIIF-EDSR (mmagic)",
    "mmagic-rdn": "LIIF-RDN (mmagic)",
    "bicubic": "bicubic (Pillow, a = -0.5)",
}
"""The registry names (in the shipped weights.toml) that published figures belong to."""
PAPER = "Chen, Liu and Wang, Learning Continuous Image Representation with Local Implicit Image Function, CVPR 2021"
OFFICIAL_CODE = "official code (yinboc/liif, test.py) run on this checkpoint"
"""The source text of figures measured with the official code (not published in a table): a column of its own."""
MMAGIC_CARD = "mmagic model card (open-mmlab/mmagic, configs/liif/README.md)"
BICUBIC_ROW = "bicubic row of the SR literature (EDSR, VDSR, RCAN tables)"


@dataclass(frozen=True)
class Figure:
    psnr: float | None
    ssim_blue: float | None  # MMEditing 0.x SSIM: the blue channel alone
    ssim_rgb: float | None  # the correct mean over R, G, B
    source: str


_PAPER_T2 = (2, 3, 4, 6, 8)
_PAPER_T1 = (2, 3, 4, 6, 12, 18, 24, 30)
_MMAGIC = (2, 3, 4, 6, 18, 30)

Series = dict[int, tuple[float | None, float | None]]
"""scale -> (PSNR, SSIM); every published SSIM is MMEditing 0.x's (the blue channel alone)."""

# One row per (source model, protocol, dataset): where the figures come from, at which scales, the PSNR per scale
# and, where published, the SSIM per scale.
# fmt: off
_ROWS: tuple[tuple[str, str, str, str, tuple[int, ...], tuple[float, ...], tuple[float, ...] | None], ...] = (
    ("edsr-baseline", "paper", "set5", OFFICIAL_CODE, _PAPER_T2, (37.9877, 34.3997, 32.2375, 28.9551, 26.9824), None),
    ("edsr-baseline", "paper", "div2k", f"{PAPER}, Table 1", _PAPER_T1, (34.67, 30.96, 29.00, 26.75, 23.71, 22.17, 21.18, 20.48), None),
    ("rdn", "paper", "div2k", f"{PAPER}, Table 1", _PAPER_T1, (34.99, 31.26, 29.27, 26.99, 23.89, 22.34, 21.31, 20.59), None),
    # MATLAB bicubic of the provided LR images, Y PSNR with shave = scale (NOTES "Reference results")
    ("bicubic", "paper", "set5", BICUBIC_ROW, (2, 3, 4), (33.66, 30.39, 28.42), None),
    ("bicubic", "paper", "set14", BICUBIC_ROW, (2, 3, 4), (30.24, 27.55, 26.00), None),
    ("rdn", "paper", "set5", f"{PAPER}, Table 2", _PAPER_T2, (38.17, 34.68, 32.50, 29.15, 27.14), None),
    ("rdn", "paper", "set14", f"{PAPER}, Table 2", _PAPER_T2, (33.97, 30.53, 28.80, 26.64, 25.15), None),
    ("rdn", "paper", "b100", f"{PAPER}, Table 2", _PAPER_T2, (32.32, 29.26, 27.74, 25.98, 24.91), None),
    ("rdn", "paper", "urban100", f"{PAPER}, Table 2", _PAPER_T2, (32.87, 28.82, 26.68, 24.20, 22.79), None),
    ("mmagic-edsr", "mmagic", "set5", MMAGIC_CARD, _MMAGIC, (35.7131, 32.3805, 30.2748, 27.1187, 20.8516, 18.8467), (0.9366, 0.8915, 0.8509, 0.7774, 0.5406, 0.5010)),
    ("mmagic-edsr", "mmagic", "set14", MMAGIC_CARD, _MMAGIC, (31.5579, 28.4605, 26.8415, 24.7461, 20.0096, 18.1321), (0.8889, 0.8039, 0.7381, 0.6444, 0.4525, 0.3963)),
    ("mmagic-edsr", "mmagic", "div2k", MMAGIC_CARD, _MMAGIC, (34.6647, 30.9808, 29.0245, 26.7770, 22.1987, 20.5050), (0.9355, 0.8724, 0.8187, 0.7425, 0.5955, 0.5577)),
    ("mmagic-rdn", "mmagic", "set5", MMAGIC_CARD, _MMAGIC, (35.7874, 32.4992, 30.3835, 27.1914, 20.8913, 18.9354), (0.9366, 0.8923, 0.8513, 0.7751, 0.5329, 0.4864)),
    ("mmagic-rdn", "mmagic", "set14", MMAGIC_CARD, _MMAGIC, (31.6866, 28.4905, 26.8734, 24.7824, 20.1077, 18.1448), (0.8896, 0.8037, 0.7373, 0.6434, 0.4537, 0.3942)),
    ("mmagic-rdn", "mmagic", "div2k", MMAGIC_CARD, _MMAGIC, (34.7548, 31.0744, 29.1101, 26.8693, 22.2972, 20.5663), (0.9356, 0.8731, 0.8197, 0.7437, 0.5950, 0.5560)),
)
# fmt: on


def _series(scales: tuple[int, ...], psnrs: tuple[float, ...], ssims: tuple[float, ...] | None) -> Series:
    return {s: (p, q) for s, p, q in zip(scales, psnrs, ssims or (None,) * len(scales), strict=True)}


_TABLES: dict[tuple[str, str, str], tuple[str, Series]] = {
    (model, protocol, dataset): (text, _series(scales, psnrs, ssims))
    for model, protocol, dataset, text, scales, psnrs, ssims in _ROWS
}
"""(source model, protocol, dataset) -> (source text, {scale: (PSNR, SSIM)})."""


def source_model(model: str | Path) -> str | None:
    """The source-model key (`edsr-baseline`, `rdn`, `mmagic-edsr`, `mmagic-rdn`) for a registry name or a
    checkpoint path, recognised by the shipped registry's hash for it, else by its published file name (for an
    existing file only when the registry pins no hash for that model); None when unknown."""
    text = str(model)
    if text in SOURCE_MODELS:
        return text
    entries = {name: e for name, e in load_registry(shipped=True).items() if name in SOURCE_MODELS}
    path = Path(text)
    by_name = {file_name: name for name, e in entries.items() for file_name in e.published_names}
    if not path.is_file():
        return by_name.get(path.name)
    digest = sha256_file(path)
    for name, entry in entries.items():
        if entry.pinned and entry.accepts(digest):
            return name
    # a file we cannot vouch for: its name counts only for models whose hash is not published (rdn)
    key = by_name.get(path.name)
    return key if key is not None and not entries[key].pinned else None


# Reference measurements in NOTES.md ("Evaluation protocols"): official EDSR-baseline weights, mmagic protocol,
# Set5, SSIM as (blue only, RGB mean).
_NOTES_MMAGIC_SSIM = {
    ("edsr-baseline", "mmagic", "set5"): (
        "mmagic evaluation (open-mmlab/mmagic) run on the official weights",
        {2: (0.9367, 0.9438), 3: (0.8915, 0.9032), 6: (0.7778, 0.7924)},
    )
}


def published_figure(source: str | None, protocol: str, dataset: str, scale: int) -> Figure | None:
    """The figure to print beside ours, or None ("—")."""
    if source is None:
        return None
    entry = _TABLES.get((source, protocol, dataset))
    if entry is not None and scale in entry[1]:
        text, series = entry  # every published SSIM is MMEditing 0.x (blue)
        p, s = series[scale]
        return Figure(p, s, None, text)
    notes = _NOTES_MMAGIC_SSIM.get((source, protocol, dataset))
    if notes is not None and scale in notes[1]:
        blue, rgb = notes[1][scale]
        return Figure(None, blue, rgb, notes[0])
    return None
