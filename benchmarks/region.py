"""Region rendering: a window of a large input costs what the window costs, not what the input costs.

    python benchmarks/region.py --repeats 3

Issue 10, acceptance 4: renders the 64x48 region at (1200, 800) of a 2000x1500 input at 1280x960 (x20),
and upscales the 64x48 crop of the same input to 1280x960 (the same output pixels, up to the crop's
zero-padded borders), interleaved; prints both medians, their ratio, and the engine's estimate for the
whole image at that magnification (40000x30000). Then the size of an encoding per input pixel (fp32 and
bf16, in memory and as a .liif file), and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import synthetic_image  # noqa: E402

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "edsr-baseline-liif.pth"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else "edsr-baseline")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from liif_cli import load_model

    up = load_model(args.model, device=args.device, precision=args.precision, threads=args.threads)
    rgb = synthetic_image(1500, 2000)
    x, y, w, h = 1200, 800, 64, 48
    out_hw = (960, 1280)
    crop = np.ascontiguousarray(rgb[y : y + h, x : x + w])
    paths = {
        "region": lambda: up.upscale_array(rgb, out_hw, region=(x, y, w, h), dtype=np.uint8),
        "crop": lambda: up.upscale_array(crop, out_hw, dtype=np.uint8),
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    outputs = {}
    paths["crop"]()  # warm-up (allocations, oneDNN kernels)
    for _ in range(args.repeats):
        for name, run in paths.items():
            t0 = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"{args.model} on {up.device.type} ({up.precision}), {torch.get_num_threads()} threads, {args.repeats} repeats"
    )
    print(f"region {x},{y},{w},{h} of 2000x1500 -> 1280x960: median {med['region']:.2f} s  {times['region']}")
    print(f"64x48 crop            -> 1280x960: median {med['crop']:.2f} s  {times['crop']}")
    print(f"ratio region / crop: {med['region'] / med['crop']:.3f}  (acceptance: <= 1.5)")
    # Not the same pixels: the crop's encoder sees zeros beyond its borders (34 px receptive field, so every
    # latent of a 64x48 crop), the region's sees the real neighbours.
    diff = np.abs(outputs["region"].astype(np.int16) - outputs["crop"]).mean()
    print(f"mean |region - crop| (0-255): {diff:.2f} (the crop's borders are zero-padded; the region's are not)")
    whole_s, _ = up.renderer.estimate((1500, 2000), (30000, 40000))
    per_px = med["region"] / (out_hw[0] * out_hw[1])
    print(
        f"whole image at x20 (40000x30000): engine estimate {whole_s / 3600:.1f} h; "
        f"at this run's rate per output pixel {per_px * 1.2e9 / 3600:.1f} h "
        f"({1.2e9 / (out_hw[0] * out_hw[1]):.0f}x the region's pixels)"
    )

    sample = synthetic_image(256, 256, seed=1)
    for precision in ("fp32", "bf16"):
        enc = load_model(args.model, device=args.device, precision=precision).encode(sample)
        with tempfile.TemporaryDirectory() as tmp:
            size = enc.save(Path(tmp) / "s.liif").stat().st_size
        print(
            f"encoding, {precision}: {enc.nbytes / sample.shape[0] / sample.shape[1]:.0f} bytes per input pixel in memory, "
            f"{size / sample.shape[0] / sample.shape[1]:.1f} as a .liif file (RGB; benchmarks/memory.py measures RGBA)"
        )
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
