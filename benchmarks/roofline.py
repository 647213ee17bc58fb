"""Roofline inputs for the decoder: this machine's memory bandwidth and GEMM rates, and a per-pass profile.

    python benchmarks/roofline.py --model ../shared/weights/edsr-baseline-liif.pth --precision bf16

Prints (1) the streaming bandwidth (a large tensor copy, read + write bytes per second) and the rate of a
decoder-shaped GEMM (queries x 256 @ 256 x 256) in fp32 and bf16, and (2) `torch.profiler`'s CPU time per
operator for one decoder block (`FastDecoder.decode` on real latent tables), per output pixel. Dividing the
bytes and FLOPs per output pixel of each pass (docs/performance.md) by these rates gives its floor.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _best(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bandwidth(megabytes: int = 256) -> float:
    """Bytes per second (read + write) of a plain copy between two tensors far larger than the caches."""
    src = torch.ones(megabytes << 18)  # fp32: megabytes MiB
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / _best(lambda: dst.copy_(src))


def gemm_rate(dtype: torch.dtype, rows: int = 65536) -> float:
    """FLOP/s (2 per multiply-add) of the decoder's hidden-layer GEMM shape."""
    a = torch.randn(rows, 256).to(dtype)
    w = torch.randn(256, 256).to(dtype)
    return 2 * rows * 256 * 256 / _best(lambda: torch.mm(a, w))


def profile_decoder(model: str, precision: str, size: int, scale: float, repeats: int) -> None:
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
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--input", type=int, default=128, help="side of the square synthetic input")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-rates", action="store_true", help="skip the bandwidth and GEMM measurements")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.no_rates:
        print(f"copy bandwidth (read + write): {bandwidth() / 1e9:.1f} GB/s")
        for dtype in (torch.float32, torch.bfloat16):
            print(f"GEMM 65536x256 @ 256x256 {str(dtype)[6:]}: {gemm_rate(dtype) / 1e9:.0f} GFLOP/s")
    profile_decoder(args.model, args.precision, args.input, args.scale, args.repeats)


if __name__ == "__main__":
    main()
