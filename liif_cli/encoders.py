"""What this package knows about each LIIF encoder, declared once (spandrel-style descriptors).

The registry checks `weights.toml` against these names, the training config and the CLI's choices list them,
the checkpoint loader builds, recognises and converts networks with them, and the engine sizes tiles by their
memory per pixel. Adding an encoder means adding its module under `models/` and one `EncoderSpec` here.

This module imports nothing heavy (no torch): the CLI reads it to build `--help` and shell completion.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models.liif import Encoder

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
"""The RGB mean of DIV2K that EDSR subtracts (and MMEditing's EDSR-LIIF takes off its input)."""

NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # the official code's (x - 0.5) / 0.5
    "div2k-mean": (DIV2K_RGB_MEAN, (1.0, 1.0, 1.0)),  # MMEditing EDSR: x - mean
}
"""Input normalization by name: (sub, div), the model sees (rgb - sub) / div."""

CHECKPOINT_FORMATS = ("official", "mmagic")


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    """As the official checkpoints spell it in `encoder_spec.name`, and as users type it."""
    module: str
    """`module:Class` under liif_cli.models; built with no arguments (the LIIF configuration: no upsampling)."""
    detect_prefix: str
    """A state-dict key prefix (official layout) that only this encoder has."""
    mmagic_renames: tuple[tuple[str, str], ...]
    """Regex renames from MMEditing/mmagic generator keys (prefix `generator.` removed) to the official ones."""
    receptive_radius: int
    """Input pixels that influence one latent code on each side; tiles overlap by this plus 2."""
    bytes_per_pixel: tuple[int, int]
    """Peak bytes per encoded input pixel (fp32, half precision), measured as peak RSS growth on CPU."""
    mmagic_normalization: str
    """The normalization MMEditing's release of this encoder was trained with (official releases: `half`)."""

    def build(self) -> Encoder:
        """A fresh encoder network (imports torch)."""
        module, cls = self.module.split(":")
        return getattr(importlib.import_module(f"liif_cli.models.{module}"), cls)()

    def memory_per_pixel(self, precision: str) -> int:
        fp32, half = self.bytes_per_pixel
        return fp32 if precision == "fp32" else half


ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        EncoderSpec(
            name="edsr-baseline",
            module="edsr:EDSRBaseline",
            detect_prefix="encoder.head.",
            mmagic_renames=(
                (r"^conv_first\.", "encoder.head.0."),
                (r"^body\.(\d+)\.conv1\.", r"encoder.body.\1.body.0."),
                (r"^body\.(\d+)\.conv2\.", r"encoder.body.\1.body.2."),
                (r"^conv_after_body\.", "encoder.body.16."),
            ),
            receptive_radius=34,
            bytes_per_pixel=(1400, 1000),
            mmagic_normalization="div2k-mean",
        ),
        EncoderSpec(
            name="rdn",
            module="rdn:RDN",
            detect_prefix="encoder.RDBs.",
            mmagic_renames=(
                (r"^sfe1\.", "encoder.SFENet1."),
                (r"^sfe2\.", "encoder.SFENet2."),
                (r"^rdbs\.(\d+)\.layers\.(\d+)\.conv\.", r"encoder.RDBs.\1.convs.\2.conv.0."),
                (r"^rdbs\.(\d+)\.lff\.", r"encoder.RDBs.\1.LFF."),
                (r"^gff\.", "encoder.GFF."),
            ),
            receptive_radius=131,
            bytes_per_pixel=(15500, 6000),
            mmagic_normalization="half",
        ),
    )
}

ENCODER_NAMES = tuple(ENCODERS)
NORMALIZATION_NAMES = tuple(NORMALIZATIONS)
DEFAULT_ENCODER = "edsr-baseline"
DEFAULT_NORMALIZATION = "half"


def detect_encoder(keys: Iterable[str]) -> EncoderSpec | None:
    """The encoder whose keys an official-layout state dict holds, or None."""
    keys = list(keys)
    for spec in ENCODERS.values():
        if any(k.startswith(spec.detect_prefix) for k in keys):
            return spec
    return None
