"""`BenchPlan`, the one value `run_bench` takes: its checks name the parameter (the CLI shows the flag, the library
speaks plain words), it is normalised once, a run of a real (random-weight) model scores exactly what the model
outputs, and the runner draws no report (it does not reach the report modules at all)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image
from test_import_graph import import_graph

from liif_cli.api import load_model
from liif_cli.bench import BenchPlan, run_bench
from liif_cli.bench.datasets import read_rgb
from liif_cli.bench.protocols import PaperProtocol
from liif_cli.errors import OutputError, UsageError, flag_name
from liif_cli.load_options import LoadOptions


def _set5(root: Path, names=("baby", "bird"), side=48, lr_scales=(2,)) -> Path:
    """A Set5 layout of crops of the repository's example photo, with provided LR (PIL bicubic) at `lr_scales`."""
    photo = Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")
    (root / "Set5" / "HR").mkdir(parents=True)
    for i, name in enumerate(names):
        hr = photo.crop((20 * i, 10 * i, 20 * i + side, 10 * i + side))
        hr.save(root / "Set5" / "HR" / f"{name}.png")
        for s in lr_scales:
            (root / "Set5" / "LR_bicubic" / f"X{s}").mkdir(parents=True, exist_ok=True)
            hr.resize((side // s, side // s), Image.BICUBIC).save(
                root / "Set5" / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png"
            )
    return root


@pytest.mark.parametrize(
    ("changes", "param", "flag"),
    [
        ({"datasets": []}, "dataset", "give at least one --dataset"),
        ({"datasets": ["set5", "set6"]}, "dataset", "unknown --dataset 'set6'"),
        ({"models": ()}, "model", "give at least one --model"),
        ({"protocol": "matlab"}, "protocol", "unknown --protocol 'matlab'"),
        ({"scales": "2,x"}, "scales", "--scales: 'x' is not a number"),
        ({"scales": [2, 2.5]}, "scales", "--scales: '2.5' is not an integer scale >= 1"),
        ({"scales": [0]}, "scales", "--scales: '0' is not an integer scale >= 1"),
        ({"scales": ","}, "scales", "--scales: no scale given"),
        ({"limit": 0}, "limit", "--limit must be a whole number >= 1, got 0"),
        ({"limit": 2.0}, "limit", "--limit must be a whole number >= 1, got 2.0"),
        ({"limit": True}, "limit", "--limit must be a whole number >= 1, got True"),
    ],
)
def test_plan_rejects_bad_values_naming_the_parameter(changes, param, flag):
    fields = {"datasets": ["set5"], "models": ["bicubic"], **changes}
    with pytest.raises(UsageError) as caught:
        BenchPlan(**fields)
    exc = caught.value
    assert exc.param == param and exc.exit_code == 2
    assert exc.render(flag_name) == flag or exc.render(flag_name).startswith(flag + " (")
    assert "--" not in str(exc)  # the library's own text speaks of parameters, not flags


def test_plan_is_normalised_once_and_frozen(tmp_path):
    plan = BenchPlan("SET5", Path("a/m.pth"), protocol=" Paper", scales="4, 2,4", data_dir=str(tmp_path), limit=3)
    assert plan.datasets == ("set5",) and plan.models == ("a/m.pth",) and plan.protocol == "paper"
    assert plan.scales == (4, 2) and plan.data_dir == tmp_path and plan.save_images is None
    assert plan.load == LoadOptions() and plan.strips is False
    assert plan.scales_for("set5") == (4, 2)
    defaults = BenchPlan(["div2k", "set14", "Set14"], protocol="paper")
    assert defaults.datasets == ("div2k", "set14") and defaults.models == ("edsr-baseline",)
    assert defaults.scales_for("div2k") == (2, 3, 4, 6, 12, 18, 24, 30) and defaults.scales_for("set14") == (
        2,
        3,
        4,
        6,
        8,
    )
    # the report's strips need the bicubic baseline: it runs first when the models leave it out
    assert BenchPlan(["set5"], ["m", "n"], strips=True).models == ("bicubic", "m", "n")
    assert BenchPlan(["set5"], ["m", "bicubic"], strips=True).models == ("m", "bicubic")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.limit = 1  # type: ignore[misc]
    assert dataclasses.replace(plan, limit=1).limit == 1
    with pytest.raises(UsageError):
        dataclasses.replace(plan, limit=-1)  # a changed copy is checked again


def test_run_bench_scores_what_a_random_weight_model_outputs(tmp_path, model_path):
    """The whole library path on a real checkpoint (random weights): every per-image score is the protocol's score
    of that model's own output, the row is their mean, and the settings say what ran."""
    data = _set5(tmp_path / "data")
    plan = BenchPlan(
        ["set5"], [model_path], protocol="paper", scales=[2, 3], data_dir=data, load=LoadOptions(device="cpu")
    )
    res = run_bench(plan)
    assert [(r.model, r.scale, r.images, r.lr_source) for r in res.rows] == [
        (model_path.name, 2, 2, "provided"),
        (model_path.name, 3, 2, "bicubic"),
    ]
    assert res.models == [model_path.name] and res.datasets == ["set5"] and res.strips == []
    assert res.settings["engines"][model_path.name] == {"device": "cpu", "precision": "fp32"}
    assert res.settings["scales"] == {"set5": [2, 3]} and res.settings["data_dir"] == str(data)

    up = load_model(model_path, LoadOptions(device="cpu", precision="fp32"))
    proto = PaperProtocol()
    for row in res.rows:
        for score, name in zip(row.per_image, ("baby", "bird"), strict=True):
            hr = read_rgb(data / "Set5" / "HR" / f"{name}.png")
            lr = read_rgb(data / "Set5" / "LR_bicubic" / "X2" / f"{name}x2.png") if row.scale == 2 else None
            pair = proto.pair(name, hr, row.scale, lr)
            pred = up.upscale_array(pair.lr.astype(np.float32) / np.float32(255), pair.hr.shape[:2])
            assert score.name == name and score.psnr == proto.score(pred, pair.hr, row.scale, "set5").psnr
        assert math.isfinite(row.psnr) and row.psnr == pytest.approx(
            np.mean([x.psnr for x in row.per_image]), abs=1e-12
        )


def test_run_bench_collects_strips_only_when_asked_and_checks_save_images(tmp_path, model_path):
    data = _set5(tmp_path / "data", names=("baby",))
    res = run_bench(BenchPlan(["set5"], [model_path], protocol="paper", scales=[2], data_dir=data, strips=True))
    assert res.models == ["bicubic", model_path.name]
    (strip,) = res.strips
    assert (strip.dataset, strip.image, strip.scale, strip.lead) == ("set5", "baby", 2, model_path.name)
    assert [p.label for p in strip.ordered(res.models)] == ["bicubic", model_path.name, "ground truth"]
    assert "strips" not in res.to_dict()  # PNG crops are the HTML report's, never the JSON's

    not_a_folder = tmp_path / "out.png"
    not_a_folder.write_bytes(b"x")
    with pytest.raises(OutputError) as caught:
        run_bench(BenchPlan(["set5"], ["bicubic"], data_dir=data, save_images=not_a_folder))
    assert caught.value.param == "save_images"
    assert caught.value.render(flag_name) == f"--save-images {not_a_folder}: exists and is not a folder"


def test_the_runner_draws_no_report():
    """The runner returns what a report needs; it reaches neither report module (imports at any depth)."""
    graph = import_graph()
    seen, todo = set(), ["liif_cli.bench.runner"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    assert "liif_cli.bench.plan" in seen and "liif_cli.bench.strips" in seen  # the graph is the real one
    assert not seen & {"liif_cli.bench.html_report", "liif_cli.bench.report", "liif_cli.cli"}
