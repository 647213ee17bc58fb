"""Video streaming: memory does not grow with the clip's length, and a frame costs what a still costs.

    python benchmarks/video.py --model edsr-baseline --input 320x240 --scale 2 --short 20 --long 200

1. Peak RSS of a fresh process that loads the model and upscales a `--short` clip, and of one that
   upscales a `--long` clip (same size, same content moving); their ratio should be ~1.00 (issue 11
   acceptance 4 asks for < 10% apart).
2. In one process, interleaved `--repeats` times: one still frame through `Upscaler.upscale_array`
   against `upscale_video` of a `--frames` clip (decode, model, encode and mux, per frame). Medians and
   their ratio (acceptance 5 asks for within 15%).

The clips are H.264 MP4s made here with PyAV from a synthetic picture shifted a pixel per frame.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from speed import _high_water_mark, synthetic_image


def make_clip(path: Path, n: int, w: int, h: int) -> Path:
    import av

    base = (synthetic_image(h, w + n) * 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=Fraction(24000, 1001))
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, i : i + w]), format="rgb24")
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def _rss_child(queue, model, device, src, dst, out_hw):
    from liif_cli import load_model
    from liif_cli.video import upscale_video

    up = load_model(model, device=device, precision="fp32")
    loaded = _high_water_mark()
    trace: dict[int, int] = {}  # frames done -> peak RSS so far, every 10 frames

    def progress(done, _total):
        if done % 10 == 0:
            trace[done] = _high_water_mark()

    result = upscale_video(up, src, dst, out_hw=out_hw, overwrite=True, progress=progress)
    queue.put((_high_water_mark(), loaded, result.frames, trace))


def peak_rss(model, device, src, dst, out_hw) -> tuple[int, int, int, dict[int, int]]:
    """(peak RSS of a fresh process, its peak once the model was loaded, frames written, peak RSS after
    every 10 frames)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_rss_child, args=(queue, model, device, str(src), str(dst), out_hw))
    proc.start()
    value = queue.get()
    proc.join()
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="edsr-baseline")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--input", default="320x240", help="WxH of the clips")
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--short", type=int, default=20, help="frames of the short clip (memory)")
    ap.add_argument("--long", type=int, default=200, help="frames of the long clip (memory)")
    ap.add_argument("--frames", type=int, default=6, help="frames of the clip timed against a still")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    w, h = (int(v) for v in args.input.lower().split("x"))
    out_hw = (round(h * args.scale), round(w * args.scale))
    print(f"model {args.model} on {args.device}: {w}x{h} -> {out_hw[1]}x{out_hw[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_memory:
            rows = []
            for n in (args.short, args.long):
                src = make_clip(tmp / f"clip{n}.mp4", n, w, h)
                t0 = time.perf_counter()
                peak, loaded, done, trace = peak_rss(args.model, args.device, src, tmp / f"out{n}.mp4", out_hw)
                rows.append(peak)
                print(
                    f"{n:>5} frames: peak RSS {peak / 2**20:7.1f} MiB (model loaded: {loaded / 2**20:7.1f} MiB), "
                    f"{done} frames written in {time.perf_counter() - t0:.1f} s"
                )
                marks = [k for k in sorted(trace) if k % 50 == 0 or k in (10, 20, 30, 40) or k == max(trace)]
                print("       peak so far after N frames: " + ", ".join(f"{k}: {trace[k] / 2**20:.1f}" for k in marks))
            print(f"peak RSS ratio long/short: {rows[1] / rows[0]:.3f}")
        if not args.skip_speed:
            speed(args, tmp, w, h, out_hw)


def speed(args, tmp: Path, w: int, h: int, out_hw) -> None:
    import av

    from liif_cli import load_model
    from liif_cli.video import upscale_video

    up = load_model(args.model, device=args.device, precision="fp32")
    src = make_clip(tmp / "timed.mp4", args.frames, w, h)
    with av.open(str(src)) as c:
        still = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32) / 255
    up.upscale_array(still, out_hw, dtype=np.uint8)  # warm-up
    stills, frames = [], []
    for _ in range(args.repeats):  # interleaved, so that a change in machine load hits both alike
        t0 = time.perf_counter()
        up.upscale_array(still, out_hw, dtype=np.uint8)
        stills.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n = upscale_video(up, src, tmp / "timed_out.mp4", out_hw=out_hw, overwrite=True).frames
        frames.append((time.perf_counter() - t0) / n)
    s, f = statistics.median(stills), statistics.median(frames)
    print(f"still: {s:.3f} s, video: {f:.3f} s per frame ({args.frames}-frame clip), ratio video/still {f / s:.3f}")


if __name__ == "__main__":
    main()
