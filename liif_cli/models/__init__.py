"""The LIIF networks and their checkpoints. `liif.LIIF.query_rgb` is the official math (the oracle)."""

from .checkpoint import (
    CheckpointError,
    LoadedModel,
    Normalization,
    build_liif,
    load_checkpoint,
    mmagic_to_official,
    model_spec,
    save_official,
)
from .liif import LIIF, make_cell, make_coord, reference_upscale

__all__ = [
    "LIIF",
    "CheckpointError",
    "LoadedModel",
    "Normalization",
    "build_liif",
    "load_checkpoint",
    "make_cell",
    "make_coord",
    "mmagic_to_official",
    "model_spec",
    "reference_upscale",
    "save_official",
]
