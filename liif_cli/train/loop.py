"""The training loop: one process, or one of many under torchrun or srun (DistributedDataParallel).

`train(cfg)` does everything `liif train` does. Under torchrun or srun (`distributed.join`) each process
trains a replica on its shard of every epoch's samples with DDP (NCCL on CUDA, gloo on CPU); the global
batch `cfg.batch_size` is split evenly over the processes, so the recipe (and the meaning of an epoch)
does not depend on how many there are. Only rank 0 prints, logs and writes files; validation is split
over all ranks.

Per iteration: normalize LR input and HR targets like the model expects, forward (optionally under
autocast), L1 loss in fp32, Adam step (through a GradScaler for fp16). The learning rate is a function
of finished epochs (`TrainConfig.lr_at`, the official MultiStepLR), so resuming restores it exactly.
Checkpoints are written at epoch ends; a resumed run continues after the last saved epoch.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.progress import TextColumn
from torch.nn.parallel import DistributedDataParallel

from .. import atomic, distributed
from ..devices import resolve_device
from ..errors import LiifError, ModelError, OutputError, UsageError
from ..models import LIIF, Normalization, build_liif
from ..progress import work_progress
from .checkpoint import (
    atomic_save,
    load_model,
    normalization_from_name,
    optimizer_from_official,
    read_checkpoint,
    save_safetensors,
    training_checkpoint,
)
from .config import TrainConfig, build_config, dump_toml, read_toml, stored_config
from .data import SRTrainDataset, hr_folder, list_images, make_loader, scan_images
from .validate import validate

LOG_NAME = "log.jsonl"


# --- processes and devices ---------------------------------------------------------------------------


def _join(device_name: str) -> distributed.Group:
    """The launcher's process group (torchrun or srun), as `liif upscale` forms it; training cannot run as
    independent shards, so a launch whose ranks cannot meet is an error here, not a warning."""
    group = distributed.join(device_name)
    if group.world_size > 1 and not group.formed:
        raise UsageError(f"training with {group.world_size} processes needs a process group: {group.warning}")
    return group


# --- results and logging -----------------------------------------------------------------------------


@dataclass
class TrainResult:
    out: Path
    epoch: int
    iteration: int
    last_loss: float | None
    best_psnr: float | None
    val: dict[int, float] | None  # PSNR per validation scale
    rank: int = 0


class RunLog:
    """Append-only JSON lines in RUN_DIR/log.jsonl (rank 0 only; other ranks get a no-op)."""

    def __init__(self, path: Path | None):
        self.path = path

    def write(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's log.jsonl, in order."""
    path = Path(run_dir) / LOG_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def param_hash(net: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --- the model to train ------------------------------------------------------------------------------


def _resolve_init(name_or_path: str, info: distributed.Group) -> tuple[Path, str | None]:
    """A checkpoint path, or a registry name resolved (rank 0 downloads first) with its normalization."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path, None
    from .. import registry  # only for names

    entry = registry.get_entry(name_or_path)
    if info.is_main:
        resolved = registry.resolve_weights(name_or_path, progress=True)
    distributed.barrier(info)
    if not info.is_main:
        resolved = registry.resolve_weights(name_or_path, progress=False)
    return resolved, entry.normalization


def _resume_path(cfg: TrainConfig, out: Path) -> Path | None:
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        last = out / "last.pth"
        return last if last.is_file() else None
    path = Path(cfg.resume).expanduser()
    if path.is_dir():
        path = path / "last.pth"
    if not path.is_file():
        raise UsageError(f"{{resume}}: no checkpoint at {path}", param="resume")
    return path


def _build_model(
    cfg: TrainConfig, info: distributed.Group, resume_path: Path | None
) -> tuple[LIIF, str, Normalization, str]:
    """(net, encoder, normalization, description of where the weights came from)."""
    if resume_path is not None:
        loaded = load_model(resume_path, normalization=cfg.normalization)
        origin = f"resume {resume_path}"
    elif cfg.init:
        path, registry_norm = _resolve_init(cfg.init, info)
        loaded = load_model(path, normalization=cfg.normalization or registry_norm)
        origin = f"init {cfg.init}"
    else:
        torch.manual_seed(cfg.seed)
        encoder = cfg.encoder or "edsr-baseline"
        net = build_liif(encoder)
        return net, encoder, normalization_from_name(cfg.normalization or "half"), "scratch"
    if cfg.encoder and cfg.encoder != loaded.encoder:
        raise UsageError(
            f"{{encoder}} {cfg.encoder} does not match the {loaded.encoder} weights of {origin}", param="encoder"
        )
    return loaded.net, loaded.encoder, loaded.normalization, origin


# --- RNG state ---------------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- progress ----------------------------------------------------------------------------------------


class _Progress:
    """Rich progress bar on stderr with loss, learning rate and throughput (rank 0 only)."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.console = Console(stderr=True)
        self.bar = None
        if enabled:
            self.bar = work_progress(
                TextColumn(
                    "epoch {task.fields[epoch]}  loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]}"
                ),
                console=self.console,
                transient=False,
            )
            self.task = self.bar.add_task(
                "train", total=total, completed=done, unit="it", epoch="-", loss="-", lr="-", speed=""
            )
            self.bar.start()

    def advance(self, **fields: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, **fields)

    def fields(self, **fields: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.task, **fields)

    def print(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message, highlight=False)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# --- the loop ----------------------------------------------------------------------------------------


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or continue) a training run as configured; returns where it ended."""
    cfg.validate()
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    group = _join(cfg.device)
    try:
        return _train(cfg, group)
    finally:
        distributed.leave(group)
        torch.set_num_threads(threads_before)


def _train(cfg: TrainConfig, info: distributed.Group) -> TrainResult:
    assert cfg.data and cfg.out, "TrainConfig.validate refuses a config without them"
    out = Path(cfg.out)
    device = resolve_device(info.device)
    if cfg.batch_size % info.world_size:
        raise UsageError(
            f"{{batch_size}} {cfg.batch_size} does not split evenly over {info.world_size} processes",
            param="batch_size",
        )
    per_rank_batch = cfg.batch_size // info.world_size

    resume_path = _resume_path(cfg, out)
    if resume_path is None and (out / "last.pth").exists() and not cfg.overwrite:
        raise OutputError(
            f"{out} already holds a run",
            param=("resume", "overwrite"),
            hint="pass {resume} to continue it or {overwrite} to start over",
        )
    resume = read_checkpoint(resume_path) if resume_path else None
    if resume is not None and not isinstance(resume.get("liif_train"), dict):
        raise ModelError(
            f"{resume_path}: not a `liif train` checkpoint",
            param=("resume", "init"),
            hint="to fine-tune from it, use {init}",
        )

    net, encoder, norm, origin = _build_model(cfg, info, resume_path)
    net.to(device).train()
    model: torch.nn.Module = net
    if info.formed:
        # the only buffers are EDSR's constant MeanShift tensors: nothing to broadcast each step
        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    scaler = torch.amp.GradScaler(device.type) if cfg.amp == "fp16" else None

    epoch, iteration, best = 0, 0, None
    if resume is not None:
        state = resume["liif_train"]
        epoch, iteration, best = int(resume.get("epoch", 0)), int(state.get("iteration", 0)), state.get("best_psnr")
        optimizer.load_state_dict(optimizer_from_official(net, resume["optimizer"]["sd"]))
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state.get("rng", {}))

    min_side = round(cfg.inp_size * cfg.scale_min)
    items, skipped = scan_images(hr_folder(cfg.data), min_side=min_side)
    if cfg.val:
        list_images(hr_folder(cfg.val))  # a bad --val should fail now, not after the first epoch
    dataset = SRTrainDataset(
        items,
        cfg.samples_per_epoch,
        inp_size=cfg.inp_size,
        scale_min=cfg.scale_min,
        scale_max=cfg.scale_max,
        sample_q=cfg.sample_q,
        augment=cfg.augment,
        seed=cfg.seed,
        decoded_cache=cfg.decoded_cache,
    )
    loader, sampler = make_loader(
        dataset,
        per_rank_batch,
        rank=info.rank,
        world_size=info.world_size,
        workers=cfg.workers,
        seed=cfg.seed,
        pin_memory=device.type == "cuda",
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every batch has the same shapes

    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if resume is None and cfg.overwrite:  # a fresh run: nothing of the old one may be mistaken for it
            for old in [out / LOG_NAME, out / "last.pth", out / "best.pth", *out.glob("epoch-*.pth")]:
                old.unlink(missing_ok=True)
        atomic.write_text(out / "config.toml", dump_toml(cfg))
    log = RunLog(out / LOG_NAME if info.is_main else None)
    total_iters = cfg.epochs * cfg.iters_per_epoch
    progress = _Progress(cfg.progress and info.is_main, total_iters, min(iteration, total_iters))
    if skipped:
        progress.print(f"[yellow]skipping {len(skipped)} image(s) smaller than {min_side} px: {skipped[0].name} ...")
    log.write(
        "start",
        origin=origin,
        encoder=encoder,
        normalization={"sub": list(norm.sub), "div": list(norm.div)},
        world_size=info.world_size,
        device=str(device),
        amp=cfg.amp,
        epoch=epoch,
        iteration=iteration,
        images=len(items),
        skipped=[str(p) for p in skipped],
        per_rank_batch=per_rank_batch,
    )

    sub = torch.tensor(norm.sub, device=device)
    div = torch.tensor(norm.div, device=device)
    inp_sub, inp_div = sub.view(1, 3, 1, 1), div.view(1, 3, 1, 1)
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype is not None else nullcontext

    last_loss, last_val = None, None
    try:
        while epoch < cfg.epochs:
            epoch += 1
            lr = cfg.lr_at(epoch - 1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            sampler.set_epoch(epoch)
            progress.fields(epoch=f"{epoch}/{cfg.epochs}", lr=f"{lr:.3g}")
            loss_sum = torch.zeros((), device=device, dtype=torch.float64)
            n_in_window, window_start, data_wait = 0, time.perf_counter(), 0.0
            fetch_start = time.perf_counter()
            seen: list[int] = []
            for step, batch in enumerate(loader, 1):
                data_wait += time.perf_counter() - fetch_start
                if cfg.debug_param_hash:
                    seen += batch["index"].tolist()
                inp = (batch["inp"].to(device, non_blocking=True) - inp_sub) / inp_div
                gt = (batch["gt"].to(device, non_blocking=True) - sub) / div
                coord = batch["coord"].to(device, non_blocking=True)
                cell = batch["cell"].to(device, non_blocking=True)
                with autocast():
                    pred = model(inp, coord, cell)
                loss = F.l1_loss(pred.float(), gt)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                loss_sum += loss.detach()
                n_in_window += 1
                iteration += 1
                progress.advance()
                if n_in_window == cfg.log_every or step == len(loader):
                    if info.formed:
                        dist.all_reduce(loss_sum)
                        loss_sum /= info.world_size
                    last_loss = loss_sum.item() / n_in_window
                    if not math.isfinite(last_loss) and scaler is None:
                        raise LiifError(f"training diverged: loss is {last_loss} at iteration {iteration}")
                    seconds = time.perf_counter() - window_start
                    sps = n_in_window * cfg.batch_size / seconds
                    log.write(
                        "train",
                        epoch=epoch,
                        iteration=iteration,
                        loss=last_loss,
                        lr=lr,
                        samples_per_s=round(sps, 3),
                        iters_per_s=round(n_in_window / seconds, 4),
                        data_wait_frac=round(data_wait / seconds, 4),
                    )
                    progress.fields(loss=f"{last_loss:.4f}", speed=f"{sps:.1f} samples/s")
                    loss_sum.zero_()
                    n_in_window, window_start, data_wait = 0, time.perf_counter(), 0.0
                fetch_start = time.perf_counter()

            final = epoch == cfg.epochs
            improved = False
            if cfg.val and (final or (cfg.val_every and epoch % cfg.val_every == 0)):
                t0 = time.perf_counter()
                last_val = validate(
                    net,
                    encoder,
                    norm,
                    cfg.val,
                    cfg.val_scales,
                    device,
                    protocol=cfg.val_protocol,
                    max_images=cfg.val_max_images,
                    rank=info.rank,
                    world_size=info.world_size,
                )
                mean = sum(last_val.values()) / len(last_val)
                improved = best is None or mean > best
                best = mean if improved else best
                log.write(
                    "val",
                    epoch=epoch,
                    iteration=iteration,
                    psnr={f"{s:g}": round(v, 4) for s, v in last_val.items()},
                    mean=round(mean, 4),
                    best=improved,
                    seconds=round(time.perf_counter() - t0, 2),
                )
                shown = "  ".join(f"x{s:g} {v:.3f}" for s, v in last_val.items())
                progress.print(f"epoch {epoch}: val PSNR {shown} dB" + ("  (best)" if improved else ""))
            if cfg.debug_param_hash:
                mine = (param_hash(net), hashlib.sha256(json.dumps(sorted(seen)).encode()).hexdigest(), len(seen))
                gathered = [mine] * info.world_size
                if info.formed:
                    dist.all_gather_object(gathered, mine)
                log.write(
                    "param_hash",
                    epoch=epoch,
                    iteration=iteration,
                    hashes=[g[0] for g in gathered],
                    data_hashes=[g[1] for g in gathered],
                    samples=[g[2] for g in gathered],
                )

            save_last = final or (cfg.save_every and epoch % cfg.save_every == 0)
            keep = bool(cfg.keep_every) and epoch % cfg.keep_every == 0
            if info.is_main and (save_last or keep or improved):
                train_state = {
                    "iteration": iteration,
                    "config": cfg.to_dict(),
                    "rng": _rng_state(),
                    "best_psnr": best,
                    "world_size": info.world_size,
                }
                if scaler is not None:
                    train_state["scaler"] = scaler.state_dict()
                obj = training_checkpoint(net, encoder, norm, optimizer, cfg.lr, epoch, train_state)
                names = (["last.pth"] if save_last else []) + ([f"epoch-{epoch}.pth"] if keep else [])
                names += ["best.pth"] if improved else []
                for name in names:
                    atomic_save(obj, out / name)
                log.write("checkpoint", epoch=epoch, iteration=iteration, files=names)
            if last_loss is not None:
                progress.print(f"epoch {epoch}/{cfg.epochs}: iteration {iteration}, loss {last_loss:.4f}, lr {lr:.3g}")

        if cfg.export and info.is_main:
            save_safetensors(net, encoder, norm, cfg.export, {"epoch": str(epoch)})
            log.write("export", path=str(cfg.export))
        log.write("end", epoch=epoch, iteration=iteration, loss=last_loss, best_psnr=best)
    finally:
        progress.stop()
    distributed.barrier(info)
    return TrainResult(out, epoch, iteration, last_loss, best, last_val, info.rank)


def resolve_config(overrides: dict[str, Any] | None = None, config_file: str | Path | None = None) -> TrainConfig:
    """Defaults < the resumed checkpoint's stored config < `config_file` < `overrides` (None = not given).

    Resuming an explicit checkpoint without an `out` continues in the checkpoint's own folder.
    """
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    from_file = read_toml(config_file) if config_file else {}
    given = {**from_file, **flags}
    stored: dict[str, Any] = {}
    resume = given.get("resume")
    if resume:
        if resume == "auto":
            path = Path(given["out"]) / "last.pth" if given.get("out") else None
            if path is None:
                raise UsageError("{resume} without a path needs {out}, the run directory", param=("resume", "out"))
        else:
            path = Path(resume).expanduser()
            path = path / "last.pth" if path.is_dir() else path
            if "out" not in given:
                flags["out"] = str(path.parent)
        if path.is_file():
            state = read_checkpoint(path).get("liif_train")
            if isinstance(state, dict) and isinstance(state.get("config"), dict):
                stored = stored_config(state["config"])
    return build_config(stored, from_file, flags)
