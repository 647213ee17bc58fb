"""`liif bench --report`: the bicubic baseline against the standard row, the comparison-crop choice, the HTML
file parsed (self-contained, table, plots, one strip per image and scale), and the file opened in a real
headless Chromium (no console errors, every image decoded, a screenshot that is not blank)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DATASETS, ROOT, needs_datasets
from PIL import Image

from liif_cli.bench import bicubic, protocols, strips
from liif_cli.bench.html_report import write_report
from liif_cli.bench.plan import BenchPlan
from liif_cli.bench.runner import run_bench
from liif_cli.cli import main
from liif_cli.errors import OutputError, UsageError
from liif_cli.registry import cached_path, get_entry

needs_shared = needs_datasets
SET5 = ["baby", "bird", "butterfly", "head", "woman"]


# --- the bicubic baseline --------------------------------------------------------------------------------------


@needs_shared
def test_bicubic_is_the_standard_row_on_set5_paper():
    """Acceptance 2: 33.66 / 30.39 / 28.42 (the SR literature's bicubic row) within 0.05 dB."""
    res = run_bench(BenchPlan(["set5"], ["bicubic"], protocol="paper", scales=[2, 3, 4], data_dir=DATASETS))
    got = {r.scale: r.psnr for r in res.rows}
    standard = {2: 33.66, 3: 30.39, 4: 28.42}
    for s, value in standard.items():
        assert abs(got[s] - value) < 0.05, (s, got[s], value)
    assert [r.published_psnr for r in res.rows] == [33.66, 30.39, 28.42]  # shown beside ours
    assert all(r.lr_source == "provided" for r in res.rows)
    assert res.settings["engines"]["bicubic"] == {"device": "cpu", "precision": "uint8 (Pillow)"}


def test_bicubic_is_pillow_cubic_of_the_uint8_lr():
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    out = bicubic.BicubicUpscaler().upscale_array(lr.astype(np.float32) / np.float32(255), (14, 18))
    want = np.asarray(Image.fromarray(lr).resize((18, 14), Image.Resampling.BICUBIC))
    assert out.dtype == np.float32 and np.array_equal(np.rint(out * 255).astype(np.uint8), want)


# --- choosing the crop -----------------------------------------------------------------------------------------


def test_crop_is_where_the_model_gains_most_over_bicubic():
    """A model that is exact inside one square and bicubic elsewhere: the strip's crop is that square."""
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (96, 120, 3), dtype=np.uint8)
    lr = np.asarray(Image.fromarray(hr).resize((60, 48), Image.Resampling.BICUBIC))
    pair = protocols.Pair("noise", 2, lr, hr, "provided")
    pred = bicubic.bicubic_upscale(lr, (96, 120)).astype(np.float32) / 255
    pred[30:50, 70:90] = hr[30:50, 70:90] / 255.0  # the model's better region
    col = strips.StripCollector(protocols.get_protocol("paper"), crop=20)
    col.add("m", "set5", pair, pred, 12.3)
    col.add("bicubic", "set5", pair, bicubic.bicubic_upscale(lr, (96, 120)).astype(np.float32) / 255, 10.0)
    (strip,) = col.strips()
    assert strip.box == (30, 70, 20) and strip.lead == "m"
    panels = strip.ordered(["bicubic", "m"])
    assert [p.label for p in panels] == ["bicubic", "m", "ground truth"]
    assert panels[1].crop_psnr > 100 and panels[0].crop_psnr < 20  # exact (to float32) in the crop; bicubic not
    assert (panels[0].image_psnr, panels[1].image_psnr) == (10.0, 12.3)
    assert Image.open(io.BytesIO(panels[2].png)).size == (20, 20)


# --- the HTML file ---------------------------------------------------------------------------------------------


