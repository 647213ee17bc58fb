"""Decoder speed: the official path (oracle transcription) against the fast engine, in one run.

    python benchmarks/speed.py --model edsr-baseline --input 128x128 --scale 4 --repeats 5
    python benchmarks/speed.py --input 256x256 --scale 4 --processes --repeats 3   # whole processes
    python benchmarks/speed.py --device cuda --paths fp32,bf16,fp16 --input 512x512 --scale 4
    python benchmarks/speed.py --paths fp32,fp32@16384 --input 256x256   # PATH@N: decoder blocks of N pixels

For each path: median wall time over the repeats, output megapixels per second, speed-up over the
official path, max |diff| against it, and peak resident memory (each path measured once in a fresh child
process, since a process's peak RSS only grows; "run adds" is the growth during the run itself, after the
model is loaded). With --processes every timed run is a fresh interpreter that imports, loads the model
and renders once, as a user's command does; the runs alternate between paths. With --gemm-share, one
extra run per path under torch.profiler reports the share of its time spent in matrix products. On CUDA
the timings synchronize the device (outputs come back to the host anyway), "GPU peak" is the allocator's
peak during the path's first run over what was allocated before it, and the official path runs with TF32
off, as the engine's fp32 does, so that max |diff| compares fp32 with fp32. --json writes the table too.

Every path is also reported in µs per output pixel and as a fraction of its precision's floor (the
official path against the fp32 floor): the hidden-layer GEMMs alone at the rate `benchmarks/roofline.py`
measures on the decoder's block shape with a reused output, measured once at the start of the same run
(`--no-floor` skips it). 100% would be a decoder that costs only its GEMMs; the whole-process figures
include start-up, model loading and the encoder, so they sit lower (roofline.py's incremental measure
removes the fixed costs).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def synthetic_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour ramps plus texture: deterministic, no files needed, exercises every latent."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([(yy / h), (xx / w), 0.5 + 0.5 * np.sin((xx + yy) / 7.0)], axis=-1)
    return np.clip(0.8 * base + 0.2 * rng.random((h, w, 3), dtype=np.float32), 0, 1).astype(np.float32)


def prepare(path: str, model: str, tile, threads, device: str = "cpu"):
    """A function rgb, out_hw -> float output for one path, with the model already loaded."""
    from liif_cli.api import load_model

    if path == "official":
        up = load_model(model, device=device, precision="fp32", threads=threads)
        return lambda rgb, out_hw: official_upscale(up.loaded, rgb, out_hw, up.device)
    precision, _, batch = path.partition("@")  # "fp32@16384": that precision with a forced decoder block
    up = load_model(
        model, device=device, precision=precision, tile=tile, threads=threads, batch_size=int(batch) if batch else None
    )
    return up.upscale_array


def official_upscale(loaded, rgb: np.ndarray, out_hw, device) -> np.ndarray:
    """The official path (oracle transcription) in true fp32: cuDNN's default TF32 convolutions would put the
    reference itself ~1e-3 away from fp32 on a GPU (the flags do nothing on the CPU)."""
    from liif_cli.engine import _no_tf32
    from liif_cli.models import reference_upscale

    norm = loaded.normalization
    with torch.inference_mode(), _no_tf32(True):
        x = torch.from_numpy(rgb).permute(2, 0, 1).to(device)
        return reference_upscale(loaded.net, x, out_hw, norm.sub, norm.div).cpu().numpy()


def run_path(path: str, model: str, rgb: np.ndarray, out_hw, tile, threads, device: str = "cpu") -> np.ndarray:
    return prepare(path, model, tile, threads, device)(rgb, out_hw)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gemm_share(run, rgb, out_hw, device: str) -> float:
    """Share of one run's operator time (CUDA kernel time on a GPU) spent in matrix products."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        run(rgb, out_hw)
        _sync(device)
    return gemm_fraction(prof.key_averages(), cuda)


