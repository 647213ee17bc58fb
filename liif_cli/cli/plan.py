"""`--dry-run`: what `liif upscale` would do, without loading a model or writing a file.

Each planned output with its input, size and whether it would be written, skipped or fail, then the time and
memory forecast that `Upscaler.estimate` makes, from a model of the same architecture that is built, not loaded
(`api.planning_model`: no checkpoint is read or downloaded). Printed on stdout.
"""

from __future__ import annotations

import math

import click


def _size(job, options) -> tuple[tuple[int, int] | None, tuple[int, int] | None, str | None]:
    """(input hw, output hw, why it fails) from the header only."""
    from ..errors import LiifError
    from ..imageio import read_size

    spec = job.spec or options.spec
    try:
        if job.kind == "video":
            from ..video.reading import probe

            info = probe(job.input, max_pixels=options.max_pixels)
            in_hw = (info.height, info.width)
        else:
            in_hw = read_size(job.input, max_pixels=options.max_pixels)
        return in_hw, spec.resolve(in_hw, options.max_out_pixels), None
    except LiifError as exc:
        return None, None, str(exc)
    except ImportError as exc:
        return None, None, str(exc)


def print_plan(inputs: list[str], options, model: str, opts: dict) -> None:
    from ..batch import plan_batch

    jobs = plan_batch(list(inputs), options)
    planner = None
    lines, counts = [], {"write": 0, "skip": 0, "fail": 0}
    for job in jobs:
        if job.error is not None:
            counts["fail"] += 1
            lines.append(f"fail   {job.input}: {job.error}")
            continue
        if job.skip is not None:
            counts["skip"] += 1
            lines.append(f"skip   {job.input}: {job.skip}")
            continue
        in_hw, out_hw, why = _size(job, options)
        if why is not None:
            counts["fail"] += 1
            lines.append(f"fail   {job.input}: {why}")
            continue
        if planner is None:
            from .. import api

            planner, encoder = api.planning_model(model, **opts)
        region = (job.spec or options.spec).region
        span = in_hw if region is None else (math.ceil(region[3]), math.ceil(region[2]))
        forecast = planner.estimate(span, out_hw)
        counts["write"] += 1
        lines.append(f"write  {job.output}  ({job.input}, {forecast})")
    for line in lines:
        click.echo(line)
    tail = f"; model {model} not loaded" + (f", estimates for its {encoder} architecture" if planner else "")
    click.echo(f"dry run: {counts['write']} to write, {counts['skip']} skipped, {counts['fail']} failing{tail}")
