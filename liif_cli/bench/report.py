"""Render a `BenchResult`: the models x scales grid papers print (terminal, Markdown, LaTeX), the long table beside
the published figures, a throughput table, JSON and CSV.

Every table's numbers come from `grid` and are printed by `cell_text` (PSNR to `PSNR_DIGITS`, SSIM to
`SSIM_DIGITS` places), so the terminal, the HTML report, `--markdown` and `--latex` agree with each other and
with the JSON's figures rounded the same way."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console, Group, JustifyMethod
from rich.table import Table
from rich.text import Text

from .format import DASH, DATASET_TITLES, fmt, signed, write_output
from .protocols import PROVIDED_LR_SCALES
from .results import BenchResult, Row

CSV_FIELDS = (
    "model",
    "dataset",
    "scale",
    "protocol",
    "images",
    "psnr",
    "ssim",
    "ssim_blue",
    "published_psnr",
    "delta_psnr",
    "published_ssim_rgb",
    "delta_ssim_rgb",
    "published_ssim_blue",
    "delta_ssim_blue",
    "published_source",
    "lr_source",
    "out_mpx",
    "upscale_s",
    "mpx_per_s",
    "wall_s",
)
PSNR_DIGITS = 2
SSIM_DIGITS = 4


def _cell(ours: float | None, published: float | None, delta: float | None, digits: int) -> Text:
    text = Text(fmt(ours, digits))
    if published is not None:
        diff = f" ({signed(delta, digits)})" if delta is not None else ""
        text.append(f"\n{fmt(published, digits)}{diff}", style="dim")
    return text


def scores_table(result: BenchResult) -> Table:
    """Rows model x scale, a column group per dataset; a published figure sits under ours, with the difference."""
    mm = result.protocol == "mmagic"
    table = Table(show_lines=True)
    table.add_column("model")
    table.add_column("scale", justify="right")
    for ds in result.datasets:
        name = DATASET_TITLES.get(ds, ds)
        table.add_column(f"{name}\nPSNR", justify="right")
        if mm:
            table.add_column(f"{name}\nSSIM (RGB)", justify="right")
            table.add_column(f"{name}\nSSIM 0.x (blue)", justify="right")
    index = {(r.model, r.dataset, r.scale): r for r in result.rows}
    for model in result.models:
        scales = sorted({r.scale for r in result.rows if r.model == model})
        for s in scales:
            cells: list[Any] = [model, f"x{s}"]
            for ds in result.datasets:
                r = index.get((model, ds, s))
                if r is None:
                    cells += [DASH] * (3 if mm else 1)
                    continue
                cells.append(_cell(r.psnr, r.published_psnr, r.delta_psnr, 4))
                if mm:
                    cells.append(_cell(r.ssim, r.published_ssim_rgb, r.delta_ssim_rgb, 4))
                    cells.append(_cell(r.ssim_blue, r.published_ssim_blue, r.delta_ssim_blue, 4))
            table.add_row(*cells)
    return table


Cell = tuple[float, float | None]  # (PSNR, SSIM or None)


def grid(result: BenchResult, dataset: str) -> tuple[list[str], list[int], dict[tuple[str, int], Cell]]:
    """The models, the scales and the (PSNR, SSIM) of each (model, scale) of one dataset. SSIM is the correct
    RGB mean under the mmagic protocol; the paper protocol scores PSNR only."""
    rows = [r for r in result.rows if r.dataset == dataset]
    models = [m for m in result.models if any(r.model == m for r in rows)]
    models += sorted({r.model for r in rows} - set(models))
    scales = sorted({r.scale for r in rows})
    return models, scales, {(r.model, r.scale): (r.psnr, r.ssim) for r in rows}


def cell_text(cell: Cell | None, sep: str = " / ") -> str:
    if cell is None:
        return DASH
    psnr, ssim = cell
    return fmt(psnr, PSNR_DIGITS) + ("" if ssim is None else sep + fmt(ssim, SSIM_DIGITS))


def _what(result: BenchResult) -> str:
    return "PSNR (dB) / SSIM" if result.protocol == "mmagic" else "PSNR (dB)"


def grid_tables(result: BenchResult) -> list[Table]:
    """One rich table per dataset: models by scales."""
    tables = []
    for ds in result.datasets:
        models, scales, cells = grid(result, ds)
        table = Table(title=f"{DATASET_TITLES.get(ds, ds)}: {_what(result)}", title_justify="left")
        table.add_column("model", no_wrap=True)
        for s in scales:
            table.add_column(f"x{s}", justify="right", no_wrap=True)
        for m in models:
            table.add_row(m, *(cell_text(cells.get((m, s))) for s in scales))
        tables.append(table)
    return tables


def markdown_tables(result: BenchResult) -> str:
    """GitHub-flavoured Markdown: a heading and a models x scales table per dataset."""
    out = [f"<!-- liif bench, {protocol_line(result)} -->", ""]
    for ds in result.datasets:
        models, scales, cells = grid(result, ds)
        out.append(f"**{DATASET_TITLES.get(ds, ds)}** ({_what(result)})")
        out.append("")
        out.append("| model | " + " | ".join(f"×{s}" for s in scales) + " |")
        out.append("|:--|" + "--:|" * len(scales))
        for m in models:
            name = m.replace("|", "\\|")
            out.append(f"| {name} | " + " | ".join(cell_text(cells.get((m, s))) for s in scales) + " |")
        out.append("")
    return "\n".join(out)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def latex_tables(result: BenchResult) -> str:
    """A booktabs `tabular` per dataset, models by scales (needs \\usepackage{booktabs})."""
    out = [f"% liif bench, {protocol_line(result)}", "% needs \\usepackage{booktabs}"]
    for ds in result.datasets:
        models, scales, cells = grid(result, ds)
        out.append(f"% {DATASET_TITLES.get(ds, ds)}: {_what(result)}")
        out.append("\\begin{tabular}{l" + "c" * len(scales) + "}")
        out.append("\\toprule")
        out.append(f"{_latex(DATASET_TITLES.get(ds, ds))} & " + " & ".join(f"$\\times{s}$" for s in scales) + " \\\\")
        out.append("\\midrule")
        for m in models:
            out.append(f"{_latex(m)} & " + " & ".join(_latex(cell_text(cells.get((m, s)))) for s in scales) + " \\\\")
        out.append("\\bottomrule")
        out.append("\\end{tabular}")
        out.append("")
    return "\n".join(out)


def write_markdown(result: BenchResult, path: str | Path) -> None:
    write_output(path, markdown_tables(result))


def write_latex(result: BenchResult, path: str | Path) -> None:
    write_output(path, latex_tables(result))


def throughput_table(result: BenchResult) -> Table:
    table = Table(title="throughput", title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("model", "left"),
        ("dataset", "left"),
        ("images", "right"),
        ("scales", "left"),
        ("output Mpx", "right"),
        ("upscale s", "right"),
        ("Mpx/s", "right"),
        ("wall s", "right"),
    )
    for col, just in columns:
        table.add_column(col, justify=just)
    for run in result.runs:
        table.add_row(
            run.model,
            DATASET_TITLES.get(run.dataset, run.dataset),
            str(run.images),
            ",".join(map(str, run.scales)),
            f"{run.out_mpx:.2f}",
            f"{run.upscale_s:.1f}",
            f"{run.mpx_per_s:.3f}",
            f"{run.wall_s:.1f}",
        )
    return table


def notes(result: BenchResult) -> list[str]:
    out: list[str] = []
    sources = sorted({r.published_source for r in result.rows if r.published_source})
    if sources:
        out.append(
            f"Second line in a cell: published figure (difference ours - published). Sources: {'; '.join(sources)}."
        )
    else:
        out.append("No published figure for these models under this protocol (—).")
    if result.protocol == "mmagic":
        out.append(
            "SSIM (RGB) is the correct mean over R, G, B. SSIM 0.x (blue) is the blue channel alone, the MMEditing 0.x "
            "convention (mmagic issue 1342) that the published SSIM column follows; compare published SSIM with it."
        )
    if result.protocol == "paper":
        made = sorted(
            {(r.dataset, r.scale) for r in result.rows if r.scale in PROVIDED_LR_SCALES and r.lr_source != "provided"}
        )
        for dataset, scale in made:
            out.append(
                f"{DATASET_TITLES.get(dataset, dataset)} x{scale}: no provided LR images (LR_bicubic/X{scale}) found, "
                "so the LR was made with PIL bicubic; the paper used the provided (MATLAB-bicubic) ones."
            )
    for run in result.runs:
        if run.verified == "differs":
            out.append(
                f"{DATASET_TITLES.get(run.dataset, run.dataset)} at {run.location} is not byte-identical to the "
                "reference copy: published figures may not be comparable."
            )
    engines = result.settings.get("engines") or {}
    if engines:
        used = "; ".join(f"{m}: {e['device']}, {e['precision']}" for m, e in engines.items())
        out.append(f"Engine: {used}.")
    if result.settings.get("distributed_warning"):
        out.append(f"Several processes but {result.settings['distributed_warning']}.")
    elif result.settings.get("processes", 1) > 1:
        out.append(
            f"Images split over {result.settings['processes']} processes; upscale s is the slowest one's "
            "(Mpx/s: the job's rate)."
        )
    out.append(f"Total wall time {result.wall_s:.1f} s.")
    return out


def protocol_line(result: BenchResult) -> str:
    if result.protocol == "mmagic":
        return "mmagic protocol: GTmod12 HR, PIL-bicubic LR, uint8 output, RGB PSNR / SSIM with border = scale"
    return "paper protocol: float output, PSNR on Y with shave = scale (DIV2K: RGB, shave = scale + 6)"


def render(result: BenchResult, console: Console) -> None:
    console.print(protocol_line(result), style="bold", highlight=False)
    console.print(Group(*grid_tables(result), scores_table(result), throughput_table(result)))
    for line in notes(result):
        console.print(line, style="dim", highlight=False)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(result: BenchResult, path: str | Path) -> None:
    write_output(path, json.dumps(_clean(result.to_dict()), indent=2) + "\n")


def csv_rows(rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        d = r.to_dict(per_image=False)
        out.append({k: ("" if d.get(k) is None else d.get(k)) for k in CSV_FIELDS})
    return out


def write_csv(result: BenchResult, path: str | Path) -> None:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(result.rows))
    write_output(path, buf.getvalue())
