"""ONNX export and the onnxruntime backend against the torch fp32 engine (issue 26, acceptance 1 and 2).

The torch fp32 engine is itself held to the official math by tests/test_engine.py; here the exported graphs,
run by onnxruntime with the shared tiles and lookups, must give the same floats (<= 1e-5) and 16-bit PNGs at
most one level apart, for the official EDSR-baseline and a random-weight RDN, at odd sizes, non-integer
anisotropic scales, a region, x1 and with a forced small tile. Measured: 1.8e-6 at most (EDSR).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import OFFICIAL, ROOT, needs_shared
from PIL import Image

from liif_cli import api
from liif_cli.cli import main
from liif_cli.imageio import quantize, read_image, write_image
from liif_cli.models import build_liif, save_official
from liif_cli.onnx_format import OPSET
from liif_cli.onnxrt import available_providers, load_export, runtime_info

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def rdn_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("rdn") / "rdn.pth"
    save_official(build_liif("rdn").eval(), "rdn", path)
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory, rdn_checkpoint) -> dict[str, Path]:
    """An export of each encoder (the official EDSR-baseline weights when ../shared is there)."""
    root = tmp_path_factory.mktemp("exports")
    out = {"rdn": api.export_model(rdn_checkpoint, root / "rdn")}
    if OFFICIAL.is_file():
        out["edsr"] = api.export_model(OFFICIAL, root / "edsr")
    return out


def _pair(checkpoint, export, tile=None):
    torch_up = api.load_model(checkpoint, device="cpu", precision="fp32", tile=tile)
    onnx_up = api.load_model(export, backend="onnxruntime", tile=tile)
    return torch_up, onnx_up


def _compare(torch_up, onnx_up, rgb, out_hw, region=None) -> float:
    a = torch_up.upscale_array(rgb, out_hw, region=region)
    b = onnx_up.upscale_array(rgb, out_hw, region=region)
    assert b.shape == a.shape and not np.isnan(b).any()
    a16 = torch_up.upscale_array(rgb, out_hw, region=region, dtype=np.uint16).astype(np.int64)
    b16 = onnx_up.upscale_array(rgb, out_hw, region=region, dtype=np.uint16).astype(np.int64)
    assert np.abs(a16 - b16).max() <= 1
    return float(np.abs(a - b).max())


CASES = [  # (input h, w), output (h, w), region, tile
    ((13, 17), (31, 44), None, None),  # non-integer, anisotropic: x2.38 in y, x2.59 in x
    ((13, 17), (13, 17), None, None),  # x1: every offset is 0 and the areas only the epsilon
    ((13, 17), (29, 23), (2.5, 1.25, 9.3, 7.7), None),  # a region
    ((21, 19), (53, 67), None, 6),  # forced small tile: 4 x 4 tiles
]


@needs_shared
@pytest.mark.parametrize(("in_hw", "out_hw", "region", "tile"), CASES)
def test_official_edsr_onnxruntime_equals_torch_fp32(exports, in_hw, out_hw, region, tile):
    torch_up, onnx_up = _pair(OFFICIAL, exports["edsr"], tile)
    rgb = np.random.default_rng(in_hw[0]).random((*in_hw, 3), dtype=np.float32)
    assert _compare(torch_up, onnx_up, rgb, out_hw, region) <= 1e-5


@pytest.mark.parametrize(
    ("in_hw", "out_hw", "region", "tile"),
    [((7, 9), (17, 22), None, None), ((7, 9), (7, 9), None, None), ((9, 7), (19, 13), (1.5, 2.0, 4.3, 5.1), 3)],
)
def test_random_rdn_onnxruntime_equals_torch_fp32(exports, rdn_checkpoint, in_hw, out_hw, region, tile):
    torch_up, onnx_up = _pair(rdn_checkpoint, exports["rdn"], tile)
    rgb = np.random.default_rng(1).random((*in_hw, 3), dtype=np.float32)
    assert _compare(torch_up, onnx_up, rgb, out_hw, region) <= 1e-5


@needs_shared
def test_16_bit_png_files_are_at_most_one_level_apart(exports, tmp_path):
    rgb = (np.random.default_rng(3).random((11, 15, 3)) * 65535).astype(np.uint16)
    src = tmp_path / "in16.png"
    write_image(api.to_decoded(rgb), src)
    outs = {}
    for backend, model in (("torch", OFFICIAL), ("onnxruntime", exports["edsr"])):
        outs[backend] = tmp_path / f"{backend}.png"
        args = ["upscale", src, "--size", "37x26", "--backend", backend, "--model", model, "-o", outs[backend], "-q"]
        result = CliRunner().invoke(main, [*map(str, args), "--precision", "fp32"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    a, b = (read_image(p) for p in outs.values())
    assert a.bits == b.bits == 16 and a.hw == (26, 37)
    a16, b16 = (quantize(img.rgb, 16).astype(np.int64) for img in (a, b))  # the PNGs' 16-bit values
    assert np.abs(a16 - b16).max() <= 1


def test_manifest_says_what_a_runtime_needs(exports, rdn_checkpoint):
    manifest = load_export(exports["rdn"]).manifest
    assert manifest["opset"] == OPSET and manifest["encoder"] == "rdn"
    assert manifest["margin"] == manifest["receptive_radius"] + 2 == 133
    assert manifest["normalization"] == {"sub": [0.5] * 3, "div": [0.5] * 3}
    from liif_cli.registry import sha256_file

    assert manifest["source_sha256"] == sha256_file(rdn_checkpoint)
    import liif_cli

    assert manifest["tool_version"] == liif_cli.__version__ and manifest["format"] == "liif-onnx"
    assert json.loads((exports["rdn"] / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in exports["rdn"].iterdir()) == [
        "encoder.onnx",
        "manifest.json",
        "query.onnx",
        "table.onnx",
    ]
    # onnxruntime loads every graph (no buffer named like a node), with the sizes left dynamic
    import onnx

    query = onnx.load(str(exports["rdn"] / "query.onnx"))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in query.graph.input}
    assert dims == {
        "table": ["h", "w", 256],
        "row_idx": [2, "R"],
        "row_rel": [2, "R"],
        "col_idx": [2, "C"],
        "col_rel": [2, "C"],
    }


@needs_shared
def test_every_checkpoint_layout_exports(tmp_path, exports):
    """mmagic and safetensors layouts export to the same graphs' outputs as the official file (mmagic with
    its own normalization, which the manifest carries)."""
    from conftest import to_mmagic

    from liif_cli.models import load_checkpoint

    official = load_checkpoint(OFFICIAL)
    mmagic = tmp_path / "mm.pth"
    torch.save({"meta": {}, "state_dict": to_mmagic(official.net.state_dict())}, mmagic)
    st = api.export_model(OFFICIAL, tmp_path / "w.safetensors", format="safetensors")
    rgb = np.random.default_rng(4).random((9, 12, 3), dtype=np.float32)
    ref = api.load_model(exports["edsr"], backend="onnxruntime").upscale_array(rgb, (20, 25))
    for src, sub in ((st, 0.5), (mmagic, 0.4488)):
        folder = api.export_model(src, tmp_path / f"{src.stem}-onnx")
        manifest = load_export(folder).manifest
        assert manifest["normalization"]["sub"][0] == sub
        onnx_up = api.load_model(folder, backend="onnxruntime")
        torch_up = api.load_model(src, device="cpu", precision="fp32")
        got = onnx_up.upscale_array(rgb, (20, 25))
        assert np.abs(got - torch_up.upscale_array(rgb, (20, 25))).max() <= 1e-5
        if sub == 0.5:
            assert np.abs(got - ref).max() <= 1e-6


def test_a_checkpoint_is_exported_once_into_the_cache(tmp_path, rdn_checkpoint, monkeypatch):
    monkeypatch.setenv("LIIF_CACHE_DIR", str(tmp_path / "cache"))
    first = api.load_model(rdn_checkpoint, backend="onnxruntime")
    folders = list((tmp_path / "cache" / "onnx").glob("v*/*"))
    assert len(folders) == 1 and folders[0].name == load_export(folders[0]).manifest["source_sha256"]
    stamp = (folders[0] / "query.onnx").stat().st_mtime_ns
    second = api.load_model(rdn_checkpoint, backend="onnxruntime")
    assert (folders[0] / "query.onnx").stat().st_mtime_ns == stamp
    assert first.weights_sha256() == second.weights_sha256() == api.load_model(rdn_checkpoint).weights_sha256()


def test_cli_export_and_its_errors(tmp_path, rdn_checkpoint):
    run = lambda *a: CliRunner().invoke(main, list(map(str, a)), catch_exceptions=False)  # noqa: E731
    out = tmp_path / "x"
    assert run("export", rdn_checkpoint, "-o", out).exit_code == 0
    again = run("export", rdn_checkpoint, "-o", out)
    assert again.exit_code == 4 and "already exists" in again.output
    assert run("export", rdn_checkpoint, "-o", out, "--overwrite").exit_code == 0
    src = tmp_path / "in.png"
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(src)
    half = run("upscale", src, "--scale", "2", "--backend", "onnxruntime", "--model", out, "--precision", "bf16")
    assert half.exit_code == 2 and "fp32 only (got --precision bf16)" in half.output
    wrong = run("upscale", src, "--scale", "2", "--model", out)
    assert wrong.exit_code == 2 and "--backend onnxruntime" in wrong.output
    (out / "query.onnx").unlink()
    broken = run("upscale", src, "--scale", "2", "--backend", "onnxruntime", "--model", out)
    assert broken.exit_code == 5 and "missing query.onnx" in broken.output


def test_library_errors_name_parameters_not_flags(tmp_path, rdn_checkpoint):
    """The library's text speaks of parameters (the CLI names them as flags, above; the server as fields)."""
    from liif_cli.errors import LiifError, OutputError, UsageError, flag_name
    from liif_cli.models import load_checkpoint
    from liif_cli.onnx_export import export_onnx
    from liif_cli.onnxrt import load_runtime

    errors: list[LiifError] = []
    with pytest.raises(UsageError) as precision:
        load_runtime(tmp_path, precision="bf16")
    errors.append(precision.value)
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError) as taken:
        export_onnx(load_checkpoint(rdn_checkpoint), tmp_path / "taken", source_sha256="", weights_sha256="")
    errors.append(taken.value)
    assert [e.params for e in errors] == [("precision",), ("overwrite",)]
    assert str(errors[0]) == "the onnxruntime backend runs fp32 only (got precision bf16)"
    assert str(errors[1]).endswith("taken: already exists (use overwrite to replace an export folder)")
    assert not any("--" in str(e) for e in errors)
    assert errors[1].render(flag_name).endswith("already exists (use --overwrite to replace an export folder)")


