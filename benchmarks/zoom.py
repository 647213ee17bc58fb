"""Zoom cost: a 512x512 view at 32x of a cached encoding costs what a 16x16 crop upscaled to 512x512 costs.

    python benchmarks/zoom.py --repeats 5

Issue 15, acceptance 5. A 1000x750 image is encoded once (timed, for information: the zoom viewer pays
it once per upload). Then, interleaved, `--repeats` times each:

  library   view:  Encoding.render(region=16x16 input pixels, size=512x512)   (the decoder only)
            crop:  Upscaler.upscale(the 16x16 crop, size=512x512)            (encoder + decoder)
  server    view:  four GET /v1/encodings/{id}/render tiles of 256x256, as the page asks for them
            crop:  POST /v1/upscale of the 16x16 crop as a PNG, size=512x512

(the server runs in-process, through HTTPX and the app's job queue, with PNG encoding both ways).
Prints the medians, the ratios view / crop (acceptance: within 1.5x), the engine's estimate for the
whole image at 32x (what the view would cost without regions), and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import synthetic_image  # noqa: E402

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "edsr-baseline-liif.pth"
ZOOM, VIEW, TILE = 32, 512, 256
IN_HW = (750, 1000)


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else "edsr-baseline")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-server", action="store_true", help="the library paths only")
    args = ap.parse_args()

    from liif_cli import load_model
    from liif_cli.decoded import from_array

    up = load_model(args.model, device=args.device, precision=args.precision, threads=args.threads)
    rgb8 = (synthetic_image(*IN_HW) * 255 + 0.5).astype(np.uint8)
    side = VIEW // ZOOM  # 16 input pixels under the view
    x, y = 496, 368  # the middle of the image, on the viewer's tile grid (a tile is 8 input pixels at 32x)
    crop8 = np.ascontiguousarray(rgb8[y : y + side, x : x + side])

    t0 = time.perf_counter()
    enc = up.encode(from_array(rgb8))
    encode_s = time.perf_counter() - t0
    image_crop = from_array(crop8)
    paths = {
        "library view": lambda: enc.render(region=(x, y, side, side), size=(VIEW, VIEW)),
        "library crop": lambda: up.upscale(image_crop, size=(VIEW, VIEW)),
    }

    client = None
    if not args.no_server:
        from fastapi.testclient import TestClient

        from liif_cli.batch import LazyModel
        from liif_cli.load_options import LoadOptions
        from liif_cli.serve.app import ServeConfig, create_app

        config = ServeConfig(model=args.model, devices=(args.device,), load=LoadOptions(precision=args.precision))
        client = TestClient(create_app(config, workers=[LazyModel(lambda: up)])).__enter__()
        made = client.post("/v1/encodings", files={"image": ("big.png", png(rgb8), "image/png")})
        assert made.status_code == 201, made.text
        url = f"/v1/encodings/{made.json()['id']}/render"
        step = TILE / ZOOM
        tiles = [
            {
                "region": f"{x + i * step:g},{y + j * step:g},{step:g},{step:g}",
                "size": f"{TILE}x{TILE}",
                "format": "png",
            }
            for j in (0, 1)
            for i in (0, 1)
        ]
        crop_png = png(crop8)

        def server_view():
            for params in tiles:
                r = client.get(url, params=params)
                assert r.status_code == 200, r.text

        def server_crop():
            r = client.post("/v1/upscale", files={"image": ("crop.png", crop_png)}, data={"size": f"{VIEW}x{VIEW}"})
            assert r.status_code == 200, r.text

        paths["server view"] = server_view
        paths["server crop"] = server_crop

    for run in paths.values():  # warm-up (allocations, oneDNN kernels)
        run()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, run in paths.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}

    print(
        f"{args.model} on {up.device.type} ({up.precision}), {torch.get_num_threads()} threads, {args.repeats} repeats"
    )
    print(f"encode {IN_HW[1]}x{IN_HW[0]} once: {encode_s:.2f} s, {enc.nbytes / 2**20:.0f} MiB cached")
    for name, t in times.items():
        print(f"{name:13s} median {med[name] * 1000:7.1f} ms   {[round(v * 1000, 1) for v in t]}")
    for where in ("library", "server"):
        if f"{where} view" in med:
            ratio = med[f"{where} view"] / med[f"{where} crop"]
            print(f"{where}: view / crop = {ratio:.2f}  (acceptance: within 1.5x)")
    whole_s, _ = up.renderer.estimate(IN_HW, (IN_HW[0] * ZOOM, IN_HW[1] * ZOOM))
    print(
        f"without regions: the whole image at {ZOOM}x ({IN_HW[1] * ZOOM}x{IN_HW[0] * ZOOM}) would take about "
        f"{whole_s / 60:.0f} min (engine estimate)"
    )
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if client is not None:
        client.__exit__(None, None, None)


if __name__ == "__main__":
    main()
