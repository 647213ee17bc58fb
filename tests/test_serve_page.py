"""The page in Chromium against a real `liif serve --images DIR` (random-weight model built by the project's own
code; 127.0.0.1 only): elapsed time and estimate, Cancel, the stale result cleared, before/after labels, the
1:1 / fit toggle, the divider dragged on the image and moved by keyboard, and the zoom viewer at 8x drawing
its tiles from /iiif/3 (`{id}@8x`), plus a `^` request through that server equal to `liif upscale --region
--size` pixel for pixel.
"""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT
from PIL import Image
from serving import CHROMIUM, TILES_SETTLED, needs_chromium, running

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

from liif_cli.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def setup(model_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    images = root / "images"
    images.mkdir()
    photo = Image.open(ROOT / "examples" / "astronaut.png").convert("RGB").crop((90, 40, 122, 64))  # 32x24
    photo.save(images / "suit.png")
    with running(model_path, root / "stderr.log", "--images", str(images)) as server:
        yield {"url": server.url, "model": model_path, "images": images, "root": root}


def test_a_caret_request_through_the_server_is_liif_upscale_region_size(setup, tmp_path):
    import httpx

    r = httpx.get(f"{setup['url']}/iiif/3/suit/5,3,12,9/^50,37/0/default.png", timeout=120)
    assert r.status_code == 200, r.text
    out = tmp_path / "out"
    args = ["upscale", str(setup["images"] / "suit.png"), "-o", str(out), "--model", str(setup["model"])]
    args += ["--device", "cpu", "--precision", "fp32", "--region", "5,3,12,9", "--size", "50x37"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (written,) = out.iterdir()
    got = np.asarray(Image.open(io.BytesIO(r.content)))
    assert got.shape == (37, 50, 3) and np.array_equal(got, np.asarray(Image.open(written)))


@needs_chromium
def test_page_progress_cancel_compare_and_the_iiif_viewer_at_8x(setup, tmp_path):
    import httpx

    sync_api = pytest.importorskip("playwright.sync_api")
    url = setup["url"]
    src = setup["images"] / "suit.png"
    big = tmp_path / "big.png"  # a render long enough to watch and cancel
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(big)
    errors: list[str] = []
    tiles: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 900}, device_scale_factor=1)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: tiles.append(r.url) if "/iiif/3/" in r.url else None)
        page.goto(url + "/")

        # A result, with its labels; the divider dragged on the image and moved by keyboard; 1:1 and back.
        page.set_input_files("#file", str(src))
        page.select_option("#mode", "scale")
        page.fill("#value", "4")
        page.click("#go")
        page.wait_for_function("document.getElementById('after').naturalWidth > 0", timeout=60_000)
        assert page.is_visible("#label-before") and page.text_content("#label-before") == "before"
        assert page.is_visible("#label-after") and page.text_content("#label-after") == "after"
        box = page.locator("#compare").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        assert page.get_attribute("#compare", "aria-valuenow") == "25"
        assert re.fullmatch(
            r"inset\(0(px)? 75(\.\d+)?% 0(px)? 0(px)?\)", page.eval_on_selector("#before", "e => e.style.clipPath")
        )
        page.focus("#compare")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        assert page.get_attribute("#compare", "aria-valuenow") == "29"
        page.keyboard.press("End")
        assert page.get_attribute("#compare", "aria-valuenow") == "100"
        fit_width = page.locator("#compare").bounding_box()["width"]
        page.click("#view-mode")
        assert page.locator("#compare").bounding_box()["width"] == 128  # 1:1: the result's own 128 pixels
        assert page.text_content("#view-mode") == "fit"
        page.click("#view-mode")
        assert page.locator("#compare").bounding_box()["width"] == fit_width

        # The zoom viewer at 8x: tiles from /iiif/3/{id}@8x, and a view that is not blank.
        page.wait_for_selector("#zoom-viewer:not([hidden])", timeout=60_000)
        page.locator("#zoom-view").scroll_into_view_if_needed()
        page.evaluate("window.liif.zoomTo(8)")
        assert page.text_content("#zoom-factor") == "8x"
        page.wait_for_function(TILES_SETTLED, timeout=120_000)
        at8 = [u for u in tiles if re.search(r"/iiif/3/[^/]+@8x/\d+,\d+,\d+,\d+/(\^|%5E)\d+,\d+/0/default\.png$", u)]
        assert at8, tiles
        shown = page.eval_on_selector_all("#zoom-tiles img", "ts => ts.map(t => [t.naturalWidth, t.naturalHeight])")
        assert sorted(shown) == [[256, 192]]  # 32x24 at 8x: one tile
        shot = tmp_path / "zoom8.png"
        page.locator("#zoom-view").screenshot(path=str(shot))
        x0, y0 = page.eval_on_selector("#zoom-backdrop", "b => [parseInt(b.style.left), parseInt(b.style.top)]")
        encoding = re.search(r"/iiif/3/([^/@]+)@8x/", at8[0]).group(1)
        # What the screen shows at 8x is the server's LIIF render of the whole image at 8x ("not blank" means:
        # the render, not the view's dark background).
        whole = httpx.get(f"{url}/iiif/3/{encoding}/full/^256,192/0/default.png", timeout=120)
        expected = np.asarray(Image.open(io.BytesIO(whole.content)).convert("RGB"), dtype=np.int16)
        screen = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)[y0 : y0 + 192, x0 : x0 + 256]
        assert screen.shape == expected.shape and np.abs(screen - expected).max() <= 2
        assert np.abs(screen.mean(axis=(0, 1)) - 34).min() > 20  # not the background (#222)

        # A long render: elapsed time and the estimate while it runs; Cancel aborts it; the stale result is gone.
        page.set_input_files("#file", str(big))
        page.select_option("#mode", "size")
        page.fill("#value", "3000x3000")
        page.click("#go")
        assert page.is_hidden("#result")  # the previous result is cleared as the new job starts
        page.wait_for_function(
            "/^\\d+ s of about \\d+ s$/.test(document.getElementById('elapsed').textContent)", timeout=30_000
        )
        page.wait_for_function("document.getElementById('status').textContent === 'upscaling'", timeout=30_000)
        t0 = time.monotonic()
        while httpx.get(f"{url}/healthz").json()["queue"]["running"] == 0:
            assert time.monotonic() - t0 < 30
            time.sleep(0.1)
        page.click("#cancel")
        page.wait_for_function("document.getElementById('error').textContent === 'cancelled'")
        assert page.is_hidden("#progress-row") and page.is_hidden("#result")
        t0 = time.monotonic()
        while httpx.get(f"{url}/healthz").json()["queue"]["running"]:
            assert time.monotonic() - t0 < 15, "the job kept running after Cancel"
            time.sleep(0.1)
        browser.close()
    assert errors == []
