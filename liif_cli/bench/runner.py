"""Run a benchmark: models x datasets x scales under one protocol; collect scores, timings and comparisons.

`run_bench(plan)` is the whole API: it takes one `BenchPlan` (`plan.py`) and returns a `BenchResult` whose rows
(one per model, dataset and scale) carry our mean scores, the per-image scores, timings and the published figure
where one exists, and, when the plan asks for them, the comparison strips of the HTML report. Drawing lives in
`report.py` (rich table, JSON, CSV...) and `html_report.py` (the HTML file), which read the result alone: the
command line parses options into a plan, runs it, and asks for what the user wants written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from .. import distributed
from ..atomic import atomic_path
from ..errors import InputError, OutputError
from ..load_options import LoadOptions
from . import published as pub
from .bicubic import BicubicUpscaler, is_bicubic
from .datasets import Dataset, open_dataset, read_rgb
from .plan import BenchPlan
from .protocols import get_protocol
from .results import BenchResult, DatasetRun, ImageScore, Row

ProgressHook = Callable[[str, dict[str, Any]], None]
"""Called as hook("start", {"total": n, "description": ...}), hook("advance", {...}), hook("end", {})."""


class BenchModel(Protocol):
    """What the runner calls: a loaded model (`api.Upscaler`), the bicubic baseline, or a loader's stand-in."""

    def upscale_array(self, rgb: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray: ...


Loader = Callable[[str], BenchModel]
"""How a model name becomes a `BenchModel` (default: `api.load_model` with the plan's load options)."""


def _load(model: str, load: LoadOptions, device: str) -> BenchModel:
    """The model on this process's device; fp32 (the reference math) unless another precision was asked for."""
    from ..api import load_model

    return load_model(model, load.replace(device=device, precision=load.precision or "fp32"))


def run_bench(plan: BenchPlan, *, progress: ProgressHook | None = None, loader: Loader | None = None) -> BenchResult:
    """Benchmark every model of `plan` on every dataset at every scale under its protocol.

    progress: called as the images are scored (see `ProgressHook`). loader: how to turn a model name into an
    object with `upscale_array(rgb, (h, w))` (default: `load_model`); `bicubic` is always the Pillow-bicubic
    baseline (bench/bicubic.py), never looked up. Every set is found (or fetched) before any model runs.

    Under torchrun or srun each rank scores its share of every set's images (balanced by pixels) on its own
    device and the per-image scores are merged in name order, so the figures equal a one-process run's;
    upscale_s is then the slowest rank's, so Mpx/s is the whole job's rate. Strips are rank 0's share.
    """
    with distributed.process_group(plan.load.device) as group:
        return _run(group, plan, progress=progress, loader=loader)


def _run(
    group: distributed.Group, plan: BenchPlan, *, progress: ProgressHook | None, loader: Loader | None
) -> BenchResult:
    """`run_bench` in one process of the job (the only one when not launched): `group` says which."""
    device = group.device
    load = plan.load
    proto = get_protocol(plan.protocol)
    scales = {key: plan.scales_for(key) for key in plan.datasets}
    save_root = Path(plan.save_images) if plan.save_images else None
    if save_root is not None and save_root.exists() and not save_root.is_dir():
        raise OutputError(f"{{save_images}} {save_root}: exists and is not a folder", param="save_images")
    strips = None
    if plan.strips and group.is_main:  # rank 0 keeps them (its share of the images), as it writes the report
        from .strips import StripCollector

        strips = StripCollector(proto)

    # find / fetch every dataset before any model runs, so a missing set fails fast
    data_dir = Path(plan.data_dir) if plan.data_dir else None
    sets: dict[str, Dataset] = {}
    for key, sc in scales.items():
        lr_scales = [s for s in sc if proto.needs_provided_lr(key, s)]
        sets[key] = open_dataset(key, data_dir=data_dir, lr_scales=lr_scales, offline=load.offline)

    t_all = time.perf_counter()
    rows: list[Row] = []
    runs: list[DatasetRun] = []
    engines: dict[str, dict[str, str]] = {}
    for model in map(str, plan.models):
        up: BenchModel
        if is_bicubic(model):
            up = BicubicUpscaler()
        else:
            up = loader(model) if loader else _load(model, load, device)
        engines[_model_label(model)] = {
            "device": str(getattr(up, "device", device)),
            "precision": str(getattr(up, "precision", load.precision or "fp32")),
        }
        source = pub.source_model(model)
        label = _model_label(model)
        for key, sc in scales.items():
            ds = sets[key]
            all_files = ds.images(plan.limit)
            files = group.share(all_files, [_pixels(p) for p in all_files]) if group.formed else all_files
            t_ds = time.perf_counter()
            hr_cache = {p: read_rgb(p) for p in files}
            used_files = list(files)
            total = len(files) * len(sc)
            if progress:
                progress("start", {"total": total, "description": f"{label} {ds.name}"})
            ds_rows: list[Row] = []
            for s in sc:
                t_row = time.perf_counter()
                up_s = 0.0
                out_px = 0
                scores: list[ImageScore] = []
                for p in files:
                    provided = None
                    if proto.needs_provided_lr(key, s) and s in ds.lr_dirs:  # else PIL bicubic, noted in the row
                        lr_file = ds.lr_path(p, s)
                        used_files.append(lr_file)
                        provided = read_rgb(lr_file)
                    try:
                        pair = proto.pair(p.stem, hr_cache[p], s, provided)
                    except ValueError as exc:
                        raise InputError(f"{ds.name}/{p.name}: {exc}") from exc
                    h, w = pair.hr.shape[:2]
                    t0 = time.perf_counter()
                    pred = up.upscale_array(pair.lr.astype(np.float32) / np.float32(255), (h, w))
                    up_s += time.perf_counter() - t0
                    out_px += h * w
                    sc_img = proto.score(pred, pair.hr, s, key)
                    scores.append(
                        ImageScore(
                            p.stem,
                            sc_img.psnr,
                            sc_img.ssim,
                            sc_img.ssim_blue,
                            (pair.lr.shape[1], pair.lr.shape[0]),
                            (w, h),
                            pair.lr_source,
                        )
                    )
                    if strips is not None:
                        strips.add(label, key, pair, pred, sc_img.psnr)
                    if save_root is not None:
                        _save(save_root / label / ds.name / f"x{s}" / f"{p.stem}.png", proto.output_uint8(pred))
                    if progress:
                        progress("advance", {"image": p.stem, "scale": s, "out_pixels": h * w})
                if group.formed:  # every rank's scores, back in name order; the slowest rank's time
                    scores = distributed.merge_shards(
                        group, [(all_files.index(p), x) for p, x in zip(files, scores, strict=True)]
                    )
                    parts = distributed.gather(group, (out_px, up_s))
                    out_px, up_s = sum(n for n, _ in parts), max(t for _, t in parts)
                fig = pub.published_figure(source, proto.name, key, s)
                ds_rows.append(
                    Row(
                        model=label,
                        dataset=key,
                        scale=s,
                        protocol=proto.name,
                        images=len(scores),
                        psnr=_mean(x.psnr for x in scores),
                        ssim=_mean_opt(x.ssim for x in scores),
                        ssim_blue=_mean_opt(x.ssim_blue for x in scores),
                        out_mpx=out_px / 1e6,
                        upscale_s=up_s,
                        wall_s=time.perf_counter() - t_row,
                        published_psnr=fig.psnr if fig else None,
                        published_ssim_blue=fig.ssim_blue if fig else None,
                        published_ssim_rgb=fig.ssim_rgb if fig else None,
                        published_source=fig.source if fig else None,
                        per_image=scores,
                    )
                )
            if progress:
                progress("end", {})
            rows.extend(ds_rows)
            runs.append(
                DatasetRun(
                    model=label,
                    dataset=key,
                    images=len(all_files),
                    scales=list(sc),
                    out_mpx=sum(r.out_mpx for r in ds_rows),
                    upscale_s=sum(r.upscale_s for r in ds_rows),
                    wall_s=time.perf_counter() - t_ds,
                    location=str(ds.root),
                    verified=_verified(distributed.gather(group, ds.verify(used_files))),
                )
            )
    settings = {
        "scales": {k: list(v) for k, v in scales.items()},
        "data_dir": str(plan.data_dir) if plan.data_dir else None,
        "limit": plan.limit,
        "device": device,
        "precision": load.precision or "fp32",
        "threads": load.threads,
        "engines": engines,
        "processes": group.world_size,
        "distributed_warning": group.warning and "no process group, so every process scored every image",
    }
    labels = [_model_label(m) for m in plan.models]
    wall_s = time.perf_counter() - t_all
    kept = strips.strips() if strips is not None else []
    return BenchResult(proto.name, labels, list(scales), rows, runs, wall_s, settings, group.rank, kept)


def _model_label(model: str | Path) -> str:
    text = str(model)
    return text if text in pub.SOURCE_MODELS or "/" not in text and not text.endswith(".pth") else Path(text).name


def _pixels(path: Path) -> int:
    """HR pixels from the header alone: the weight that balances the ranks' shares."""
    from ..imageio import open_image

    with open_image(path) as im:
        return im.size[0] * im.size[1]


def _verified(per_rank: list[str | None]) -> str | None:
    """Each rank checked the files it read: one that differs makes the set differ."""
    known = [v for v in per_rank if v is not None]
    return None if not known else "differs" if "differs" in known else "match"


def _mean(values: Iterable[float]) -> float:
    v = list(values)
    return float(np.mean(v)) if v else math.nan


def _mean_opt(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _save(path: Path, img: np.ndarray) -> None:
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc})") from exc