def gemm_fraction(events, cuda: bool) -> float:
    """Share of the operators' self time (device time on a GPU) in matrix products and convolutions.

    Only operator events count, classified by the ATen name (aten::addmm, aten::cudnn_convolution...). On a
    GPU the kernels are events of their own as well, and their time is already each launching operator's
    self device time: counting both counted everything twice, and cuBLAS's Hopper kernels (`nvjet_*`) match
    no GEMM word, so the share came out near half the truth.
    """
    from torch.autograd import DeviceType

    gemm_words = ("mm", "linear", "gemm", "matmul", "conv")
    total = gemm = 0.0
    for e in events:
        if e.device_type != DeviceType.CPU:  # a kernel, a memcpy: counted under the operator that launched it
            continue
        t = e.self_device_time_total if cuda else e.self_cpu_time_total
        total += t
        name = e.key.lower()
        if any(w in name for w in gemm_words) and "copy" not in name:
            gemm += t
    return gemm / max(total, 1e-9)


def whole_process_times(args, paths, repeats: int) -> dict[str, list[float]]:
    """Wall time of fresh interpreters that each import, load the model and render once, alternating."""
    times: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(repeats):
        for path in paths:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one-shot", path, "--model", args.model]
            cmd += ["--input", args.input, "--scale", str(args.scale), "--device", args.device]
            cmd += ["--tile", str(args.tile)] if args.tile else []
            cmd += ["--threads", str(args.threads)] if args.threads else []
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            times[path].append(time.perf_counter() - t0)
    return times


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


def _precision(path: str) -> str:
    """The precision whose floor a path is measured against: the official path computes in fp32."""
    return "fp32" if path == "official" else path.partition("@")[0]


def measure_floors(paths: list[str], device: str) -> dict[str, float]:
    """{precision: floor in µs per output pixel}, printed with the GEMM rates behind them (roofline.py)."""
    from benchmarks.roofline import floor_us_per_pixel, hidden_flops_per_pixel, native

    floors = {}
    for precision in dict.fromkeys(_precision(p) for p in paths):
        if not native(precision, device):
            print(f"{precision}: no floor (not native on this CPU: its GEMMs are emulated)")
            continue
        rate, floors[precision] = floor_us_per_pixel(precision, device)
        print(
            f"{precision}: GEMM rate with a reused output on the decoder's block shape {rate / 1e9:.3g} GFLOP/s; "
            f"floor {hidden_flops_per_pixel():,} FLOP / px = {floors[precision]:.3f} µs per output pixel"
        )
    return floors


