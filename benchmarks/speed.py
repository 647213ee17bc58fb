"""Decoder speed: the official path (oracle transcription) against the fast engine, in one run.

    python benchmarks/speed.py --model edsr-baseline --input 128x128 --scale 4 --repeats 5

For each path: median wall time over the repeats, output megapixels per second, speed-up over the
official path, max |diff| against it, and peak resident memory (each path measured once in a fresh child
process, since a process's peak RSS only grows; "run adds" is the growth during the run itself, after the
model is loaded).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import numpy as np
import torch


def synthetic_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour ramps plus texture: deterministic, no files needed, exercises every latent."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([(yy / h), (xx / w), 0.5 + 0.5 * np.sin((xx + yy) / 7.0)], axis=-1)
    return np.clip(0.8 * base + 0.2 * rng.random((h, w, 3), dtype=np.float32), 0, 1).astype(np.float32)


def prepare(path: str, model: str, tile, threads):
    """A function rgb, out_hw -> float output for one path, with the model already loaded."""
    from liif_cli.api import load_model
    from liif_cli.models import reference_upscale

    if path == "official":
        up = load_model(model, device="cpu", precision="fp32", threads=threads)
        net, norm = up.loaded.net, up.loaded.normalization

        def run(rgb, out_hw):
            with torch.inference_mode():
                x = torch.from_numpy(rgb).permute(2, 0, 1)
                return reference_upscale(net, x, out_hw, norm.sub, norm.div).numpy()

        return run
    up = load_model(model, device="cpu", precision=path, tile=tile, threads=threads)
    return up.upscale_array


def run_path(path: str, model: str, rgb: np.ndarray, out_hw, tile, threads) -> np.ndarray:
    return prepare(path, model, tile, threads)(rgb, out_hw)


def _child(queue, path, model, rgb, out_hw, tile, threads):
    run = prepare(path, model, tile, threads)
    before = _high_water_mark()
    run(rgb, out_hw)
    after = _high_water_mark()
    queue.put((after, after - before))


def _high_water_mark() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec, so a spawned child
    would report the parent's peak."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def peak_rss(path, model, rgb, out_hw, tile, threads) -> tuple[int, int]:
    """(peak RSS of a fresh process that loads and runs the path once, how much the run itself added)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, path, model, rgb, out_hw, tile, threads))
    proc.start()
    value = queue.get()
    proc.join()
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="edsr-baseline")
    ap.add_argument("--input", default="128x128", help="WxH of the synthetic input")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--paths", default="official,fp32,bf16")
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-memory", action="store_true", help="skip the per-path peak-RSS child processes")
    args = ap.parse_args()
    w, h = (int(v) for v in args.input.lower().split("x"))
    rgb = synthetic_image(h, w)
    out_hw = (round(h * args.scale), round(w * args.scale))
    mp_out = out_hw[0] * out_hw[1] / 1e6
    print(
        f"model {args.model}, input {w}x{h} -> {out_hw[1]}x{out_hw[0]} ({mp_out:.3f} MP), "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    paths = args.paths.split(",")
    runners = {path: prepare(path, args.model, args.tile, args.threads) for path in paths}
    outputs = {path: run(rgb, out_hw) for path, run in runners.items()}  # warm-up (oneDNN kernels, buffers)
    times: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(args.repeats):  # interleaved, so that a change in machine load hits every path alike
        for path, run in runners.items():
            t0 = time.perf_counter()
            run(rgb, out_hw)
            times[path].append(time.perf_counter() - t0)
    reference = outputs[paths[0]]
    results = {p: (statistics.median(times[p]), float(np.abs(outputs[p] - reference).max())) for p in paths}
    base = results[paths[0]][0]
    print(f"{'path':<10}{'median s':>10}{'MP/s':>9}{'speed-up':>10}{'max|diff|':>12}{'peak RSS':>10}{'run adds':>10}")
    for path, (t, diff) in results.items():
        rss = ""
        if not args.no_memory:
            peak, growth = peak_rss(path, args.model, rgb, out_hw, args.tile, args.threads)
            rss = f"{peak / 2**20:>6.0f} MiB{growth / 2**20:>6.0f} MiB"
        print(f"{path:<10}{t:>10.3f}{mp_out / t:>9.3f}{base / t:>9.2f}x{diff:>12.2e}{rss:>20}")


if __name__ == "__main__":
    main()
