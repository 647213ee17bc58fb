"""`liif bench --report FILE.html`: the run as one self-contained HTML page (tables, plots, comparison strips).

Drawn from a `BenchResult` alone, after the run: `write_report(run_bench(BenchPlan(..., strips=True)), path)`;
the runner knows nothing of it. The command line calls `check_target` before the run, so that a bad target
fails before any work, and `write_report` after it.

One file that opens from disk anywhere: no network, no relative paths. Plots are matplotlib SVGs and crops are
PNGs, both inlined as `data:` URIs; the style sheet is inline. Sections:

- results per dataset: ours, the published figure, the official code's figure (yinboc/liif run on this checkpoint), the
  differences, per model, protocol and precision, with time per image and throughput;
- PSNR (and, under the mmagic protocol, SSIM) against scale, one line per model (bicubic included), the
  training range x1-x4 shaded: the curve the LIIF paper argues with;
- per image and scale, the comparison strip from `strips.py`, each panel with its PSNR, enlarged with
  `image-rendering: pixelated` so the pixels stay visible;
- the run's settings: versions, devices, precisions, protocol, scales, timings.

matplotlib is imported here only, lazily, and drawn through its SVG canvas on a bare `Figure`: no pyplot, no
global backend switch, and rc settings only inside `rc_context`, so nothing leaks into the caller's process.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import OutputError, UsageError
from . import published as pub
from .bicubic import NAME as BICUBIC
from .format import DATASET_TITLES, fmt, signed, write_output
from .report import cell_text, grid, notes, protocol_line
from .results import BenchResult, Row
from .strips import Strip

ZOOM = 3
"""Each crop pixel is shown as ZOOM x ZOOM screen pixels."""
TRAINING_RANGE = (1, 4)
"""LIIF is trained on scales drawn from U(1, 4): in-distribution inside, out-of-distribution beyond."""

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; } td.src { white-space: normal; }
.wide { overflow-x: auto; }
.pos { color: #1a7f37; } .neg { color: #b42318; } .dim { color: #777; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; } .plots img { max-width: 100%; }
.image { display: flex; flex-wrap: wrap; gap: 0 2.5em; } .strip { margin: 0 0 1.5em; } .panels { display: flex; flex-wrap: wrap; gap: 10px; }
.panel { margin: 0; text-align: center; } .panel figcaption { font-size: 12px; }
img.crop { image-rendering: pixelated; display: block; border: 1px solid #999; }
ul.notes { color: #555; }
"""


def check_target(path: str | Path) -> None:
    """Fail before any model runs if the report cannot be a file at `path` or cannot be drawn (the errors name
    the parameter `report`)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("{report} draws its plots with matplotlib: pip install 'liif-cli[report]'", param="report")
    if str(path) == "-":
        raise UsageError("{report} needs a file name (the report is HTML, not for stdout)", param="report")
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{{report}} {p}: is a folder", param="report")
    if p.parent.exists() and not p.parent.is_dir():
        raise OutputError(f"{{report}} {p}: {p.parent} is not a folder", param="report")


def write_report(result: BenchResult, path: str | Path) -> None:
    """Write the report of `result` atomically (temp file beside it, then rename), after `check_target`.

    The comparison crops are `result.strips`: a run collects them when its plan says `strips=True`."""
    check_target(path)
    write_output(path, build_html(result))


def build_html(result: BenchResult) -> str:
    e = html.escape
    title = f"liif bench: {', '.join(_title(d) for d in result.datasets)} ({result.protocol} protocol)"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{e(protocol_line(result))}. Models: {e(', '.join(result.models))}.</p>",
        '<h2 id="results">Results</h2>',
    ]
    parts.append(
        "<p>As papers print them: models by scales, PSNR / SSIM per cell (the same as the terminal's and the "
        "Markdown and LaTeX tables).</p>"
    )
    for ds in result.datasets:
        parts.append(_grid_html(result, ds))
    for ds in result.datasets:
        parts.append(f"<h3>{e(_title(ds))}</h3>")
        parts.append(_results_table(result, [r for r in result.rows if r.dataset == ds]))
    parts.append('<ul class="notes">' + "".join(f"<li>{e(line)}</li>" for line in _notes(result)) + "</ul>")
    parts.append('<h2 id="plots">Quality against scale</h2>')
    parts.append(
        f"<p>Shaded: the training range x{TRAINING_RANGE[0]}&ndash;x{TRAINING_RANGE[1]} (in-distribution); "
        "beyond it the scales are out-of-distribution.</p>"
    )
    for ds in result.datasets:
        rows = [r for r in result.rows if r.dataset == ds]
        imgs = [_svg_img(_plot(rows, "psnr", "PSNR (dB)", f"{_title(ds)}: PSNR"), f"{_title(ds)} PSNR against scale")]
        if any(r.ssim is not None for r in rows):
            imgs.append(
                _svg_img(_plot(rows, "ssim", "SSIM (RGB)", f"{_title(ds)}: SSIM"), f"{_title(ds)} SSIM against scale")
            )
        parts.append(f'<div class="plots">{"".join(imgs)}</div>')
    parts.append('<h2 id="strips">Comparison crops</h2>')
    parts.append(
        "<p>Per image and scale: the same crop from bicubic, each model and the ground truth, where the first "
        f"model gains most over bicubic; shown at {ZOOM}x, pixelated. Under each panel: the crop's PSNR and, in "
        "brackets, the whole image's score.</p>"
    )
    if not result.strips:
        parts.append("<p>This run collected no comparison crops (its plan did not ask for strips).</p>")
    by_image: dict[tuple[str, str], list[Strip]] = {}
    order = {d: i for i, d in enumerate(result.datasets)}
    for s in sorted(result.strips, key=lambda s: (order.get(s.dataset, len(order)), s.dataset, s.image, s.scale)):
        by_image.setdefault((s.dataset, s.image), []).append(s)
    for (ds, image), group in by_image.items():
        parts.append(f"<h3>{e(_title(ds))} / {e(image)}</h3>")
        parts.append('<div class="image">' + "".join(_strip_html(s, result) for s in group) + "</div>")
    parts.append('<h2 id="settings">Run settings</h2>')
    parts.append(_settings(result))
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --- results -------------------------------------------------------------------------------------------------


def _title(dataset: str) -> str:
    return DATASET_TITLES.get(dataset, dataset)


def _notes(result: BenchResult) -> list[str]:
    """The console report's notes, once each, less the one that explains its two-line cells (columns here)."""
    skip = ("Second line in a cell", "No published figure")
    return [n for n in dict.fromkeys(notes(result)) if not n.startswith(skip)]


