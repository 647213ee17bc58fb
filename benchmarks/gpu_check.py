"""The Python steps of `benchmarks/gpu_check.sh` (see there): each writes one JSON result and exits 0 when its
check held, 1 when it did not.

    python benchmarks/gpu_check.py env --json env.json --device cuda
    python benchmarks/gpu_check.py deps --json deps.json --wheels .whl --target /tmp/site
    python benchmarks/gpu_check.py parity --json parity.json --device cuda --tolerance 1e-5
    python benchmarks/gpu_check.py bigjob --json big.json --device cuda --input 4000x3000 --size 8000x6000
    python benchmarks/gpu_check.py oomcap --json oom.json --device cuda --cap-mib 1024
    python benchmarks/gpu_check.py summary --json gpu_check.json --steps steps.jsonl

The material the checks read (official weights, fixtures and their inputs) is found through LIIF_SHARED, as in
the tests (`benchmarks/gpu_prepare.sh` copies it into the checkout, since `../shared` does not travel to the
GPU machine). A result's "ok" is true (the check held), false (it did not) or null (skipped, with "skipped").
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIIF_SHARED") or ROOT.parent / "shared")
WEIGHTS = SHARED / "weights" / "edsr-baseline-liif.pth"
TEST_DEPS = ("pytest",)  # beyond the package's own dependencies, what the CUDA and engine tests import


def write(path: str, result: dict) -> int:
    Path(path).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps(result, default=str)[:2000])
    return 0 if result.get("ok") is not False else 1


def wh(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def cuda_peak(device) -> dict:
    import torch

    if device.type != "cuda":
        return {}
    return {
        "gpu_peak_allocated_bytes": torch.cuda.max_memory_allocated(device),
        "gpu_peak_reserved_bytes": torch.cuda.max_memory_reserved(device),
    }


# ---------------------------------------------------------------------------------------------- env
def cmd_env(args) -> int:
    import torch

    info = {
        "ok": True,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_threads": torch.get_num_threads(),
        "tf32_defaults": {
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        },
    }
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            info.update(ok=False, error="torch sees no CUDA device")
        else:
            props = torch.cuda.get_device_properties(0)
            info |= {
                "device_name": torch.cuda.get_device_name(0),
                "capability": list(torch.cuda.get_device_capability(0)),
                "total_memory_bytes": props.total_memory,
                "multiprocessors": props.multi_processor_count,
                "bf16_supported": torch.cuda.is_bf16_supported(),
            }
    else:
        info["device_name"] = platform.processor() or platform.machine()
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm", "--format=csv"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["nvidia_smi"] = f"unavailable: {exc}"
    return write(args.json, info)


# --------------------------------------------------------------------------------------------- deps
def _requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"]) + list(TEST_DEPS)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _unmet(requirements: list[str]) -> dict[str, str]:
    """{distribution: why} for the requirements this interpreter does not satisfy."""
    from packaging.requirements import Requirement

    unmet = {}
    for text in requirements:
        req = Requirement(text)
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            unmet[_normal(req.name)] = "missing"
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            unmet[_normal(req.name)] = f"{version} does not satisfy {req.specifier}"
    return unmet


def cmd_deps(args) -> int:
    """Which of the project's dependencies this interpreter lacks; install those from the carried wheels
    (offline, into --target, which the caller puts on PYTHONPATH); then check again in a fresh interpreter."""
    requirements = _requirements()
    unmet = _unmet(requirements)
    wheels = {}
    for whl in sorted(Path(args.wheels).glob("*.whl")) if Path(args.wheels).is_dir() else []:
        wheels[_normal(whl.name.split("-")[0])] = whl
    chosen = [wheels[name] for name in unmet if name in wheels]
    if args.all_wheels:  # the dry run: prove the carried wheels install offline even where nothing is missing
        chosen = list(wheels.values())
    result = {"unmet_before": unmet, "wheels_carried": sorted(w.name for w in wheels.values())}
    result["installed"] = [w.name for w in chosen]
    if chosen:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        cmd += ["--no-cache-dir", "--upgrade", "--target", args.target, *map(str, chosen)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        result["pip_rc"] = proc.returncode
        if proc.returncode:
            result["pip_stderr"] = proc.stderr[-2000:]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([args.target, str(ROOT), os.environ.get("PYTHONPATH", "")]))
    probe = "import json; from gpu_check import _unmet, _requirements; "
    probe += "import liif_cli.api; print(json.dumps(_unmet(_requirements())))"
    check = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=str(ROOT / "benchmarks")
    )
    if check.returncode == 0:
        result["unmet_after"] = json.loads(check.stdout.strip().splitlines()[-1])
    else:
        result["unmet_after"] = {"?": check.stderr.strip()[-500:]}
    result["ok"] = not result["unmet_after"] and result.get("pip_rc", 0) == 0
    return write(args.json, result)


# ------------------------------------------------------------------------------------------- parity
def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def cmd_parity(args) -> int:
    """The official fixtures through the API on this device and precision: max |diff| against each."""
    from liif_cli.api import load_model

    cases = json.loads((SHARED / "fixtures" / "manifest.json").read_text())["cases"]
    if args.cases:
        cases = [c for c in cases if c["name"] in args.cases.split(",")]
    up = load_model(WEIGHTS, device=args.device, precision=args.precision)
    rows, worst = [], 0.0
    for case in cases:
        w, h = case["output_size_wh"]
        t0 = time.perf_counter()
        out = up.upscale_array(read_rgb(SHARED / case["input"]), (h, w))
        seconds = time.perf_counter() - t0
        diff = float(np.abs(out - np.load(SHARED / case["file"])).max())
        worst = max(worst, diff)
        rows.append({"case": case["name"], "out_wh": [w, h], "max_diff": diff, "seconds": seconds})
        print(f"{case['name']:<24} {w}x{h}  max|diff| {diff:.2e}  {seconds:.2f} s", flush=True)
    result = {"device": str(up.device), "precision": up.precision, "tolerance": args.tolerance, "cases": rows}
    return write(args.json, result | {"max_diff": worst, "ok": bool(rows) and worst <= args.tolerance})


# ------------------------------------------------------------------------------------------- bigjob
def synthetic_png(path: Path, w: int, h: int) -> None:
    """A textured colour image (ramps, rings, noise): every latent differs, nothing compresses to nothing."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.ogrid[0:h, 0:w]
    r = (255 * yy / max(1, h - 1)).astype(np.float32) + np.zeros((1, w), np.float32)
    g = (255 * xx / max(1, w - 1)).astype(np.float32) + np.zeros((h, 1), np.float32)
    b = 127.5 + 127.5 * np.sin(np.hypot(yy - h / 2, xx - w / 2, dtype=np.float32) / 9.0)
    rgb = np.stack([r, g, b], axis=-1)
    rgb += rng.normal(0, 12, size=rgb.shape).astype(np.float32)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, compress_level=1)