class _Doc(HTMLParser):
    """Every tag with its attributes, the text, and the comparison strips' panel counts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.strips: list[int] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "section" and a.get("class") == "strip":
            self.strips.append(0)
        if tag == "img" and a.get("class") == "crop":
            self.strips[-1] += 1


def _parse(path: Path) -> _Doc:
    doc = _Doc()
    doc.feed(path.read_text(encoding="utf-8"))
    return doc


def _assert_self_contained(path: Path, doc: _Doc) -> None:
    text = path.read_text(encoding="utf-8")
    assert "http" not in text.lower()
    for tag, attrs in doc.tags:
        assert tag not in ("link", "script", "iframe", "object"), tag
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith("data:"), (tag, key, attrs[key][:60])
    for tag, attrs in doc.tags:  # inside each SVG plot: references to its own elements only
        if tag == "img" and attrs["src"].startswith("data:image/svg+xml;base64,"):
            svg = base64.b64decode(attrs["src"].split(",", 1)[1]).decode()
            assert all(ref.startswith("#") for ref in re.findall(r'href="([^"]*)"', svg))
            assert "url(http" not in svg and "<image" not in svg


def _tiny_set5(root: Path, names=("baby", "bird"), side=96) -> Path:
    """A Set5 layout (HR only: LR is made by PIL) holding `side` x `side` crops of the repository's 128 x 128
    example photo, under Set5's first names, so that it needs nothing beside the checkout."""
    (root / "Set5" / "HR").mkdir(parents=True)
    photo = Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")
    for i, name in enumerate(names):
        box = (32 * i, 32 * i, 32 * i + side, 32 * i + side)
        photo.crop(box).save(root / "Set5" / "HR" / f"{name}.png")
    return root


def _tiny_sets(root: Path) -> Path:
    """Set5 and Set14 layouts of one 48 x 48 crop each, with the x4 LR image made by PIL bicubic."""
    photo = Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")
    for i, (name, image) in enumerate((("Set5", "baby"), ("Set14", "baboon"))):
        hr = photo.crop((20 + 50 * i, 30, 68 + 50 * i, 78))
        (root / name / "HR").mkdir(parents=True)
        (root / name / "LR_bicubic" / "X4").mkdir(parents=True)
        hr.save(root / name / "HR" / f"{image}.png")
        hr.resize((12, 12), Image.BICUBIC).save(root / name / "LR_bicubic" / "X4" / f"{image}x4.png")
    return root