def _delta_cell(delta: float | None, digits: int = 4) -> str:
    if delta is None or math.isnan(delta):
        return "<td>&mdash;</td>"
    text = signed(delta, digits)
    shown = 0.0 if text.startswith("±") else float(text)  # coloured by what is printed: ±0.0000 is no loss
    cls = "pos" if shown > 0 else "neg" if shown < 0 else ""
    return f'<td class="{cls}">{html.escape(text)}</td>'


def _num(x: float | None, digits: int | None = 4) -> str:
    """A number cell; digits=None prints a published figure as printed (33.66, not 33.6600)."""
    text = fmt(x, 4) if digits is None and x is None else f"{x:.6g}" if digits is None else fmt(x, digits)
    return f"<td>{html.escape(text)}</td>"


def _grid_html(result: BenchResult, dataset: str) -> str:
    models, scales, cells = grid(result, dataset)
    out = [f'<div class="wide"><table><caption>{html.escape(_title(dataset))}</caption><tr><th class="l">model</th>']
    out[0] += "".join(f"<th>x{s}</th>" for s in scales) + "</tr>"
    for m in models:
        row = "".join(f"<td>{html.escape(cell_text(cells.get((m, s))))}</td>" for s in scales)
        out.append(f'<tr><td class="l">{html.escape(m)}</td>{row}</tr>')
    out.append("</table></div>")
    return "\n".join(out)


def _results_table(result: BenchResult, rows: list[Row]) -> str:
    mm = result.protocol == "mmagic"
    engines = result.settings.get("engines") or {}
    head = [
        "model",
        "protocol",
        "precision",
        "scale",
        "images",
        "PSNR",
        "published",
        "&Delta;",
        "official code",
        "&Delta;",
    ]
    if mm:
        head += ["SSIM (RGB)", "SSIM 0.x (blue)", "published SSIM", "&Delta; (blue)"]
    head += ["s / image", "Mpx/s", "source of the reference"]
    left = {0, 1, 2, len(head) - 1}
    out = ['<div class="wide"><table><tr>']
    out[0] += "".join(f'<th class="{"l" if i in left else ""}">{h}</th>' for i, h in enumerate(head))
    for r in rows:
        official = r.published_source == pub.OFFICIAL_CODE
        cells = [
            f'<td class="l">{html.escape(r.model)}</td>',
            f'<td class="l">{html.escape(r.protocol)}</td>',
            f'<td class="l">{html.escape(str(engines.get(r.model, {}).get("precision", "")))}</td>',
            f"<td>x{r.scale}</td>",
            f"<td>{r.images}</td>",
            _num(r.psnr),
        ]
        pub_psnr, off_psnr = (None, r.published_psnr) if official else (r.published_psnr, None)
        cells += [_num(pub_psnr, None)]
        cells += [_delta_cell(None if pub_psnr is None else r.psnr - pub_psnr)]
        cells += [_num(off_psnr), _delta_cell(None if off_psnr is None else r.psnr - off_psnr)]
        if mm:
            cells += [
                _num(r.ssim),
                _num(r.ssim_blue),
                _num(r.published_ssim_blue, None),
                _delta_cell(r.delta_ssim_blue),
            ]
        per_image = r.upscale_s / r.images if r.images else math.nan
        cells += [_num(per_image, 3), _num(r.mpx_per_s, 3)]
        cells += [f'<td class="l dim src">{html.escape(r.published_source or "—")}</td>']
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return "\n".join(out)


