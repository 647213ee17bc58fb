"""Batches of real files, as library code: plan them (`plan`), then run them (`run`).

    jobs = plan_batch(["photos/"], BatchOptions(spec=SizeSpec(scale=2.0), recursive=True))
    results = run_batch(jobs, options, LazyModel("edsr-baseline", LoadOptions(device="cpu")))
    raise_for_failures(results)

Option values are parsed in `liif_cli.specs` (click types in `liif_cli.cli.options`); the console display
is `liif_cli.cli.report`.
"""

from ..choices import MAX_SIDE
from ..sizes import SizeSpec
from .media import VideoOptions, media_kind
from .plan import (
    ALPHA_METHODS,
    EXT_CHOICES,
    BatchOptions,
    Job,
    collect_inputs,
    output_extension,  # naming's, re-exported
    plan_batch,
)
from .results import FileResult, Reporter, record_failure
from .run import BIG_JOB_PIXELS, LazyModel, raise_for_failures, run_batch  # LazyModel: api's, re-exported

__all__ = [
    "ALPHA_METHODS",
    "BIG_JOB_PIXELS",
    "EXT_CHOICES",
    "MAX_SIDE",
    "BatchOptions",
    "FileResult",
    "Job",
    "LazyModel",
    "Reporter",
    "SizeSpec",
    "VideoOptions",
    "collect_inputs",
    "media_kind",
    "output_extension",
    "plan_batch",
    "raise_for_failures",
    "record_failure",
    "run_batch",
]
