"""What a benchmark run is asked to do: `BenchPlan`, one frozen value checked once, that `run_bench` takes whole.

    plan = BenchPlan(["set5"], ["edsr-baseline"], protocol="paper", scales=[2, 4], data_dir="~/datasets")
    result = run_bench(plan)

Every face builds it once from what its user gave (the CLI from its flags) and passes it down; nothing below
rebuilds it from loose keywords. A bad value is a `UsageError` naming its parameter (`param="limit"`), which
each face names its own way (the CLI as `--limit`, see `liif_cli.errors`). The parameter of a per-item value is
the item's name, as the repeatable options spell it: `dataset`, `model`. What the file system says (a missing
set, a save folder that is a file) is checked by the runner before any model runs, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..load_options import LoadOptions
from .bicubic import NAME as BICUBIC
from .bicubic import is_bicubic
from .datasets import DATASETS
from .protocols import PROTOCOLS, default_scales


def parse_scales(text: str | Sequence[int] | None) -> list[int] | None:
    """ "2,3,4" (or a sequence) -> [2, 3, 4]; integers >= 1 only (crop borders and provided LR are per integer
    scale), repeats dropped; None stays None (the protocol's defaults)."""
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
            raise UsageError(f"{{scales}}: {item!r} is not a number", param="scales") from None
        if not value.is_integer() or value < 1:
            raise UsageError(f"{{scales}}: {item!r} is not an integer scale >= 1", param="scales")
        if int(value) not in scales:
            scales.append(int(value))
    if not scales:
        raise UsageError("{scales}: no scale given", param="scales")
    return scales


@dataclass(frozen=True)
class BenchPlan:
    """Every model on every dataset at every scale under one protocol.

    datasets: set keys (`set5`, `set14`, `b100`, `urban100`, `div2k`; any case, repeats dropped). models:
    registry names, checkpoint paths or `bicubic` (the Pillow-bicubic baseline), in run order. protocol:
    "mmagic" or "paper". scales: integer scales >= 1, or None for the protocol's defaults per dataset (also
    "2,3,4"). data_dir: a local copy in the standard layout (never downloads); None fetches into the cache.
    limit: the first N images (sorted by name) of each set. save_images: write each uint8 output to
    `DIR/<model>/<dataset>/x<s>/<image>.png`. load: how models are loaded and run (precision fp32, the
    reference math, unless given); its `offline` applies to the datasets too. strips: collect the comparison
    crops the HTML report shows (`BenchResult.strips`; small PNG crops only), which puts bicubic first among
    the models when it is not there.
    """

    datasets: Sequence[str]
    models: Sequence[str | Path] = ("edsr-baseline",)
    protocol: str = "mmagic"
    scales: Sequence[int] | str | None = None
    data_dir: Path | str | None = None
    limit: int | None = None
    save_images: Path | str | None = None
    load: LoadOptions = field(default_factory=LoadOptions)
    strips: bool = False

    def __post_init__(self) -> None:
        keys = tuple(dict.fromkeys(str(d).strip().lower() for d in _items(self.datasets)))
        if not keys:
            raise UsageError("give at least one {dataset}", param="dataset")
        for key in keys:
            if key not in DATASETS:
                raise UsageError(
                    f"unknown {{dataset}} {key!r} (expected one of {', '.join(DATASETS)})", param="dataset"
                )
        models = tuple(str(m) for m in _items(self.models))
        if not models:
            raise UsageError("give at least one {model}", param="model")
        if self.strips and not any(is_bicubic(m) for m in models):
            models = (BICUBIC, *models)
        protocol = str(self.protocol).strip().lower()
        if protocol not in PROTOCOLS:
            raise UsageError(
                f"unknown {{protocol}} {self.protocol!r} (expected one of {', '.join(PROTOCOLS)})", param="protocol"
            )
        scales = parse_scales(self.scales)
        limit = self.limit
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise UsageError(f"{{limit}} must be a whole number >= 1, got {limit!r}", param="limit")
        if not isinstance(self.load, LoadOptions):
            raise TypeError(f"load must be a LoadOptions, got {type(self.load).__name__}")
        set_ = object.__setattr__  # frozen: normalised once, here
        set_(self, "datasets", keys)
        set_(self, "models", models)
        set_(self, "protocol", protocol)
        set_(self, "scales", None if scales is None else tuple(scales))
        set_(self, "data_dir", Path(self.data_dir) if self.data_dir else None)
        set_(self, "save_images", Path(self.save_images) if self.save_images else None)
        set_(self, "strips", bool(self.strips))

    def scales_for(self, dataset: str) -> tuple[int, ...]:
        """The scales run on `dataset`: the plan's, else the protocol's defaults for it."""
        if self.scales is None:
            return default_scales(self.protocol, dataset)
        return tuple(int(s) for s in self.scales)


def _items(value: Sequence[str | Path] | str | Path) -> Sequence[str | Path]:
    """One name or several: a lone string is one item, not its letters."""
    return (value,) if isinstance(value, str | Path) else value