# --- plots ---------------------------------------------------------------------------------------------------


def _plot(rows: list[Row], metric: str, ylabel: str, title: str) -> bytes:
    """One line per model of `metric` against scale, as SVG bytes; the training range shaded."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    models = list(dict.fromkeys(r.model for r in rows))
    scales = sorted({r.scale for r in rows})
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "liif-bench"}):
        fig = Figure(figsize=(6.4, 3.8), layout="constrained")
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        ax.axvspan(TRAINING_RANGE[0], TRAINING_RANGE[1], color="#4c78a8", alpha=0.12, label="training range x1-x4")
        for m in models:
            pts = sorted((r.scale, getattr(r, metric)) for r in rows if r.model == m and getattr(r, metric) is not None)
            if not pts:
                continue
            style: dict[str, Any] = {"color": "#666", "linestyle": "--"} if m == BICUBIC else {}  # Line2D's
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m, **style)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(scales))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"x{s}" for s in scales])
        ax.set_xlim(0.9, max(scales) * 1.15)
        ax.set_xlabel("scale")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _svg_img(svg: bytes, alt: str) -> str:
    data = base64.b64encode(svg).decode("ascii")
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}">'


# --- strips --------------------------------------------------------------------------------------------------


def _strip_html(strip: Strip, result: BenchResult) -> str:
    e = html.escape
    top, left, side = strip.box
    panels = strip.ordered(result.models)
    bic = strip.panels.get(BICUBIC)
    lead = strip.panels.get(strip.lead) if strip.lead else None
    if lead is not None and bic is not None and lead.crop_psnr is not None and bic.crop_psnr is not None:
        why = f"where {strip.lead} gains most over bicubic ({signed(lead.crop_psnr - bic.crop_psnr, 2)} dB on the crop)"
    else:
        why = "where bicubic does worst"
    head = f"{_title(strip.dataset)} / {strip.image} x{strip.scale}"
    sub = f"{side}x{side} px at (x {left}, y {top}), {why}"
    figs = []
    for p in panels:
        score = "" if p.crop_psnr is None else f"{fmt(p.crop_psnr, 2)} dB"
        if p.image_psnr is not None:
            score += f" ({fmt(p.image_psnr, 2)})"
        src = "data:image/png;base64," + base64.b64encode(p.png).decode("ascii")
        figs.append(
            f'<figure class="panel"><img class="crop" alt="{e(head)} {e(p.label)}" width="{side * ZOOM}" '
            f'height="{side * ZOOM}" src="{src}"><figcaption>{e(p.label)}<br>{e(score)}</figcaption></figure>'
        )
    return (
        f'<section class="strip"><h4>x{strip.scale}</h4><div class="dim">{e(sub)}</div>'
        f'<div class="panels">{"".join(figs)}</div></section>'
    )


# --- settings ------------------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _settings(result: BenchResult) -> str:
    e = html.escape
    st = result.settings
    from ..version import version

    versions = {
        "liif": version(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "matplotlib": _version("matplotlib"),
    }
    items = [
        ("protocol", protocol_line(result)),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("platform", f"{platform.system()} {platform.machine()}"),
        ("device (requested)", str(st.get("device"))),
        ("precision (requested)", str(st.get("precision"))),
        ("threads", str(st.get("threads") or "all cores")),
        ("scales", "; ".join(f"{_title(k)} {','.join(map(str, v))}" for k, v in (st.get("scales") or {}).items())),
        ("image limit", str(st.get("limit") or "none")),
        ("data", str(st.get("data_dir") or "liif cache")),
        ("total wall time", f"{result.wall_s:.1f} s"),
        ("written", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    out = ["<table>"] + [f'<tr><th class="l">{e(k)}</th><td class="l">{e(v)}</td></tr>' for k, v in items]
    out.append("</table>")
    engines = st.get("engines") or {}
    head = ["model", "device", "precision", "dataset", "images", "output Mpx", "upscale s", "s / image", "Mpx/s"]
    out.append("<table><tr>" + "".join(f'<th class="{"l" if i < 4 else ""}">{h}</th>' for i, h in enumerate(head)))
    for run in result.runs:
        eng = engines.get(run.model, {})
        n = run.images * len(run.scales)
        cells = [run.model, eng.get("device", ""), eng.get("precision", ""), _title(run.dataset)]
        row = "".join(f'<td class="l">{e(str(c))}</td>' for c in cells)
        row += f"<td>{run.images} x {len(run.scales)} scales</td>" + _num(run.out_mpx, 2) + _num(run.upscale_s, 2)
        row += _num(run.upscale_s / n if n else math.nan, 3) + _num(run.mpx_per_s, 3)
        out.append(f"<tr>{row}</tr>")
    out.append("</table>")
    return "\n".join(out)