@pytest.fixture(scope="module")
def edsr_report(tmp_path_factory, official_weights):
    """Acceptance 1's command (`--model edsr-baseline --model bicubic --report`) on two small crops at two
    scales, to take seconds (the full command takes minutes on a CPU); the named model comes from a cache holding
    the official checkpoint, offline."""
    tmp = tmp_path_factory.mktemp("report")
    data = _tiny_set5(tmp / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIIF_CACHE_DIR", str(tmp / "cache"))
        mp.setenv("LIIF_OFFLINE", "1")
        dest = cached_path(get_entry("edsr-baseline"))
        dest.parent.mkdir(parents=True)
        shutil.copyfile(official_weights, dest)
        out = tmp / "out" / "r.html"
        args = ["bench", "--dataset", "set5", "--data-dir", str(data), "--protocol", "paper", "--scales", "2,8"]
        args += ["--model", "edsr-baseline", "--model", "bicubic", "--limit", "2", "--report", str(out), "-q"]
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_report_is_one_self_contained_file_with_table_plot_and_strips(edsr_report):
    """Acceptance 1 (on --limit 2): no external reference, a table, a plot, a strip per image and scale."""
    path, output = edsr_report
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.html"]  # nothing left beside it
    doc = _parse(path)
    _assert_self_contained(path, doc)
    text = path.read_text(encoding="utf-8")
    assert sum(t == "table" for t, _ in doc.tags) >= 2  # results and settings
    assert "image-rendering: pixelated" in text
    plots = [a for t, a in doc.tags if t == "img" and a.get("class") == "plot"]
    assert len(plots) == 1 and plots[0]["src"].startswith("data:image/svg+xml;base64,")  # paper: PSNR only
    # one strip per image and scale, each bicubic + edsr-baseline + ground truth, in that order
    assert len(doc.strips) == 2 * 2 and set(doc.strips) == {3}
    assert re.findall(r"<h3>Set5 / (\w+)</h3>", text) == SET5[:2]
    assert re.findall(r"<h4>x(\d+)</h4>", text) == ["2", "8", "2", "8"]
    crops = [a for t, a in doc.tags if t == "img" and a.get("class") == "crop"]
    for a in crops:
        img = Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1])))
        assert img.mode == "RGB" and img.size[0] == img.size[1] and int(a["width"]) == 3 * img.size[0]
    assert [a["alt"].rsplit(" ", 1)[-1] for a in crops[:3]] == ["bicubic", "edsr-baseline", "truth"]
    # the table: both models at both scales; edsr-baseline beside the official code's Set5 figures
    assert "37.9877" in text and "26.9824" in text and "official code" in text
    rows = re.findall(r'<tr><td class="l">(bicubic|edsr-baseline)</td><td class="l">paper</td>.*?<td>x(\d+)</td>', text)
    assert sorted(rows) == [("bicubic", "2"), ("bicubic", "8"), ("edsr-baseline", "2"), ("edsr-baseline", "8")]
    # the crop shows the model's gain: its panel PSNR beats bicubic's on every strip
    for strip_html in text.split('<section class="strip">')[1:]:
        psnrs = [float(x) for x in re.findall(r"<br>([\d.]+) dB", strip_html)]
        assert len(psnrs) == 2 and psnrs[1] > psnrs[0], psnrs
    assert "torch " in text and "s / image" in text and "Mpx/s" in text  # run settings
    assert "Set5" in output  # the console table is still printed


def test_report_adds_bicubic_and_handles_two_datasets_in_mmagic(tmp_path):
    """With --report and no bicubic asked for, bicubic is added; mmagic adds an SSIM plot per dataset."""
    out = tmp_path / "m.html"
    data = _tiny_sets(tmp_path / "data")
    res = run_bench(
        BenchPlan(["set5", "set14"], ["bicubic"], protocol="mmagic", scales=[3], data_dir=data, limit=1, strips=True)
    )
    write_report(res, out)
    assert res.models == ["bicubic"] and len(res.rows) == 2
    doc = _parse(out)
    _assert_self_contained(out, doc)
    assert len([a for t, a in doc.tags if t == "img" and a.get("class") == "plot"]) == 4  # PSNR + SSIM, 2 sets
    assert doc.strips == [2] * 2  # bicubic and the ground truth, at the place bicubic does worst
    assert "where bicubic does worst" in out.read_text(encoding="utf-8")

    # a model without bicubic: bicubic joins (first), through the stub loader used for any other name
    plan = BenchPlan(["set5"], ["stub"], protocol="paper", scales=[4], data_dir=data, limit=1, strips=True)
    assert plan.models == ("bicubic", "stub")
    res = run_bench(plan, loader=lambda m: bicubic.BicubicUpscaler())
    assert res.models == ["bicubic", "stub"] and len(res.strips) == 1


