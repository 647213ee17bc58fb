"""`liif bench`: score models on the standard SR benchmark sets, beside the published figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .app import handle_errors, main
from .options import load_options

if TYPE_CHECKING:
    from ..load_options import LoadOptions

F = TypeVar("F", bound=Callable[..., Any])


def _written(flag: str, dest: str, what: str, dir_okay: bool = True) -> Callable[[F], F]:
    """An option naming a file the results are written to ('-' for stdout): --json, --csv, --markdown, --latex."""
    return click.option(
        flag,
        dest,
        type=click.Path(allow_dash=True, dir_okay=dir_okay),
        default=None,
        help=f"Write {what} ('-' for stdout).",
    )


@main.command("bench", short_help="Score models on standard SR benchmark sets (PSNR/SSIM).")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    type=click.Choice(["set5", "set14", "b100", "urban100", "div2k"], case_sensitive=False),
    help="Benchmark set (repeatable). div2k is the DIV2K validation set.",
)
@click.option(
    "-n",
    "--model",
    "models",
    multiple=True,
    default=("edsr-baseline",),
    show_default=True,
    help="Model name or checkpoint path (repeatable).",
)
@click.option(
    "--scales",
    default=None,
    help="Comma-separated integer scales [mmagic: 2,3,4,6,18,30; paper: 2,3,4,6,8, DIV2K 2,3,4,6,12,18,24,30].",
)
@click.option(
    "--protocol",
    type=click.Choice(["mmagic", "paper"], case_sensitive=False),
    default="mmagic",
    show_default=True,
    help="mmagic: GTmod12, PIL-bicubic LR, uint8 output, RGB PSNR/SSIM. paper: official test.py, Y-channel PSNR.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Local sets in the standard layout (<Name>/HR, <Name>/LR_bicubic/X{s}); never downloads.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images of each set.")
@_written("--json", "json_path", "results (with per-image scores) as JSON")
@_written("--csv", "csv_path", "one CSV row per model, dataset and scale")
@_written("--markdown", "markdown_path", "the models x scales tables (PSNR / SSIM per cell) as Markdown", False)
@_written("--latex", "latex_path", "the models x scales tables as LaTeX booktabs tabulars", False)
@click.option(
    "--save-images",
    type=click.Path(file_okay=False),
    default=None,
    help="Write outputs as DIR/<model>/<Set>/x<s>/<image>.png.",
)
@load_options()
@click.option("-q", "--quiet", "bench_quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a self-contained HTML report (tables, plots, crops); adds the bicubic baseline.",
)
@handle_errors
def bench_cmd(
    datasets: tuple[str, ...],
    models: tuple[str, ...],
    scales: str | None,
    protocol: str,
    data_dir: str | None,
    limit: int | None,
    json_path: str | None,
    csv_path: str | None,
    markdown_path: str | None,
    latex_path: str | None,
    save_images: str | None,
    load: LoadOptions,
    bench_quiet: bool,
    report: str | None,
) -> None:
    """Score models on standard SR benchmark sets under the mmagic or the paper protocol.

    Prints PSNR / SSIM per model and scale beside the published figures, plus throughput and wall time.
    Sets are fetched into the cache on first use unless --data-dir is given.
    """

    from rich.console import Console
    from rich.progress import TextColumn

    from ..bench import BenchPlan, run_bench
    from ..bench.html_report import check_target, write_report
    from ..bench.report import render, write_csv, write_json, write_latex, write_markdown
    from ..progress import work_progress

    if report is not None:
        check_target(report)  # before any work: a report that cannot be written fails now, not after the run
    plan = BenchPlan(
        datasets,
        models,
        protocol=protocol,
        scales=scales,  # the text as given: the plan parses and checks it
        data_dir=data_dir,
        limit=limit,
        save_images=save_images,
        load=load,
        strips=report is not None,
    )

    err = Console(stderr=True)
    progress = work_progress(TextColumn("{task.fields[item]}"), console=err, disable=bench_quiet)
    tasks: list = []

    def hook(event: str, info: dict) -> None:
        if event == "start":
            tasks.append(progress.add_task(info["description"], total=info["total"], item="", mpx=0.0))
        elif event == "advance":
            mpx = progress.tasks[-1].fields["mpx"] + info.get("out_pixels", 0) / 1e6
            progress.update(tasks[-1], advance=1, mpx=mpx, item=f"x{info['scale']} {info['image']}")
        elif event == "end":
            progress.remove_task(tasks[-1])

    with progress:
        result = run_bench(plan, progress=hook)
    if result.rank != 0:  # under torchrun/srun rank 0 prints and writes the merged result
        return
    outputs = {json_path: write_json, csv_path: write_csv, markdown_path: write_markdown, latex_path: write_latex}
    to_stdout = "-" in map(str, outputs)
    out = Console()
    if not out.is_terminal:  # a file or a pipe: tables at their full width, never cut at 80 columns
        out = Console(width=1000)
    render(result, Console(stderr=True, width=None if err.is_terminal else 1000) if to_stdout else out)
    for path, write in outputs.items():
        if path is not None:
            write(result, path)
            if str(path) != "-":
                err.print(f"wrote {path}", highlight=False, markup=False)
    if report is not None:
        write_report(result, report)
        err.print(f"wrote {report}", highlight=False, markup=False)
