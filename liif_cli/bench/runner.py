"""Run a benchmark: models x datasets x scales under one protocol; collect scores, timings and comparisons.

`run_bench(...)` is the whole API: it returns a `BenchResult` whose rows (one per model, dataset and scale)
carry our mean scores, the per-image scores, timings and the published figure where one exists. Rendering
(rich table, JSON, CSV) lives in `report.py`; the command line only parses options and calls both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import distributed
from ..atomic import atomic_path
from ..errors import InputError, OutputError, UsageError
from ..load_options import LoadOptions
from . import published as pub
from .bicubic import NAME as BICUBIC
from .bicubic import BicubicUpscaler, is_bicubic
from .datasets import Dataset, open_dataset, read_rgb
from .protocols import Protocol, default_scales, get_protocol
from .results import BenchResult, DatasetRun, ImageScore, Row

ProgressHook = Callable[[str, dict[str, Any]], None]
"""Called as hook("start", {"total": n, "description": ...}), hook("advance", {...}), hook("end", {})."""


def parse_scales(text: str | Sequence[int] | None) -> list[int] | None:
    """ "2,3,4" -> [2, 3, 4]; integers >= 1 only (crop borders and provided LR are per integer scale)."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    scales: list[int] = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise UsageError(f"--scales: {item!r} is not a number") from None
        if not value.is_integer() or value < 1:
            raise UsageError(f"--scales: {item!r} is not an integer scale >= 1")
        if int(value) not in scales:
            scales.append(int(value))
    if not scales:
        raise UsageError("--scales: no scale given")
    return scales


def _load(model: str, load: LoadOptions, device: str):
    """The model on this process's device; fp32 (the reference math) unless another precision was asked for."""
    from ..api import load_model

    return load_model(model, load.replace(device=device, precision=load.precision or "fp32"))


def run_bench(
    datasets: Sequence[str],
    models: Sequence[str] = ("edsr-baseline",),
    *,
    protocol: str | Protocol = "mmagic",
    scales: Sequence[int] | None = None,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    save_images: str | Path | None = None,
    load: LoadOptions | None = None,
    progress: ProgressHook | None = None,
    loader: Callable[[str], Any] | None = None,
    report: str | Path | None = None,
) -> BenchResult:
    """Benchmark every model on every dataset at every scale under `protocol` ("mmagic" or "paper").

    scales: None for the protocol's defaults (per dataset). data_dir: a local copy in the standard layout
    (never downloads); None fetches into the cache. limit: first N images (sorted by name) of each set.
    save_images: write each uint8 output to `DIR/<model>/<dataset>/x<s>/<image>.png`.
    load: how models are loaded and run (`LoadOptions`; precision fp32, the reference math, unless given); its
    `offline` applies to the datasets too.
    loader: how to turn a model name into an object with `upscale_array(rgb, (h, w))` (default: load_model).
    `bicubic` is always the Pillow-bicubic baseline (bench/bicubic.py), never looked up.
    report: also write the self-contained HTML report there (bench/html_report.py); bicubic joins the models
    if it is not among them, and comparison strips are collected as the run goes (small crops only).

    Under torchrun or srun each rank scores its share of every set's images (balanced by pixels) on its own
    device and the per-image scores are merged in name order, so the figures equal a one-process run's;
    upscale_s is then the slowest rank's, so Mpx/s is the whole job's rate.
    """
    load = load or LoadOptions()
    with distributed.process_group(load.device) as group:
        return _run(
            group,
            datasets,
            models,
            protocol=protocol,
            scales=scales,
            data_dir=data_dir,
            limit=limit,
            save_images=save_images,
            load=load,
            progress=progress,
            loader=loader,
            report=report if group.is_main else None,  # rank 0 writes it (its share of the strips)
        )


def _run(
    group,
    datasets,
    models,
    *,
    protocol,
    scales,
    data_dir,
    limit,
    save_images,
    load,
    progress,
    loader,
    report,
) -> BenchResult:
    """`run_bench` in one process of the job (the only one when not launched): `group` says which."""
    device = group.device
    try:
        proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not datasets:
        raise UsageError("give at least one --dataset")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be >= 1")
    plan = {key.lower(): list(scales) if scales else list(default_scales(proto.name, key.lower())) for key in datasets}
    save_root = Path(save_images) if save_images else None
    if save_root is not None and save_root.exists() and not save_root.is_dir():
        raise OutputError(f"--save-images {save_root}: exists and is not a folder")

    strips = None
    if report is not None:
        from .html_report import check_target
        from .strips import StripCollector

        check_target(report)
        strips = StripCollector(proto)
        if not any(is_bicubic(m) for m in models):
            models = [BICUBIC, *models]

    # find / fetch every dataset before any model runs, so a missing set fails fast
    sets: dict[str, Dataset] = {}
    for key, sc in plan.items():
        lr_scales = [s for s in sc if proto.needs_provided_lr(key, s)]
        sets[key] = open_dataset(
            key, data_dir=Path(data_dir) if data_dir else None, lr_scales=lr_scales, offline=load.offline
        )

    t_all = time.perf_counter()
    rows: list[Row] = []
    runs: list[DatasetRun] = []
    engines: dict[str, dict[str, str]] = {}
    for model in models:
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
        for key, sc in plan.items():
            ds = sets[key]
            all_files = ds.images(limit)
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
        "scales": {k: v for k, v in plan.items()},
        "data_dir": str(data_dir) if data_dir else None,
        "limit": limit,
        "device": device,
        "precision": load.precision or "fp32",
        "threads": load.threads,
        "engines": engines,
        "processes": group.world_size,
        "distributed_warning": group.warning and "no process group, so every process scored every image",
    }
    labels = [_model_label(m) for m in models]
    result = BenchResult(proto.name, labels, list(plan), rows, runs, time.perf_counter() - t_all, settings, group.rank)
    if report is not None:
        from .html_report import write_report

        write_report(result, strips.strips(), report)
    return result


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


def _mean(values) -> float:
    v = list(values)
    return float(np.mean(v)) if v else math.nan


def _mean_opt(values) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _save(path: Path, img: np.ndarray) -> None:
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc})") from exc
