"""`liif train`: train or fine-tune LIIF on one machine or many (official recipe by default).

    from liif_cli.train import TrainConfig, train
    result = train(TrainConfig(data="DIV2K_train_HR", val="Set5", out="runs/edsr"))

Modules: `config` (TrainConfig, TOML), `data` (Dataset, DataLoader, validation pairs), `loop` (the loop,
DDP, logging), `checkpoint` (official-format checkpoints, resume state, safetensors), `validate` (PSNR).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as the type checker sees them (`X as X`: re-exported); at run time `__getattr__`
    from ..models.checkpoint import load_safetensors as load_safetensors
    from .checkpoint import export_safetensors as export_safetensors
    from .checkpoint import load_model as load_model
    from .checkpoint import save_safetensors as save_safetensors
    from .config import TrainConfig as TrainConfig
    from .config import build_config as build_config
    from .config import read_toml as read_toml
    from .data import SRTrainDataset as SRTrainDataset
    from .data import make_loader as make_loader
    from .loop import TrainResult as TrainResult
    from .loop import read_log as read_log
    from .loop import resolve_config as resolve_config
    from .loop import train as train

# Where each public name lives, imported on first use so that `liif train --help` (which reads the defaults
# from `config`) does not import torch. The validation pass is `liif_cli.train.validate.validate`.
_EXPORTS = {
    "SRTrainDataset": ".data",
    "TrainConfig": ".config",
    "TrainResult": ".loop",
    "build_config": ".config",
    "export_safetensors": ".checkpoint",
    "load_model": ".checkpoint",
    "load_safetensors": "..models.checkpoint",
    "make_loader": ".data",
    "read_log": ".loop",
    "read_toml": ".config",
    "resolve_config": ".loop",
    "save_safetensors": ".checkpoint",
    "train": ".loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # any of the names above
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
