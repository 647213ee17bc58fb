"""How bench figures are written: numbers, signed differences, dataset titles, and text to a file or stdout.

Public because two reports use them: the console/JSON/CSV one (`report`) and the HTML one (`html_report`).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import OutputError

DASH = "—"
DATASET_TITLES = {"set5": "Set5", "set14": "Set14", "b100": "B100", "urban100": "Urban100", "div2k": "DIV2K"}


def fmt(x: float | None, digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def signed(x: float, digits: int) -> str:
    text = f"{x:+.{digits}f}"
    return "±" + text[1:] if float(text) == 0 else text


def write_output(path: str | Path, text: str) -> None:
    if str(path) == "-":
        import sys

        sys.stdout.write(text)
        return
    from ..atomic import write_text

    path = Path(path)
    try:
        write_text(path, text)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc})") from exc
