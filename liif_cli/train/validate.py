"""Validation during training: PSNR of the live network on a folder at chosen scales, paper protocol.

Pairs and scores come from `liif_cli.bench`'s `PaperProtocol` (the official `test.py`): at x2-x4 the
folder's provided `LR_bicubic/X{s}/{name}x{s}.png` with the HR cropped to LR * s, when the folder has them;
otherwise (other scales, or a plain folder of HR images) LR made by PIL bicubic from the HR cropped to
round(floor(H / s + 1e-9) * s). 'benchmark' protocol: PSNR of the paper's Y of the difference, `s` px
shaved; 'div2k': RGB PSNR, `s + 6` px shaved.

Predictions come from `liif_cli.engine` in fp32: the official `batched_predict` numbers (to about 1e-6,
clamped to [0, 1], not rounded) with bounded memory on large images. A fresh `Renderer` is made per pass
because the engine keeps its own prepared copy of the decoder weights. Images are split over the processes
of a distributed run and the sums all-reduced, so every rank returns the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..bench.protocols import PROVIDED_LR_SCALES, PaperProtocol
from ..engine import Renderer, RenderOptions, render_array
from ..models import LIIF, LoadedModel, Normalization
from .data import hr_folder, list_images, read_rgb


def provided_lr(root: str | Path, hr_path: Path, scale: int) -> Path | None:
    """`root/LR_bicubic/X{s}/{stem}x{s}{suffix}` (or the HR's own name there) when it exists."""
    folder = Path(root) / "LR_bicubic" / f"X{scale}"
    for name in (f"{hr_path.stem}x{scale}{hr_path.suffix}", hr_path.name):
        if (folder / name).is_file():
            return folder / name
    return None


def _renderer(net: LIIF, encoder: str, norm: Normalization, device: torch.device) -> Renderer:
    return Renderer(LoadedModel(net, encoder, norm, "training"), RenderOptions(device, "fp32"))


def validate(
    net: LIIF,
    encoder: str,
    norm: Normalization,
    root: str | Path,
    scales: list[int],
    device: torch.device,
    *,
    protocol: str = "benchmark",
    max_images: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> dict[int, float]:
    """Mean per-image PSNR at each scale over the folder's images (the first `max_images` when > 0)."""
    files = list_images(hr_folder(root))
    if max_images:
        files = files[:max_images]
    paper = PaperProtocol()
    dataset = "div2k" if protocol == "div2k" else Path(root).name
    sums = torch.zeros(len(scales), dtype=torch.float64)
    was_training = net.training
    try:
        renderer = _renderer(net, encoder, norm, device)
        for path in files[rank::world_size]:
            hr = np.asarray(read_rgb(path))
            for j, scale in enumerate(scales):
                lr_path = provided_lr(root, path, scale) if scale in PROVIDED_LR_SCALES else None
                lr = np.asarray(read_rgb(lr_path)) if lr_path else None
                pair = paper.pair(path.stem, hr, scale, lr)
                pred = render_array(renderer, pair.lr.astype(np.float32) / np.float32(255), pair.hr.shape[:2])
                sums[j] += paper.score(pred, pair.hr, scale, dataset).psnr
    finally:
        net.train(was_training)
    if world_size > 1:
        reduce_on = sums.to(device) if dist.get_backend() == "nccl" else sums
        dist.all_reduce(reduce_on)
        sums = reduce_on.cpu()
    return {scale: float(sums[j]) / len(files) for j, scale in enumerate(scales)}