def test_providers_are_listed_for_liif_env():
    info = runtime_info()
    assert info["providers"] == available_providers() and info["providers"][-1] == "CPUExecutionProvider"
    import onnxruntime

    assert info["onnxruntime"] == onnxruntime.__version__


_TORCH_FREE = """
import sys
from liif_cli.cli import main
def run(*args):
    try:
        main(list(args))
    except SystemExit as exc:
        assert not exc.code, exc.code
d, model = sys.argv[1], sys.argv[2]
run("upscale", d + "/in.png", "--scale", "2.5", "--backend", "onnxruntime", "--model", model, "-o", d + "/up.png", "-q")
run("encode", d + "/in.png", "--backend", "onnxruntime", "--model", model, "-o", d + "/in.liif", "-q")
run("render", d + "/in.liif", "--size", "20x9", "--backend", "onnxruntime", "-o", d + "/r.png", "-q")
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


def test_the_onnxruntime_path_imports_no_torch(tmp_path, exports):
    """upscale, encode and render with --backend onnxruntime in a fresh interpreter: torch never loads."""
    rgba = np.random.default_rng(6).integers(0, 256, (6, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _TORCH_FREE, str(tmp_path), str(exports["rdn"])],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    up = np.asarray(Image.open(tmp_path / "up.png"))
    assert up.shape == (15, 20, 4) and Image.open(tmp_path / "r.png").size == (20, 9)


@needs_shared
def test_example_script_equals_liif_upscale_fp32(tmp_path, exports):
    """examples/onnx_runtime.py (numpy, pillow, onnxruntime) gives `liif upscale --precision fp32`'s 8-bit
    output within one level, tiled (tile 8 on a 20x26 input). .ci/run repeats it in a venv without torch."""
    src = ROOT / "examples" / "astronaut.png"
    crop = tmp_path / "in.png"
    Image.open(src).convert("RGB").crop((40, 30, 66, 50)).save(crop)
    ours = tmp_path / "liif.png"
    result = CliRunner().invoke(
        main,
        [
            "upscale",
            str(crop),
            "--size",
            "61x47",
            "--precision",
            "fp32",
            "--model",
            str(OFFICIAL),
            "-o",
            str(ours),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    theirs = tmp_path / "example.png"
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "onnx_runtime.py"),
        str(exports["edsr"]),
        str(crop),
        "--size",
        "61x47",
        "-o",
        str(theirs),
        "--tile",
        "8",
    ]
    subprocess.run(cmd, check=True, timeout=600)
    a, b = (np.asarray(Image.open(p), dtype=np.int64) for p in (ours, theirs))
    assert a.shape == b.shape == (47, 61, 3) and np.abs(a - b).max() <= 1
