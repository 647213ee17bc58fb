"""`liif train`: train or fine-tune LIIF on one machine or many (official recipe by default).

    from liif_cli.train import TrainConfig, train
    result = train(TrainConfig(data="DIV2K_train_HR", val="Set5", out="runs/edsr"))

Modules: `config` (TrainConfig, TOML), `data` (Dataset, DataLoader, validation pairs), `loop` (the loop,
DDP, logging), `checkpoint` (official-format checkpoints, resume state, safetensors), `validate` (PSNR).
"""

from ..models.checkpoint import load_safetensors
from .checkpoint import export_safetensors, load_model, save_safetensors
from .config import TrainConfig, build_config, read_toml
from .data import SRTrainDataset, make_loader
from .loop import TrainResult, read_log, resolve_config, train
from .validate import validate

__all__ = [
    "SRTrainDataset",
    "TrainConfig",
    "TrainResult",
    "build_config",
    "export_safetensors",
    "load_model",
    "load_safetensors",
    "make_loader",
    "read_log",
    "read_toml",
    "resolve_config",
    "save_safetensors",
    "train",
    "validate",
]
