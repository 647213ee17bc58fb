"""What a benchmark run returns: per-image scores, one `Row` per model, dataset and scale, per-dataset runs
and the whole `BenchResult` (with the comparison strips, when the plan asked for them).

The bottom of `liif_cli.bench`: the runner fills these, the console/JSON/CSV report (`report`) and the HTML
report (`html_report`) read them; none of them imports the others to know what a result is. A result holds
everything its reports need, so a report is drawn from it alone: `write_report(run_bench(plan), "r.html")`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .strips import Strip


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float | None = None
    ssim_blue: float | None = None
    lr_wh: tuple[int, int] = (0, 0)
    out_wh: tuple[int, int] = (0, 0)
    lr_source: str = ""


@dataclass
class Row:
    model: str
    dataset: str
    scale: int
    protocol: str
    images: int
    psnr: float
    ssim: float | None
    ssim_blue: float | None
    out_mpx: float
    upscale_s: float
    wall_s: float
    published_psnr: float | None = None
    published_ssim_blue: float | None = None
    published_ssim_rgb: float | None = None
    published_source: str | None = None
    per_image: list[ImageScore] = field(default_factory=list)

    @property
    def lr_source(self) -> str:
        """ "provided" (the set's own LR images), "bicubic" (made here) or "mixed"."""
        kinds = {x.lr_source for x in self.per_image}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def mpx_per_s(self) -> float:
        return self.out_mpx / self.upscale_s if self.upscale_s > 0 else math.nan

    @property
    def delta_psnr(self) -> float | None:
        return None if self.published_psnr is None else self.psnr - self.published_psnr

    @property
    def delta_ssim_blue(self) -> float | None:
        """Our blue-only SSIM minus the published (MMEditing 0.x) figure."""
        return _delta(self.ssim_blue, self.published_ssim_blue)

    @property
    def delta_ssim_rgb(self) -> float | None:
        return _delta(self.ssim, self.published_ssim_rgb)

    def to_dict(self, per_image: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d["mpx_per_s"] = self.mpx_per_s
        d["delta_psnr"] = self.delta_psnr
        d["delta_ssim_blue"] = self.delta_ssim_blue
        d["delta_ssim_rgb"] = self.delta_ssim_rgb
        d["lr_source"] = self.lr_source
        if not per_image:
            d.pop("per_image")
        return d


@dataclass
class DatasetRun:
    """Per (model, dataset) totals: the throughput and wall time lines of the report."""

    model: str
    dataset: str
    images: int
    scales: list[int]
    out_mpx: float
    upscale_s: float
    wall_s: float
    location: str
    verified: str | None  # "match" / "differs" against the reference sha256, None where none is known

    @property
    def mpx_per_s(self) -> float:
        return self.out_mpx / self.upscale_s if self.upscale_s > 0 else math.nan


@dataclass
class BenchResult:
    protocol: str
    models: list[str]
    datasets: list[str]
    rows: list[Row]
    runs: list[DatasetRun]
    wall_s: float
    settings: dict[str, Any] = field(default_factory=dict)
    rank: int = 0  # under a launcher every rank holds the merged result; only rank 0 should print or write it
    strips: list[Strip] = field(default_factory=list)  # comparison crops (`BenchPlan.strips`; rank 0's); not in JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "models": self.models,
            "datasets": self.datasets,
            "settings": self.settings,
            "wall_s": self.wall_s,
            "rows": [r.to_dict() for r in self.rows],
            "runs": [{**asdict(r), "mpx_per_s": r.mpx_per_s} for r in self.runs],
        }


def _delta(ours: float | None, published: float | None) -> float | None:
    return None if ours is None or published is None else ours - published
