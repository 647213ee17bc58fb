"""`LoadOptions`: how a model is loaded and run, as one frozen value that every face builds once and passes down.

    opts = LoadOptions(device="cuda", precision="bf16", tile=512)
    up = load_model("edsr-baseline", opts)          # or load_model("edsr-baseline", device="cuda", ...)

Device, precision, tile, threads, decoder batch size, whether an unpinned download is allowed, offline mode:
the CLI's option block (`liif_cli.cli.options.load_options`), the server's config and the Python API all speak
this one value; nothing downstream rebuilds it from loose keywords. It says what was asked for: what the engine
learns while it runs (fp32 after a non-finite half-precision result, a smaller tile after an out-of-memory
retry) is the renderer's own state (`engine.Renderer`), never written back here. Ground floor: no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .choices import PRECISIONS
from .errors import UsageError

FIELDS = ("device", "precision", "tile", "threads", "batch_size", "allow_unverified", "offline")
"""The fields in the order the CLI's option block shows them."""


@dataclass(frozen=True)
class LoadOptions:
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps (resolved by `devices.resolve_device`)
    precision: str | None = None  # fp32, bf16, fp16, auto; None: auto (an encoding: the precision it was made in)
    tile: int | None = None  # tile core in input pixels; None: from free memory
    threads: int | None = None  # CPU threads; None: all cores
    batch_size: int | None = None  # output pixels per decoder block; None: per device and precision
    allow_unverified: bool = False  # use a registry model whose sha256 is not pinned
    offline: bool | None = None  # True: never download; None: $LIIF_OFFLINE / $HF_HUB_OFFLINE decide

    def __post_init__(self) -> None:
        device = str(self.device or "auto").strip().lower()
        object.__setattr__(self, "device", device)
        if self.precision is not None:
            precision = str(self.precision).strip().lower()
            if precision not in PRECISIONS:
                raise UsageError(
                    f"unknown {{precision}} {self.precision!r} (use {', '.join(PRECISIONS)})", param="precision"
                )
            object.__setattr__(self, "precision", precision)
        for name in ("tile", "threads", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UsageError(f"{{{name}}} must be a whole number >= 1, got {value!r}", param=name)

    def replace(self, **changes: object) -> LoadOptions:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def load_options(options: LoadOptions | None = None, /, **fields: object) -> LoadOptions:
    """`options` (default: all defaults) with `fields` given as keywords (the API's `device=`, `tile=`...)."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise TypeError(f"unknown load option(s): {', '.join(unknown)}")
    base = options or LoadOptions()
    return base.replace(**fields) if fields else base
