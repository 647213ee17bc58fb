"""Memory: peak resident memory of `liif upscale` at two sizes, and the size of an encoding with and without alpha.

    python benchmarks/memory.py --input 160x120 --scale 4

1. Three fresh processes run `liif upscale` as a user does (default tile and precision unless given): a 16x16
   input (the cost of the interpreter, torch and the model: the baseline), the `--input` image, and an image
   with 4x its width and height (the output grows 16x). Each process's peak RSS comes from the kernel
   (`os.wait4`), not from sampling. Bounded memory means the large/small ratio stays near 1 while the output
   grows 16x; the last column is what the upscale added over the baseline process.
2. `Upscaler.encode` of one RGB and one RGBA image of the `--input` size (alpha through the model, the
   default): the encoding's bytes in memory and as a `.liif` file, and the RGBA/RGB ratio.

The images are synthetic (`speed.synthetic_image`, alpha a soft disc), so the script needs no files.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import synthetic_image  # noqa: E402

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "edsr-baseline-liif.pth"


def _png(path: Path, w: int, h: int, alpha: bool = False, seed: int = 0) -> Path:
    rgb = np.rint(synthetic_image(h, w, seed=seed) * 255).astype(np.uint8)
    if alpha:
        yy, xx = np.mgrid[0:h, 0:w]
        r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
        a = np.rint(np.clip(1.5 - 1.5 * r, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(np.dstack([rgb, a]), "RGBA").save(path)
    else:
        Image.fromarray(rgb).save(path)
    return path


def run_upscale(src: Path, dst: Path, scale: str, extra: list[str]) -> tuple[int, float]:
    """(peak RSS in bytes, wall seconds) of one fresh `liif upscale` process."""
    cmd = [sys.executable, "-m", "liif_cli", "upscale", str(src), "--scale", scale, "-o", str(dst), "-q", *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"liif upscale {src.name} failed ({proc.returncode}): {err.strip()}")
    return usage.ru_maxrss * 1024, wall  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else "edsr-baseline")
    ap.add_argument("--input", default="160x120", help="WxH of the small input; the large one is 4x each side")
    ap.add_argument("--scale", default="4")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--tile", default=None, help="input tile side (default: liif's own choice)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.input.lower().split("x"))
    extra = ["--model", args.model, "--device", args.device, "--precision", args.precision]
    extra += ["--tile", args.tile] if args.tile else []
    mib = 2**20

    import torch

    print(
        f"model {args.model}, {args.device}, precision {args.precision}, tile {args.tile or 'auto'}, "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="liif-memory-") as tmp:
        tmp = Path(tmp)
        cases = [("baseline", 16, 16), ("small", w, h), ("large", 4 * w, 4 * h)]
        peaks: dict[str, int] = {}
        print(f"{'run':<9} {'input':>10} {'output':>11} {'out MP':>7} {'wall s':>7} {'peak RSS':>9} {'adds':>9}")
        for name, cw, ch in cases:
            src = _png(tmp / f"{name}.png", cw, ch, seed=1)
            peak, wall = run_upscale(src, tmp / f"{name}_out.png", args.scale, extra)
            peaks[name] = peak
            with Image.open(tmp / f"{name}_out.png") as out:
                ow, oh = out.size
            adds = "" if name == "baseline" else f"{(peak - peaks['baseline']) / mib:6.0f} MiB"
            print(
                f"{name:<9} {f'{cw}x{ch}':>10} {f'{ow}x{oh}':>11} {ow * oh / 1e6:7.2f} {wall:7.1f} "
                f"{peak / mib:5.0f} MiB {adds:>9}"
            )
        added = [peaks[n] - peaks["baseline"] for n in ("small", "large")]
        print(
            f"peak RSS large/small: {peaks['large'] / peaks['small']:.3f} (output 16x the pixels); "
            f"added over the baseline process: {added[1] / max(added[0], 1):.2f}x"
        )

        from liif_cli import load_model

        up = load_model(args.model, device=args.device, precision=args.precision, tile=int(args.tile or 0) or None)
        sizes = {}
        for kind, alpha in (("RGB", False), ("RGBA", True)):
            src = _png(tmp / f"enc_{kind}.png", w, h, alpha=alpha, seed=2)
            enc = up.encode(src)
            file_bytes = enc.save(tmp / f"enc_{kind}.liif").stat().st_size
            sizes[kind] = (enc.nbytes, file_bytes)
            print(
                f"encoding {kind:<4} {w}x{h} ({up.precision}): {enc.nbytes / mib:6.2f} MiB in memory "
                f"({enc.nbytes / (w * h):.0f} B per input pixel), .liif file {file_bytes / mib:6.2f} MiB"
            )
        print(
            f"encoding RGBA/RGB: {sizes['RGBA'][0] / sizes['RGB'][0]:.3f} in memory, "
            f"{sizes['RGBA'][1] / sizes['RGB'][1]:.3f} as a file"
        )


if __name__ == "__main__":
    main()
