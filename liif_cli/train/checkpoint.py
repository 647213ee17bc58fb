"""Training checkpoints: the official layout plus what resuming needs, written atomically; safetensors export.

A training checkpoint is an official (yinboc) checkpoint, so `liif upscale --model`, `load_checkpoint` and
the official `test.py` / `demo.py` read it unchanged:

    {'model': {'name': 'liif', 'args': <spec>, 'sd': <state dict>},
     'optimizer': {'name': 'adam', 'args': {'lr': ...}, 'sd': <Adam state, official parameter numbering>},
     'epoch': <finished epochs>,
     'data_norm': {'inp': {'sub': [...], 'div': [...]}, 'gt': {'sub': [...], 'div': [...]}},
     'liif_train': {'version': 1, 'iteration': ..., 'config': {...}, 'rng': {...}, 'scaler': ..., ...}}

The official code numbers the Adam state over all of `model.parameters()`, which for EDSR-baseline includes
the four unused MeanShift tensors (ours are buffers): the state is renumbered on save and back on load, so
the official `train_liif.py --resume` path can also continue our runs. `data_norm` (named as in the
official training configs) records the normalization the weights expect, which matters when fine-tuning an
mmagic EDSR (x - mean); the official format has no other place for it. Everything stored loads with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_open, atomic_path
from ..errors import ModelError, OutputError, first_line
from ..models import LoadedModel, Normalization, load_checkpoint, model_spec
from ..models.checkpoint import CheckpointError

FORMAT_VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it: readers never see half a file."""
    try:
        with atomic_open(path, "wb") as fh:
            torch.save(obj, fh)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or first_line(exc)}") from None
        raise


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a loadable weights-only checkpoint ({str(exc).strip()[:200]})") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: expected a dict checkpoint")
    return obj


def data_norm(norm: Normalization) -> dict[str, dict[str, list[float]]]:
    entry = {"sub": list(norm.sub), "div": list(norm.div)}
    return {"inp": dict(entry), "gt": dict(entry)}


def normalization_from_name(name: str) -> Normalization:
    try:
        return Normalization.named(name)
    except CheckpointError as exc:
        raise ModelError(str(exc)) from None


def load_model(path: str | Path, normalization: str | None = None) -> LoadedModel:
    """`load_checkpoint`, honouring the `data_norm` our training checkpoints record (an explicit
    `normalization` still wins). Also reads our .safetensors exports."""
    return load_checkpoint(path, normalization=normalization)  # a CheckpointError is a ModelError


# --- optimizer state in the official numbering -----------------------------------------------------------


def _official_index(net: nn.Module) -> list[int]:
    """For each of our parameters (in `parameters()` order), its index in the official numbering (all of
    the state dict's tensors, which in the official modules are all parameters)."""
    keys = list(net.state_dict().keys())
    position = {k: i for i, k in enumerate(keys)}
    return [position[name] for name, _ in net.named_parameters()]


def optimizer_to_official(net: nn.Module, sd: dict[str, Any]) -> dict[str, Any]:
    index = _official_index(net)
    total = len(net.state_dict())
    if len(sd["param_groups"]) != 1:
        raise ValueError("expected a single parameter group")
    state = {index[i]: value for i, value in sd["state"].items()}
    group = {**sd["param_groups"][0], "params": list(range(total))}
    return {"state": state, "param_groups": [group]}


def optimizer_from_official(net: nn.Module, sd: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `optimizer_to_official`; a state dict already in our numbering passes through."""
    index = _official_index(net)
    n_ours = len(index)
    params = sd["param_groups"][0]["params"]
    if len(sd["param_groups"]) == 1 and len(params) == n_ours:
        return sd
    if len(sd["param_groups"]) != 1 or len(params) != len(net.state_dict()):
        raise ModelError("the checkpoint's optimizer state does not match this model")
    back = {official: ours for ours, official in enumerate(index)}
    state = {back[k]: v for k, v in sd["state"].items() if k in back}
    group = {**sd["param_groups"][0], "params": list(range(n_ours))}
    return {"state": state, "param_groups": [group]}


def training_checkpoint(
    net: nn.Module,
    encoder: str,
    normalization: Normalization,
    optimizer: torch.optim.Optimizer,
    base_lr: float,
    epoch: int,
    train_state: dict[str, Any],
) -> dict[str, Any]:
    sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    opt_sd = optimizer_to_official(net, optimizer.state_dict())
    return {
        "model": {"name": "liif", "args": model_spec(encoder), "sd": sd},
        "optimizer": {"name": "adam", "args": {"lr": base_lr}, "sd": _to_cpu(opt_sd)},
        "epoch": epoch,
        "data_norm": data_norm(normalization),
        "liif_train": {"version": FORMAT_VERSION, **train_state},
    }


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


# --- safetensors -----------------------------------------------------------------------------------------


def save_safetensors(
    net: nn.Module, encoder: str, normalization: Normalization, path: str | Path, extra: dict[str, str] | None = None
) -> None:
    """Weights only (official key names), with the encoder and normalization in the header metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {
        "format": "liif",
        "encoder": encoder,
        "model_spec": json.dumps(model_spec(encoder)),
        "normalization": json.dumps({"sub": list(normalization.sub), "div": list(normalization.div)}),
        **(extra or {}),
    }
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or first_line(exc)}") from None


def export_safetensors(src: str | Path, out: str | Path, normalization: str | None = None) -> LoadedModel:
    """Any checkpoint we can load (official, mmagic, ours) -> weights-only .safetensors for sharing."""
    loaded = load_model(src, normalization=normalization)
    save_safetensors(loaded.net, loaded.encoder, loaded.normalization, out, {"source": Path(src).name})
    return loaded