def test_report_target_errors(tmp_path):
    res = run_bench(BenchPlan(["set5"], ["bicubic"], scales=[3], data_dir=_tiny_set5(tmp_path / "data"), limit=1))
    with pytest.raises(OutputError, match="is a folder") as caught:
        write_report(res, tmp_path)
    assert caught.value.param == "report" and "--" not in str(caught.value)
    with pytest.raises(UsageError, match="report needs a file name"):
        write_report(res, "-")
    result = CliRunner().invoke(main, ["bench", "--dataset", "set5", "--report", str(tmp_path), "-q"])
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_cli_report_is_written_after_the_run_from_the_result(tmp_path, model_path):
    """`liif bench --report` with a real (random-weight) checkpoint: the CLI asks for the report after the run;
    bicubic joins the models, one strip per image and scale, the file named on stderr."""
    data = _tiny_set5(tmp_path / "data", names=("baby",), side=48)
    out = tmp_path / "r.html"
    args = ["bench", "--dataset", "set5", "--data-dir", str(data), "--model", str(model_path), "--protocol", "paper"]
    args += ["--scales", "2,3", "--report", str(out), "--json", str(tmp_path / "r.json"), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == f"wrote {out}"
    doc = _parse(out)
    _assert_self_contained(out, doc)
    assert doc.strips == [3, 3]  # x2 and x3: bicubic, the model, the ground truth
    text = out.read_text(encoding="utf-8")
    assert re.findall(r"<h4>x(\d+)</h4>", text) == ["2", "3"] and f"where {model_path.name} gains most" in text
    assert "--" not in re.sub(r"<style>.*?</style>", "", text, flags=re.S).replace("<!--", "")  # no flags in the page


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("file/r.html", OutputError.exit_code, "error: --report {tmp}/file/r.html: {tmp}/file is not a folder"),
        ("-", UsageError.exit_code, "error: --report needs a file name (the report is HTML, not for stdout)"),
    ],
)
def test_cli_bad_report_target_fails_before_any_work(tmp_path, target, code, message):
    """Checked before the plan, the sets and the model: here the data folder and the model do not exist, and the
    error is still the report's."""
    (tmp_path / "file").write_bytes(b"not a folder")
    report = str(tmp_path / target) if target != "-" else target
    args = ["bench", "--dataset", "set5", "--data-dir", str(tmp_path / "none"), "--model", str(tmp_path / "no.pth")]
    result = CliRunner().invoke(main, [*args, "--report", report, "-q"])
    assert result.exit_code == code
    assert result.output.strip().splitlines() == [message.format(tmp=tmp_path)]


def test_plotting_leaves_matplotlib_settings_alone():
    import matplotlib

    from liif_cli.bench.html_report import _plot
    from liif_cli.bench.runner import Row

    before = (matplotlib.get_backend(), dict(matplotlib.rcParams))
    rows = [Row("m", "set5", s, "paper", 1, 30.0 - s, None, None, 0.1, 0.1, 0.1) for s in (2, 4, 8)]
    svg = _plot(rows, "psnr", "PSNR (dB)", "t").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert (matplotlib.get_backend(), dict(matplotlib.rcParams)) == before


# --- in a real browser -----------------------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _not_blank(png: bytes) -> tuple[tuple[int, int], float]:
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return (img.shape[1], img.shape[0]), float(img.var())


def test_report_renders_in_headless_chromium(edsr_report, tmp_path):
    """Acceptance 3: opened from disk, no console errors, every <img> decoded, table and plot on screen."""
    path, _ = edsr_report
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium found (.ci/run installs the Debian package 'chromium')")
    sync_playwright = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright (the test extra) to drive Chromium"
    ).sync_playwright
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else errors.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            imgs = page.evaluate(
                "() => Array.from(document.images).map(i => [i.className, i.complete, i.naturalWidth, i.width])"
            )
            table_rows = page.locator("table tr").count()
            table_shot = page.locator("table").first.screenshot()
            plot_shot = page.locator("img.plot").first.screenshot()
            full = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert len(imgs) == 1 + 4 * 3 and all(done and nat > 0 and w > 0 for _, done, nat, w in imgs), imgs
    assert sum(c == "plot" for c, *_ in imgs) == 1 and table_rows >= 5
    for shot in (table_shot, plot_shot, full):
        size, var = _not_blank(shot)
        assert min(size) > 50 and var > 100, (size, var)
    if os.environ.get("LIIF_REPORT_SHOT"):  # to look at it by hand
        Path(os.environ["LIIF_REPORT_SHOT"]).write_bytes(full)
