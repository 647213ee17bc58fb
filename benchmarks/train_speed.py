"""Training throughput of `liif train` on this machine: samples/s and iterations/s, peak RSS.

Runs the real pieces of the loop (`SRTrainDataset` + DataLoader workers, normalization, forward, L1, Adam
step) at the recipe's default batch (16 x 48 px LR, 2304 queries) unless told otherwise, times several
windows after warm-up and reports the median. Also measures the data pipeline alone (one worker, decoding
per sample and with `--decoded-cache`), so you can see how many `--workers` a given GPU needs; point
`--data` at DIV2K to see its real decoding cost.

    python benchmarks/train_speed.py                      # EDSR-baseline, Set14 HR as data
    python benchmarks/train_speed.py --encoders edsr-baseline,rdn --windows 3 --iters 1
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from liif_cli.models import Normalization, build_liif
from liif_cli.train.data import SRTrainDataset, make_loader, scan_images

DEFAULT_DATA = Path("/work/shared/datasets/Set14/HR")


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def make_dataset(data: Path, batch: int, inp: int, sample_q: int) -> SRTrainDataset:
    items, _ = scan_images(data, min_side=inp)
    return SRTrainDataset(items, 10_000 * batch, inp_size=inp, sample_q=sample_q, seed=0)


def time_training(encoder: str, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    net = build_liif(encoder).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    norm = Normalization.named("half")
    sub = torch.tensor(norm.sub, device=device)
    div = torch.tensor(norm.div, device=device)
    dataset = make_dataset(args.data, args.batch, args.inp_size, args.sample_q)
    loader, sampler = make_loader(dataset, args.batch, workers=args.workers, pin_memory=device.type == "cuda")
    sampler.set_epoch(1)
    batches = iter(loader)

    def step() -> None:
        batch = next(batches)
        inp = (batch["inp"].to(device) - sub.view(1, 3, 1, 1)) / div.view(1, 3, 1, 1)
        gt = (batch["gt"].to(device) - sub) / div
        pred = net(inp, batch["coord"].to(device), batch["cell"].to(device))
        loss = F.l1_loss(pred, gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    windows = []
    for _ in range(args.windows):
        t0 = time.perf_counter()
        for _ in range(args.iters):
            step()
        windows.append(time.perf_counter() - t0)
    per_iter = statistics.median(windows) / args.iters
    return {
        "encoder": encoder,
        "it_s": 1 / per_iter,
        "samples_s": args.batch / per_iter,
        "s_per_it": per_iter,
        "spread": (min(windows) / args.iters, max(windows) / args.iters),
        "rss": peak_rss_mib(),
    }


def time_data(args, decoded_cache: Path | None = None) -> float:
    """Samples/s that one DataLoader worker produces (decode or memory-map, crop, resize, sample)."""
    items, _ = scan_images(args.data, min_side=args.inp_size)
    dataset = SRTrainDataset(
        items, 10_000, inp_size=args.inp_size, sample_q=args.sample_q, seed=0, decoded_cache=decoded_cache
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker (see liif_cli.train.data)
    try:
        for i in range(len(items)):  # fill the cache (and the OS page cache) first
            dataset[(0, i)]
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 5 or n < 32:
            dataset[(1, n)]
            n += 1
        return n / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of HR images [Set14 HR]")
    ap.add_argument("--encoders", default="edsr-baseline", help="comma-separated: edsr-baseline,rdn")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--inp-size", type=int, default=48)
    ap.add_argument("--sample-q", type=int, default=2304)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    ap.add_argument("--windows", type=int, default=5, help="timed windows (the median is reported)")
    ap.add_argument("--iters", type=int, default=1, help="iterations per window")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"# liif train speed: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, device {device}, batch {args.batch} x {args.inp_size} px LR, "
        f"{args.sample_q} queries, {args.workers} worker(s); median of {args.windows} windows x {args.iters} it"
    )
    rows = [time_training(enc.strip(), args, device) for enc in args.encoders.split(",")]
    data_rate = time_data(args)
    with tempfile.TemporaryDirectory() as tmp:
        cached_rate = time_data(args, Path(tmp))
    print(f"{'encoder':<14} {'samples/s':>10} {'it/s':>8} {'s/it':>8} {'s/it min..max':>16} {'peak RSS':>10}")
    for r in rows:
        spread = f"{r['spread'][0]:.2f}..{r['spread'][1]:.2f}"
        print(
            f"{r['encoder']:<14} {r['samples_s']:>10.2f} {r['it_s']:>8.3f} {r['s_per_it']:>8.2f} {spread:>16}"
            f" {r['rss']:>7.0f} MiB"
        )
    where = f"{args.data.parent.name}/{args.data.name}"
    print(f"data pipeline, one worker, {where}: {data_rate:.1f} samples/s decoding per sample, ", end="")
    print(f"{cached_rate:.1f} samples/s with --decoded-cache")


if __name__ == "__main__":
    main()
