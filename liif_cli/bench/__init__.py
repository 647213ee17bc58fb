"""`liif bench`: benchmark sets, evaluation protocols, published figures and the runner.

from liif_cli.bench import BenchPlan, run_bench
result = run_bench(BenchPlan(["set5"], ["edsr-baseline"], protocol="paper", data_dir="/path/to/datasets"))
for row in result.rows:
    print(row.model, row.dataset, row.scale, row.psnr)

The HTML report (needs matplotlib) is drawn from the result: `BenchPlan(..., strips=True)` collects its
comparison crops, `liif_cli.bench.html_report.write_report(result, "r.html")` writes it.
"""

from .datasets import DATASETS, Dataset, DatasetSpec, cache_root, fetch, open_dataset, unpack
from .plan import BenchPlan, parse_scales
from .protocols import PROTOCOLS, MmagicProtocol, PaperProtocol, default_scales, get_protocol
from .published import published_figure, source_model
from .results import BenchResult, DatasetRun, ImageScore, Row
from .runner import run_bench

__all__ = [
    "DATASETS",
    "PROTOCOLS",
    "BenchPlan",
    "BenchResult",
    "Dataset",
    "DatasetRun",
    "DatasetSpec",
    "ImageScore",
    "MmagicProtocol",
    "PaperProtocol",
    "Row",
    "cache_root",
    "default_scales",
    "fetch",
    "get_protocol",
    "open_dataset",
    "parse_scales",
    "published_figure",
    "run_bench",
    "source_model",
    "unpack",
]
