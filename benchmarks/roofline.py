"""Roofline for the decoder: the GEMM rate on its real shapes, the floor per output pixel, and how close it gets.

    python benchmarks/roofline.py --model ../shared/weights/edsr-baseline-liif.pth
    python benchmarks/roofline.py --model ../shared/weights/edsr-baseline-liif.pth --processes --repeats 3
    python benchmarks/roofline.py --model ../shared/weights/edsr-baseline-liif.pth --profile --no-rates

For each precision (`--precision bf16,fp32`), in one run:

* the rate of the decoder's hidden-layer GEMM on its real shape: (4 queries x the precision's default block)
  rows x 256 @ 256 x 256, into a reused output (`torch.addmm(b, a, w, out=buf)`, as the decoder runs it).
  Beside it, the same shape with a fresh output per call (`torch.mm`): that is what this script measured
  before issue 28, and it timed the page faults of a new 32 MiB tensor as well as the GEMM;
* the floor per output pixel: the hidden layers' FLOPs per output pixel (4 queries x 3 layers x 2 x 256 x
  256 = 1,572,864 for the published models) at that rate;
* the decoder's measured µs per output pixel, as the *incremental* time between two jobs at the same scale
  (default 128x128 -> 512x512 and 512x512 -> 2048x2048 at x4): (t_large - t_small) / (px_large - px_small),
  which removes start-up, model loading and other fixed costs. In-process by default (model loaded once,
  runs interleaved, medians); with `--processes` each run is a whole `python -m liif_cli upscale` process
  on a synthetic PNG, as a user runs it (the issue-28 acceptance measure);
* the ratio floor / decoder (1.0 = the decoder costs only its GEMMs at the standalone rate).

On a CPU without native bf16 (no AVX512-BF16 or AMX) oneDNN has no bf16 kernels and ATen emulates them
about 30-100x slower than fp32; the bf16 decoder measurement is then skipped (`--force` runs it anyway)
and only the emulated GEMM rate is printed. `--profile` adds the old per-operator `torch.profiler` table
of one decoder block (`--input`, `--scale`). `--no-rates` skips the GEMM rates.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _median_time(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bandwidth(megabytes: int = 256) -> float:
    """Bytes per second (read + write) of a plain copy between two tensors far larger than the caches."""
    src = torch.ones(megabytes << 18)  # fp32: megabytes MiB
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / _median_time(lambda: dst.copy_(src), 5)


def gemm_rate(
    precision: str, rows: int, *, reuse: bool = True, device: str = "cpu", repeats: int = 5, width: int = 256
) -> float:
    """FLOP/s (2 per multiply-add) of one hidden layer, rows x width @ width x width plus bias.

    reuse=True writes into the same output every call (`addmm(out=)`, what the decoder does); False
    allocates a new output per call (`torch.mm`), which on the CPU also times the new pages' faults.
    """
    dtype = DTYPES[precision]
    a = torch.randn(rows, width, device=device).to(dtype)
    w = torch.randn(width, width, device=device).to(dtype) / width**0.5
    b = torch.randn(width, device=device).to(dtype)
    out = torch.empty(rows, width, device=device, dtype=dtype)
    sync = (lambda: torch.cuda.synchronize(device)) if str(device).startswith("cuda") else (lambda: None)
    fn = (lambda: torch.addmm(b, a, w, out=out)) if reuse else (lambda: torch.mm(a, w))
    return 2 * rows * width * width / _median_time(fn, repeats, sync)


def hidden_flops_per_pixel(hidden_layers: int = 3, width: int = 256) -> int:
    """FLOPs of the hidden layers per output pixel: 4 queries (the local ensemble) x layers x 2 x width^2."""
    return 4 * hidden_layers * 2 * width * width


def floor_us_per_pixel(precision: str, device: str = "cpu", repeats: int = 5) -> tuple[float, float]:
    """(GEMM FLOP/s with reused outputs on the decoder's block shape, floor in µs per output pixel)."""
    from liif_cli.engine import default_query_batch

    rows = 4 * default_query_batch(torch.device(device), precision)
    rate = gemm_rate(precision, rows, device=device, repeats=repeats)
    return rate, 1e6 * hidden_flops_per_pixel() / rate


def native(precision: str, device: str = "cpu") -> bool:
    """False for bf16/fp16 on a CPU whose oneDNN has no native kernels for it (emulated: far slower)."""
    if not device.startswith("cpu") or precision == "fp32":
        return True
    from liif_cli.devices import cpu_has_fast_bf16

    return precision == "bf16" and cpu_has_fast_bf16()


def decoder_in_process(model: str, precision: str, small: int, large: int, scale: float, repeats: int):
    """{side: median seconds} of `Upscaler.upscale_array`, model loaded once, sizes interleaved."""
    from benchmarks.speed import synthetic_image
    from liif_cli.api import load_model

    up = load_model(model, device="cpu", precision=precision)
    images = {side: synthetic_image(side, side) for side in (small, large)}
    out = {side: (round(side * scale), round(side * scale)) for side in images}
    up.upscale_array(images[small], out[small])  # warm-up: buffers, oneDNN primitives
    times: dict[int, list[float]] = {side: [] for side in images}
    for _ in range(repeats):
        for side, rgb in images.items():
            t0 = time.perf_counter()
            up.upscale_array(rgb, out[side])
            times[side].append(time.perf_counter() - t0)
    return {side: statistics.median(t) for side, t in times.items()}, times


def decoder_processes(model: str, precisions: list[str], small: int, large: int, scale: float, repeats: int):
    """{precision: {side: median s}} of whole `liif upscale` processes; runs alternate sizes and precisions."""
    import os

    import numpy as np
    from PIL import Image

    from benchmarks.speed import synthetic_image

    times = {p: {small: [], large: []} for p in precisions}
    model = str(Path(model).resolve()) if Path(model).exists() else model  # the runs start in a temp folder
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as tmp:
        for side in (small, large):
            rgb = synthetic_image(side, side)
            Image.fromarray(np.rint(rgb * 255).astype(np.uint8)).save(f"{tmp}/in{side}.png")
        for _ in range(repeats):
            for precision in precisions:
                for side in (small, large):
                    cmd = [sys.executable, "-m", "liif_cli", "upscale", f"{tmp}/in{side}.png", "-o", f"{tmp}/out.png"]
                    cmd += ["--scale", f"{scale:g}", "--model", model, "--device", "cpu", "--precision", precision]
                    cmd += ["--overwrite"]
                    t0 = time.perf_counter()
                    subprocess.run(cmd, check=True, cwd=tmp, env=env, capture_output=True)
                    times[precision][side].append(time.perf_counter() - t0)
    medians = {p: {side: statistics.median(t) for side, t in by.items()} for p, by in times.items()}
    return medians, times


def profile_decoder(model: str, precision: str, size: int, scale: float, repeats: int) -> None:
    """torch.profiler's self CPU time per operator for one decoder block on real latent tables."""
    from benchmarks.speed import synthetic_image
    from liif_cli.api import load_model
    from liif_cli.geometry import axis_lookup

    up = load_model(model, device="cpu", precision=precision)
    renderer = up.renderer
    rgb = synthetic_image(size, size)
    out = round(size * scale)
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
    x = ((x - renderer.sub.view(1, 3, 1, 1)) / renderer.div.view(1, 3, 1, 1)).to(renderer.dtype)
    with torch.inference_mode():
        feat = renderer.encoder(x.contiguous(memory_format=torch.channels_last))
        ylook, xlook = axis_lookup(out, size), axis_lookup(out, size)
        rel_cell = (2 / out * size, 2 / out * size)
        table = renderer.decoder.latent_table(feat, rel_cell)
        n_rows = max(1, renderer.options.query_batch // out)
        rows = (ylook.idx[:, :n_rows], ylook.rel[:, :n_rows])
        cols = (xlook.idx, xlook.rel)
        renderer.decoder.decode(table, size, rows, cols)  # warm-up: buffers, oneDNN primitives
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                renderer.decoder.decode(table, size, rows, cols)
    pixels = repeats * n_rows * out
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    events.sort(key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\ndecoder block: {n_rows} x {out} output pixels x {repeats}, {precision}; self CPU time per output pixel")
    print(f"{'operator':<40}{'calls':>7}{'ns/px':>9}{'share':>8}")
    for e in events:
        share = e.self_cpu_time_total / total
        if share < 0.005:
            continue
        print(f"{e.key:<40}{e.count:>7}{1000 * e.self_cpu_time_total / pixels:>9.1f}{share:>8.1%}")
    print(f"{'total':<40}{'':>7}{1000 * total / pixels:>9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="edsr-baseline")
    ap.add_argument("--precision", default="bf16,fp32", help="comma-separated: bf16,fp32")
    ap.add_argument("--small", type=int, default=128, help="side of the smaller square job's input")
    ap.add_argument("--large", type=int, default=512, help="side of the larger square job's input")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3, help="runs per job (medians)")
    ap.add_argument("--processes", action="store_true", help="time whole `liif upscale` processes")
    ap.add_argument("--no-decoder", action="store_true", help="rates and floors only")
    ap.add_argument("--force", action="store_true", help="measure emulated (non-native) precisions too")
    ap.add_argument("--no-rates", action="store_true", help="skip the bandwidth and GEMM measurements")
    ap.add_argument("--profile", action="store_true", help="per-operator profile of one decoder block")
    ap.add_argument("--input", type=int, default=128, help="--profile: side of the square synthetic input")
    args = ap.parse_args()
    from liif_cli.devices import last_level_cache_bytes, set_threads
    from liif_cli.engine import default_query_batch

    set_threads(None)  # as `liif` does
    precisions = args.precision.split(",")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, last-level cache {last_level_cache_bytes() >> 20} MiB"
    )
    floors: dict[str, float] = {}
    if not args.no_rates:
        print(f"copy bandwidth (read + write): {bandwidth() / 1e9:.1f} GB/s")
        print(f"hidden-layer FLOPs per output pixel: {hidden_flops_per_pixel():,}")
        for p in precisions:
            block = default_query_batch(torch.device("cpu"), p)
            rows = 4 * block if native(p) else 1024
            reused = gemm_rate(p, rows)
            fresh = gemm_rate(p, rows, reuse=False)
            floors[p] = 1e6 * hidden_flops_per_pixel() / reused
            note = "" if native(p) else "  (emulated: this CPU has no native kernels for it)"
            print(
                f"{p}: block {block} px, GEMM {rows}x256 @ 256x256: {reused / 1e9:.3g} GFLOP/s with a reused output, "
                f"{fresh / 1e9:.3g} with a fresh one; floor {floors[p]:.3f} µs per output pixel{note}"
            )
    if not args.no_decoder:
        measured = [p for p in precisions if native(p) or args.force]
        for p in sorted(set(precisions) - set(measured)):
            print(f"{p}: decoder not measured, not native on this CPU (--force to measure it anyway)")
        px = {side: round(side * args.scale) ** 2 for side in (args.small, args.large)}
        how = "whole processes" if args.processes else "in process"
        jobs = f"{args.small}->{round(args.small * args.scale)} and {args.large}->{round(args.large * args.scale)}"
        print(f"decoder, incremental between {jobs} (square, x{args.scale:g}), {how}, medians of {args.repeats}:")
        if args.processes and measured:
            medians, runs = decoder_processes(args.model, measured, args.small, args.large, args.scale, args.repeats)
        else:
            medians, runs = {}, {}
            for p in measured:
                medians[p], runs[p] = decoder_in_process(
                    args.model, p, args.small, args.large, args.scale, args.repeats
                )
        for p in measured:
            t = medians[p]
            us = 1e6 * (t[args.large] - t[args.small]) / (px[args.large] - px[args.small])
            detail = ", ".join(f"{side}: " + " ".join(f"{v:.2f}" for v in runs[p][side]) + " s" for side in runs[p])
            ratio = f", {floors[p] / us:.0%} of the floor ({floors[p]:.3f} µs/px)" if p in floors else ""
            print(f"{p}: {us:.3f} µs per output pixel{ratio}   runs {detail}")
    if args.profile:
        for p in precisions:
            profile_decoder(args.model, p, args.input, args.scale, args.repeats)


if __name__ == "__main__":
    main()