def _per_pixel(seconds: float, mp_out: float, floor: float | None) -> tuple[str, str]:
    """(µs per output pixel, floor / that) formatted for the tables."""
    us = seconds / mp_out  # seconds per megapixel = µs per pixel
    return f"{us:>9.3f}", f"{floor / us:>10.0%}" if floor else f"{'-':>10}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="edsr-baseline")
    ap.add_argument("--input", default="128x128", help="WxH of the synthetic input")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--paths", default="official,fp32,bf16")
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-path peak-RSS child processes")
    ap.add_argument("--processes", action="store_true", help="time whole fresh processes (import, load, render)")
    ap.add_argument("--gemm-share", action="store_true", help="profile one run per path: share of time in GEMMs")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--no-floor", action="store_true", help="skip the GEMM-rate measurement behind 'of floor'")
    ap.add_argument("--one-shot", default=None, help=argparse.SUPPRESS)  # the child of --processes
    args = ap.parse_args()
    w, h = (int(v) for v in args.input.lower().split("x"))
    rgb = synthetic_image(h, w)
    out_hw = (round(h * args.scale), round(w * args.scale))
    if args.one_shot:
        run_path(args.one_shot, args.model, rgb, out_hw, args.tile, args.threads, args.device)
        return
    mp_out = out_hw[0] * out_hw[1] / 1e6
    print(
        f"model {args.model}, input {w}x{h} -> {out_hw[1]}x{out_hw[0]} ({mp_out:.3f} MP), {args.device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    paths = args.paths.split(",")
    floors = {} if args.no_floor else measure_floors(paths, args.device)
    if args.processes:
        times = whole_process_times(args, paths, args.repeats)
        base = statistics.median(times[paths[0]])
        print(
            f"{'path':<10}{'median s':>10}{'MP/s':>9}{'speed-up':>10}{'µs/px':>9}{'of floor':>10}   runs (s), whole processes"
        )
        for path in paths:
            t = statistics.median(times[path])
            runs = " ".join(f"{v:.1f}" for v in times[path])
            us, frac = _per_pixel(t, mp_out, floors.get(_precision(path)))
            print(f"{path:<10}{t:>10.3f}{mp_out / t:>9.3f}{base / t:>9.2f}x{us}{frac}   {runs}")
        return
    runners = {path: prepare(path, args.model, args.tile, args.threads, args.device) for path in paths}
    cuda = args.device.startswith("cuda")
    outputs, gpu_peak = {}, {}
    for path, run in runners.items():  # warm-up (oneDNN or cuDNN/cuBLAS kernels, buffers)
        if cuda:
            _sync(args.device)
            torch.cuda.reset_peak_memory_stats(args.device)
            before = torch.cuda.memory_allocated(args.device)
        outputs[path] = run(rgb, out_hw)
        if cuda:
            gpu_peak[path] = torch.cuda.max_memory_allocated(args.device) - before
    times: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(args.repeats):  # interleaved, so that a change in machine load hits every path alike
        for path, run in runners.items():
            _sync(args.device)
            t0 = time.perf_counter()
            run(rgb, out_hw)
            _sync(args.device)
            times[path].append(time.perf_counter() - t0)
    reference = outputs[paths[0]]
    results = {p: (statistics.median(times[p]), float(np.abs(outputs[p] - reference).max())) for p in paths}
    base = results[paths[0]][0]
    memory = not args.no_memory and args.device == "cpu"  # peak RSS says nothing about GPU memory
    print(
        f"{'path':<10}{'median s':>10}{'MP/s':>9}{'speed-up':>10}{'µs/px':>9}{'of floor':>10}{'max|diff|':>12}"
        + (f"{'peak RSS':>10}{'run adds':>10}" if memory else "")
        + (f"{'GPU peak':>10}" if cuda else "")
        + (f"{'GEMM share':>12}" if args.gemm_share else "")
    )
    rows = {}
    for path, (t, diff) in results.items():
        rss = gpu = share = ""
        row = rows[path] = {"median_s": t, "mp_per_s": mp_out / t, "speedup": base / t, "max_diff": diff}
        if memory:
            peak, growth = peak_rss(path, args.model, rgb, out_hw, args.tile, args.threads)
            rss = f"{peak / 2**20:>6.0f} MiB{growth / 2**20:>6.0f} MiB"
            row.update(peak_rss_bytes=peak, run_adds_bytes=growth)
        if cuda:
            gpu = f"{gpu_peak[path] / 2**20:>6.0f} MiB"
            row["gpu_peak_bytes"] = gpu_peak[path]
        if args.gemm_share:
            row["gemm_share"] = gemm_share(runners[path], rgb, out_hw, args.device)
            share = f"{row['gemm_share']:>12.0%}"
        floor = floors.get(_precision(path))
        row.update(us_per_px=t / mp_out, floor_us_per_px=floor, floor_fraction=floor / (t / mp_out) if floor else None)
        us, frac = _per_pixel(t, mp_out, floor)
        print(f"{path:<10}{t:>10.3f}{mp_out / t:>9.3f}{base / t:>9.2f}x{us}{frac}{diff:>12.2e}{rss:>20}{gpu}{share}")
    if args.json:
        head = {"model": args.model, "input_wh": [w, h], "output_wh": [out_hw[1], out_hw[0]], "device": args.device}
        head |= {"repeats": args.repeats, "torch": torch.__version__, "baseline": paths[0]}
        Path(args.json).write_text(json.dumps(head | {"paths": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
