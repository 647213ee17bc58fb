"""`--dry-run`: what `liif upscale` would do, without loading a model or writing a file.

Each planned output with its input, size and whether it would be written, skipped or fail, then the time and
memory forecast that `Upscaler.estimate` makes, from a model of the same architecture that is built, not loaded
(`api.planning_model`: no checkpoint is read or downloaded). Printed on stdout.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..api import Upscaler
    from ..batch import BatchOptions, Job
    from ..load_options import LoadOptions


def _size(job: Job, options: BatchOptions) -> tuple[tuple[int, int], tuple[int, int]] | str:
    """(input hw, output hw) from the header only, or why it fails."""
    from ..errors import LiifError, flag_name
    from ..imageio import header_size

    spec = job.spec or options.specs[0]
    try:
        if job.kind == "video":
            from ..video.reading import probe

            info = probe(job.input, max_pixels=options.max_pixels)
            in_hw = (info.height, info.width)
        else:
            w, h = header_size(job.input, max_pixels=options.max_pixels)
            in_hw = (h, w)
        return in_hw, spec.resolve(in_hw, options.max_out_pixels)
    except LiifError as exc:
        return exc.render(flag_name)
    except ImportError as exc:
        return str(exc)


def print_plan(inputs: list[str], options: BatchOptions, model: str, load: LoadOptions) -> None:
    """Print each planned output, then the counts; the forecasts use `api.planning_model(model, load)`."""
    from ..batch import plan_batch
    from ..errors import flag_name

    jobs = plan_batch(list(inputs), options)
    planner: Upscaler | None = None
    encoder = ""
    lines: list[str] = []
    counts = {"write": 0, "skip": 0, "fail": 0}
    for job in jobs:
        if job.error is not None:
            counts["fail"] += 1
            lines.append(f"fail   {job.input}: {job.error.render(flag_name)}")
            continue
        if job.skip is not None:
            counts["skip"] += 1
            lines.append(f"skip   {job.input}: {job.skip.render(flag_name)}")
            continue
        sized = _size(job, options)
        if isinstance(sized, str):
            counts["fail"] += 1
            lines.append(f"fail   {job.input}: {sized}")
            continue
        in_hw, out_hw = sized
        if planner is None:
            from .. import api

            planner, encoder = api.planning_model(model, load)
        region = (job.spec or options.specs[0]).region
        span = in_hw if region is None else (math.ceil(region[3]), math.ceil(region[2]))
        forecast = planner.estimate(span, out_hw)
        counts["write"] += 1
        lines.append(f"write  {job.output}  ({job.input}, {forecast})")
    for line in lines:
        click.echo(line)
    tail = f"; model {model} not loaded" + (f", estimates for its {encoder} architecture" if planner else "")
    click.echo(f"dry run: {counts['write']} to write, {counts['skip']} skipped, {counts['fail']} failing{tail}")