def cmd_bigjob(args) -> int:
    """`liif upscale --device D` on one large synthetic image with the tile picked automatically, as a fresh
    process (`upscale-child`): its time, its peak device memory against the automatic tile's forecast, and
    whether the out-of-memory retry ran (its warning on stderr)."""
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    (iw, ih), (ow, oh) = wh(args.input), wh(args.size)
    src, dst, res = work / f"big_{iw}x{ih}.png", work / f"big_{ow}x{oh}.jpg", work / "bigjob_child.json"
    t0 = time.perf_counter()
    synthetic_png(src, iw, ih)
    made = time.perf_counter() - t0
    dst.unlink(missing_ok=True)
    cli = ["upscale", str(src), "--size", f"{ow}x{oh}", "--device", args.device, "-n", str(WEIGHTS)]
    cli += ["--precision", args.precision, "-o", str(dst), "-q"]
    cmd = [sys.executable, str(Path(__file__).resolve()), "upscale-child", "--result", str(res), "--", *cli]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    child = json.loads(res.read_text()) if res.is_file() else {}
    retried = [line for line in proc.stderr.splitlines() if "out of memory" in line.lower()]
    result = {"input_wh": [iw, ih], "output_wh": [ow, oh], "make_input_seconds": made, "cli": ["liif", *cli]}
    result |= {"rc": proc.returncode, "process_seconds": seconds, "oom_retry": bool(retried), "oom_lines": retried}
    result |= child
    if dst.is_file():
        from PIL import Image

        with Image.open(dst) as im:
            result["written_wh"] = list(im.size)
        result["written_bytes"] = dst.stat().st_size
        dst.unlink()
    peak, forecast = child.get("gpu_peak_allocated_bytes"), child.get("forecast_peak_bytes")
    if peak is not None and forecast:
        result["within_forecast"] = peak <= forecast
    result["ok"] = (
        proc.returncode == 0
        and result.get("written_wh") == [ow, oh]
        and not retried
        and result.get("within_forecast", True) is not False
    )
    return write(args.json, result)


def cmd_upscale_child(args) -> int:
    """The big job's process: the automatic tile and its forecast (the engine's own estimate), then the CLI
    itself in this process, and the allocator's peak as it exits."""
    import atexit

    import torch

    from liif_cli.api import load_model

    argv = args.cli
    opt = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("-")}
    from PIL import Image

    with Image.open(argv[1]) as im:
        in_hw = (im.height, im.width)
    ow, oh = wh(opt["--size"])
    up = load_model(WEIGHTS, device=opt["--device"], precision=opt["--precision"])
    device = up.device
    seconds, peak = up.renderer.estimate(in_hw, (oh, ow))
    info = {"device": str(device), "precision": up.precision, "auto_tile": up.renderer.tile_size()}
    info |= {"forecast_seconds": seconds, "forecast_peak_bytes": peak, "forecast_line": up.estimate(in_hw, (oh, ow))}
    del up
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()

    def report() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        info["cli_seconds"] = time.perf_counter() - started
        Path(args.result).write_text(json.dumps(info | cuda_peak(device), indent=1) + "\n")

    atexit.register(report)
    from liif_cli.cli import main

    sys.argv = ["liif", *argv]
    main()
    return 0


# ------------------------------------------------------------------------------------------- oomcap
def cmd_oomcap(args) -> int:
    """The out-of-memory retry made to happen: the process capped at --cap-mib of device memory renders with a
    tile far too large for it; the engine must halve the tile until it fits, and give the uncapped output."""
    import warnings

    import torch

    from liif_cli.api import load_model
    from liif_cli.devices import resolve_device

    device = resolve_device(args.device)
    (iw, ih), out_hw = wh(args.input), None
    rng = np.random.default_rng(3)
    rgb = np.clip(np.linspace(0, 1, iw)[None, :, None] * 0.7 + 0.3 * rng.random((ih, iw, 3)), 0, 1).astype(np.float32)
    out_hw = (2 * ih, 2 * iw)
    result = {"device": str(device), "input_wh": [iw, ih], "output_wh": [out_hw[1], out_hw[0]]}
    result |= {"precision": "fp32", "start_tile": args.tile, "cap_mib": args.cap_mib}
    reference = load_model(WEIGHTS, device=args.device, precision="fp32").upscale_array(rgb, out_hw)
    capped = device.type == "cuda"
    if capped:  # set_per_process_memory_fraction wants an index; "cuda" alone has none
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, (args.cap_mib << 20) / total), device)
        torch.cuda.reset_peak_memory_stats(device)
    try:
        up = load_model(WEIGHTS, device=args.device, precision="fp32", tile=args.tile)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            out = up.upscale_array(rgb, out_hw)
            result["seconds"] = time.perf_counter() - t0
        result |= cuda_peak(device)
    finally:
        if capped:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()
    messages = [str(w.message) for w in caught]
    same_tile = load_model(WEIGHTS, device=args.device, precision="fp32", tile=up.renderer.options.tile)
    result["final_tile"] = up.renderer.options.tile
    result["warnings"] = messages
    result["retry_ran"] = any("out of memory" in m for m in messages)
    result["max_diff_vs_auto_tile"] = float(np.abs(out - reference).max())
    result["equal_to_uncapped_same_tile"] = bool(np.array_equal(out, same_tile.upscale_array(rgb, out_hw)))
    if not capped:
        result |= {"ok": None, "skipped": f"no memory cap on {device.type}: the renders ran, the retry cannot"}
    else:
        result["ok"] = (
            result["retry_ran"]
            and result["final_tile"] < args.tile
            and result["max_diff_vs_auto_tile"] <= args.tolerance
            and result["gpu_peak_reserved_bytes"] <= args.cap_mib << 20
        )
    return write(args.json, result)


# ------------------------------------------------------------------------------------------ summary
def _junit(path: Path) -> dict:
    import xml.etree.ElementTree as ET

    if not path.is_file():
        return {}
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for suite in ET.parse(path).getroot().iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{case.get('classname')}::{case.get('name')}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts | {"failed": failed}


def cmd_summary(args) -> int:
    """Merge the steps' records (rc, seconds) with their results into one JSON; a one-line-per-step table."""
    work = Path(args.work)
    steps = []
    for line in Path(args.steps).read_text().splitlines():
        step = json.loads(line)
        result_file = work / f"{step['name']}.json"
        if result_file.is_file():
            try:
                step["result"] = json.loads(result_file.read_text())
            except json.JSONDecodeError as exc:
                step["result"] = {"unreadable": str(exc)}
        junit = _junit(work / f"{step['name']}.xml")
        if junit:
            step["result"] = junit
        ok = (step.get("result") or {}).get("ok", True)
        if step["status"] == "done":
            failed_tests = junit and (junit["failures"] or junit["errors"])
            if step["rc"] != 0 or ok is False or failed_tests:
                step["status"] = "failed"
            elif ok is None:
                step["status"] = "skipped"
            else:
                step["status"] = "passed"
        steps.append(step)
    summary = {"mode": args.mode, "device": args.device, "started_utc": args.started, "budget_s": int(args.budget)}
    summary |= {"seconds": sum(s.get("seconds", 0) for s in steps)}
    summary |= {"passed": all(s["status"] in ("passed", "skipped", "not selected") for s in steps), "steps": steps}
    Path(args.json).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"{'step':<22}{'status':<11}{'seconds':>8}  note")
    for s in steps:
        print(f"{s['name']:<22}{s['status']:<11}{s.get('seconds', 0):>8.1f}  {_note(s)}")
    return 0


def _note(step: dict) -> str:
    r = step.get("result") or {}
    if "tests" in r:
        return f"{r['passed']} passed, {r['failures'] + r['errors']} failed, {r['skipped']} skipped"
    if "paths" in r:
        return " ".join(
            f"{p} {v['mp_per_s']:.3g}MP/s x{v['speedup']:.2f} d{v['max_diff']:.0e}" for p, v in r["paths"].items()
        )
    if "max_diff" in r:
        return f"max|diff| {r['max_diff']:.2e} (<= {r.get('tolerance')})"
    if "forecast_peak_bytes" in r or "process_seconds" in r:
        peak = r.get("gpu_peak_allocated_bytes")
        peak = f"{peak / 2**30:.2f} GiB" if peak is not None else "n/a"
        fc = r.get("forecast_peak_bytes")
        fc = f"{fc / 2**30:.2f} GiB" if fc else "n/a"
        return f"{r.get('process_seconds', 0):.1f} s, tile {r.get('auto_tile')}, peak {peak} / forecast {fc}, retry {r.get('oom_retry')}"
    if "retry_ran" in r:
        return f"retry {r['retry_ran']}, tile {r.get('start_tile')}->{r.get('final_tile')}, {r.get('skipped', '')}"
    if "unmet_before" in r:
        return f"lacked {sorted(r['unmet_before']) or 'nothing'}, installed {r['installed'] or 'none'}"
    if "device_name" in r:
        return f"{r.get('device_name')}, torch {r.get('torch')}"
    return r.get("error", "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("env")
    p.add_argument("--json", required=True)
    p.add_argument("--device", default="cuda")
    p = sub.add_parser("deps")
    p.add_argument("--json", required=True)
    p.add_argument("--wheels", default=str(ROOT / ".whl"))
    p.add_argument("--target", required=True)
    p.add_argument("--all-wheels", action="store_true", help="install every carried wheel (the dry run)")
    p = sub.add_parser("parity")
    p.add_argument("--json", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--tolerance", type=float, default=1e-5)
    p.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    p = sub.add_parser("bigjob")
    p.add_argument("--json", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="auto")
    p.add_argument("--input", default="4000x3000")
    p.add_argument("--size", default="8000x6000")
    p = sub.add_parser("upscale-child")
    p.add_argument("--result", required=True)
    p.add_argument("cli", nargs=argparse.REMAINDER)
    p = sub.add_parser("oomcap")
    p.add_argument("--json", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--input", default="1500x1500")
    p.add_argument("--tile", type=int, default=2048)
    p.add_argument("--cap-mib", type=int, default=1024)
    p.add_argument("--tolerance", type=float, default=1e-5)
    p = sub.add_parser("summary")
    p.add_argument("--json", required=True)
    p.add_argument("--steps", required=True)
    p.add_argument("--work", required=True)
    for name in ("mode", "device", "started"):
        p.add_argument(f"--{name}", default="")
    p.add_argument("--budget", type=int, default=0)
    args = ap.parse_args()
    if getattr(args, "cli", None) and args.cli[0] == "--":
        args.cli = args.cli[1:]
    try:
        return globals()[f"cmd_{args.cmd.replace('-', '_')}"](args)
    except Exception as exc:  # the step failed: its record says how, the traceback goes to the log
        import traceback

        traceback.print_exc()
        if getattr(args, "json", None) and args.cmd != "summary":
            write(
                args.json, {"ok": False, "error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:500]}"}
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
