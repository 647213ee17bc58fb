"""`liif serve --images DIR`: the IIIF Image API 3.0 under /iiif/3.

The grammar on its own (pure functions), then the app in-process (FastAPI's TestClient) with a random-weight
EDSR-baseline LIIF built by the project's own model code, then the official IIIF validator against a real
server in a subprocess. No mocks: real files, a real model, real HTTP.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED, one_line_error
from PIL import Image
from serving import png_bytes, running, serve_config

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from liif_cli.cli import main  # noqa: E402
from liif_cli.serve.app import create_app  # noqa: E402
from liif_cli.serve.iiif import MAX_MAGNIFICATION, parse_image_request  # noqa: E402

VALIDATOR_ID = "67352ccc-d1b0-11e1-89ae-279075081939"
VALIDATOR_IMAGE = SHARED / "fixtures" / "iiif" / f"{VALIDATOR_ID}.png"
RNG = np.random.default_rng(25)
SMALL = RNG.integers(0, 256, (18, 24, 3), dtype=np.uint8)  # (h, w): the image the model renders


# --- the grammar: 400 for bad syntax, 501 for what is not served, and the spec's size arithmetic -----------


def status_of(*segments: str) -> int:
    try:
        parse_image_request(*segments)
    except HTTPException as exc:
        return exc.status_code
    return 200


SYNTAX = {
    ("full", "max", "0", "default.jpg"): 200,
    ("square", "^max", "!90", "gray.png"): 200,
    ("pct:10.5,0,50,.5", "^pct:150", "270", "bitonal.webp"): 200,
    ("0,0,10,10", "!20,30", "360", "color.png"): 200,
    ("0,0,10,10", "^,40", "0", "default.jpg"): 200,
    ("0,0,10,10", "40,", "0", "default.jpg"): 200,
    ("0,0,10", "max", "0", "default.jpg"): 400,
    ("0,0,0,10", "max", "0", "default.jpg"): 400,
    ("-1,0,10,10", "max", "0", "default.jpg"): 400,
    ("1.5,0,10,10", "max", "0", "default.jpg"): 400,
    ("pct:0,0,101,10", "max", "0", "default.jpg"): 400,
    ("FULL", "max", "0", "default.jpg"): 400,
    ("full", "full", "0", "default.jpg"): 400,
    ("full", "0,", "0", "default.jpg"): 400,
    ("full", "pct:0", "0", "default.jpg"): 400,
    ("full", "^^max", "0", "default.jpg"): 400,
    ("full", "10,10,", "0", "default.jpg"): 400,
    ("full", "max", "361", "default.jpg"): 400,
    ("full", "max", "-90", "default.jpg"): 400,
    ("full", "max", "9O", "default.jpg"): 400,
    ("full", "max", "45", "default.jpg"): 501,
    ("full", "max", "0", "native.jpg"): 400,
    ("full", "max", "0", "default"): 400,
    ("full", "max", "0", "default.xyz"): 400,
    ("full", "max", "0", "default.tif"): 501,
    ("full", "max", "0", "default.JPG"): 400,
}


@pytest.mark.parametrize("segments", SYNTAX, ids=["/".join(s) for s in SYNTAX])
def test_the_url_grammar_answers_400_for_syntax_and_501_for_what_is_not_served(segments):
    assert status_of(*segments) == SYNTAX[segments]


SIZES = {  # on a 1000x800 image, full region: the spec's size forms
    "max": (1000, 800),
    "^max": (4579, 3663),  # the largest within maxArea (4096^2), keeping the aspect ratio
    "500,": (500, 400),
    ",400": (500, 400),
    "pct:25": (250, 200),
    "^pct:150": (1500, 1200),
    "300,300": (300, 300),
    "!300,300": (300, 240),
    "^!3000,1200": (1500, 1200),
    "^2000,": (2000, 1600),
}


@pytest.mark.parametrize("size", SIZES)
def test_sizes_resolve_as_the_spec_says(size):
    plan = parse_image_request("full", size, "0", "default.jpg").plan(1000, 800)
    assert plan.size == SIZES[size]
    assert plan.model == (plan.size[0] > 1000)  # more pixels than the source: only ^ sizes go to the model


def test_a_size_above_the_region_needs_the_caret_also_when_magnified():
    for size in ("1001,", "pct:101", "!2000,3000", ",801"):
        with pytest.raises(HTTPException) as err:
            parse_image_request("full", size, "0", "default.jpg").plan(1000, 800)
        assert err.value.status_code == 400 and "^" in err.value.detail
    magnified = parse_image_request("0,0,512,512", "max", "0", "default.jpg").plan(100, 80, k=8)
    assert magnified.size == (512, 512) and magnified.model  # 64x64 source pixels -> 512x512: LIIF
    assert magnified.box == (0, 0, 64, 64)
    with pytest.raises(HTTPException):
        parse_image_request("0,0,512,512", "513,", "0", "default.jpg").plan(100, 80, k=8)
    assert not parse_image_request("0,0,512,512", "64,", "0", "default.jpg").plan(100, 80, k=8).model
    assert parse_image_request("pct:50,50,60,60", "max", "0", "default.jpg").plan(100, 80).region == (50, 40, 50, 40)
    with pytest.raises(HTTPException):  # a region wholly outside the image
        parse_image_request("100,0,5,5", "max", "0", "default.jpg").plan(100, 80)


# --- the app in-process, with a random-weight model -------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("iiif")
    folder = root / "images"
    folder.mkdir()
    Image.fromarray(SMALL).save(folder / "small.png")
    Image.fromarray(SMALL[:, :, 0]).save(folder / "gray.png")
    Image.fromarray(SMALL).save(folder / "both.png")
    Image.fromarray(SMALL).save(folder / "both.jpg")
    Image.fromarray(SMALL).save(folder / "icon@2x.png")  # a retina-style name is a name, not a magnification
    Image.fromarray(SMALL).save(folder / ".hidden.png")
    Image.fromarray(SMALL).save(root / "outside.png")
    (folder / "link.png").symlink_to(root / "outside.png")  # a symlink leaving the folder
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def app(model_path, images):
    return create_app(serve_config(model_path, images=images, max_waiting=4))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


def png(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    with Image.open(io.BytesIO(response.content)) as im:
        return np.asarray(im)


def test_info_json_advertises_level2_upscaling_and_k_times_the_size(client):
    r = client.get("/iiif/3/small/info.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["access-control-allow-origin"] == "*"
    info = r.json()
    assert info["@context"] == "http://iiif.io/api/image/3/context.json" and info["type"] == "ImageService3"
    assert info["id"] == "http://testserver/iiif/3/small" and info["profile"] == "level2"
    assert (info["width"], info["height"]) == (24, 18) and info["maxArea"] == 4096**2
    assert "sizeUpscaling" in info["extraFeatures"] and info["tiles"][0]["scaleFactors"] == [1]
    assert {"width": 24, "height": 18} in info["sizes"]
    ld = client.get("/iiif/3/small/info.json", headers={"Accept": "application/ld+json"})
    assert ld.headers["content-type"].startswith("application/ld+json")
    big = client.get("/iiif/3/small@8x/info.json").json()
    assert (big["width"], big["height"]) == (192, 144) and big["id"].endswith("/iiif/3/small@8x")
    assert big["sizes"][-1] == {"width": 24, "height": 18}  # no advertised whole-image size needs the model
    assert client.get("/iiif/3/icon@2x/info.json").json()["width"] == 24  # the file, not icon at 2x
    assert client.get("/iiif/3/small.png/info.json").json()["width"] == 24


def test_base_uri_redirects_to_info_json_and_cors_is_everywhere(client):
    r = client.get("/iiif/3/small", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "http://testserver/iiif/3/small/info.json"
    assert r.headers["access-control-allow-origin"] == "*"
    for url in (
        "/iiif/3/nothing/info.json",
        "/iiif/3/small/full/max/0/default.gif",
        "/iiif/3/small/full/max/45/default.png",
    ):
        assert client.get(url).headers["access-control-allow-origin"] == "*"
    pre = client.options(
        "/iiif/3/small/info.json", headers={"Origin": "http://viewer", "Access-Control-Request-Method": "GET"}
    )
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
    assert "Authorization" in pre.headers["access-control-allow-headers"]


def test_sizes_at_or_below_the_region_are_the_source_pixels(client):
    assert np.array_equal(png(client.get("/iiif/3/small/full/max/0/default.png")), SMALL)
    assert np.array_equal(png(client.get("/iiif/3/small/3,2,10,7/max/0/default.png")), SMALL[2:9, 3:13])
    assert np.array_equal(png(client.get("/iiif/3/small/20,10,10,10/max/0/default.png")), SMALL[10:, 20:])  # cropped
    assert np.array_equal(png(client.get("/iiif/3/small/full/max/!90/color.png")), np.rot90(SMALL[:, ::-1], -1))
    assert np.array_equal(png(client.get("/iiif/3/small/full/max/180/default.png")), SMALL[::-1, ::-1])
    assert np.array_equal(png(client.get("/iiif/3/small/square/max/0/default.png")), SMALL[:, 3:21])
    half = Image.fromarray(SMALL).resize((12, 9), Image.Resampling.LANCZOS)  # the documented resampler
    assert np.array_equal(png(client.get("/iiif/3/small/full/12,/0/default.png")), np.asarray(half))
    assert png(client.get("/iiif/3/small/full/max/0/gray.png")).ndim == 2
    bitonal = client.get("/iiif/3/small/full/max/0/bitonal.png").content
    assert Image.open(io.BytesIO(bitonal)).mode == "1"
    assert np.array_equal(png(client.get("/iiif/3/gray/full/max/0/default.png")), SMALL[:, :, 0])
    magnified = png(client.get("/iiif/3/small@4x/0,0,48,48/12,12/0/default.png"))  # 12x12 source pixels at 1:1
    assert np.array_equal(magnified, SMALL[:12, :12])
    for fmt, magic in (("jpg", b"\xff\xd8"), ("webp", b"RIFF")):
        r = client.get(f"/iiif/3/small/full/max/0/default.{fmt}")
        assert (
            r.status_code == 200
            and r.content.startswith(magic)
            and r.headers["content-type"] == f"image/{'jpeg' if fmt == 'jpg' else fmt}"
        )
    r = client.get("/iiif/3/small/3,2,10,7/5,/90/default.png")
    assert 'rel="profile"' in r.headers["link"] and "/iiif/3/small/3,2,10,7/5,4/90/default.png>" in r.headers["link"]


def test_a_caret_size_above_the_region_is_liif_upscale_region_size(client, model_path, images, tmp_path):
    r = client.get("/iiif/3/small/4,3,10,8/^37,29/0/default.png")
    got = png(r)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "upscale",
            str(images / "small.png"),
            "-o",
            str(out),
            "--model",
            str(model_path),
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--region",
            "4,3,10,8",
            "--size",
            "37x29",
        ],
    )
    assert result.exit_code == 0, result.output
    (written,) = out.iterdir()
    assert np.array_equal(got, np.asarray(Image.open(written)))
    assert got.shape == (29, 37, 3)
    # a tile of the magnified image is the same region render: small@4x's 16,12,40,32 is 4,3,10,8 at 4x
    tile = png(client.get("/iiif/3/small@4x/16,12,40,32/max/0/default.png"))
    expected = png(client.get("/iiif/3/small/4,3,10,8/^40,32/0/default.png"))
    assert np.array_equal(tile, expected) and tile.shape == (32, 40, 3)
    # and the tiles of a magnified view stitch into the render of their union
    left = png(client.get("/iiif/3/small@4x/0,0,48,40/max/0/default.png"))
    right = png(client.get("/iiif/3/small@4x/48,0,48,40/max/0/default.png"))
    union = png(client.get("/iiif/3/small/0,0,24,10/^96,40/0/default.png"))
    assert np.array_equal(np.concatenate([left, right], axis=1), union)


BAD = {
    "/iiif/3/small/full/1000,/0/default.png": (400, "^"),
    "/iiif/3/small@4x/full/97,/0/default.png": (400, "^"),
    "/iiif/3/small/full/max/0/default.gif": (501, "gif"),
    "/iiif/3/small/full/max/45/default.png": (501, "90"),
    "/iiif/3/small/24,0,5,5/max/0/default.png": (400, "outside"),
    "/iiif/3/small/zz/max/0/default.png": (400, "region"),
    "/iiif/3/small/full/^99999,/0/default.png": (400, "maxArea"),
    "/iiif/3/small@1x/info.json": (400, "from 2 to"),
    f"/iiif/3/small@{MAX_MAGNIFICATION + 1}x/info.json": (400, "from 2 to"),
    "/iiif/3/nothing/info.json": (404, "no image"),
    "/iiif/3/both/info.json": (404, "ambiguous"),
    "/iiif/3/.hidden/info.json": (404, "no image"),
    "/iiif/3/link/info.json": (404, "no image"),
    "/iiif/3/outside/info.json": (404, "no image"),
    "/iiif/3/..%2Foutside/info.json": (404, ""),
    "/iiif/3/notes.txt/info.json": (404, "no image"),
    "/iiif/3/a/b/full/max/0/default.jpg": (404, ""),
}


@pytest.mark.parametrize("url", BAD)
def test_errors_have_the_spec_status_and_the_json_body(client, url):
    status, needle = BAD[url]
    r = client.get(url)
    assert r.status_code == status, r.text
    assert needle in one_line_error(r)
    assert r.headers["access-control-allow-origin"] == "*"


def test_an_uploaded_encoding_is_an_identifier_too(client):
    made = client.post("/v1/encodings", files={"image": ("u.png", png_bytes(SMALL), "image/png")}).json()
    info = client.get(f"/iiif/3/{made['id']}/info.json").json()
    assert (info["width"], info["height"]) == (24, 18)
    assert np.array_equal(png(client.get(f"/iiif/3/{made['id']}/full/max/0/default.png")), SMALL)
    up = png(client.get(f"/iiif/3/{made['id']}/4,3,10,8/^37,29/0/default.png"))
    assert np.array_equal(up, png(client.get("/iiif/3/small/4,3,10,8/^37,29/0/default.png")))
    client.delete(f"/v1/encodings/{made['id']}")
    assert client.get(f"/iiif/3/{made['id']}/info.json").status_code == 404


def test_requests_that_need_no_model_do_not_wait_behind_model_jobs(app, client):
    release = threading.Event()
    jobs = app.state.jobs
    blockers = [jobs.submit(lambda model, job: release.wait(30)) for _ in range(3)]  # the worker and the queue
    try:
        while jobs.running == 0:
            time.sleep(0.01)
        t0 = time.monotonic()
        for url in (
            "/iiif/3/small/info.json",
            "/iiif/3/small/full/max/0/default.jpg",
            "/iiif/3/small@8x/0,0,64,64/8,/0/default.png",
        ):
            assert client.get(url).status_code == 200
        assert time.monotonic() - t0 < 5 and jobs.running == 1 and jobs.waiting == 2
    finally:
        release.set()
        for job in blockers:
            job.future.result(30)


# --- the official validator against a real server ---------------------------------------------------------


@pytest.mark.skipif(not VALIDATOR_IMAGE.exists(), reason="needs ../shared/fixtures/iiif")
def test_the_official_iiif_validator_passes_every_level2_test(model_path, tmp_path):
    pytest.importorskip("iiif_validator")
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copyfile(VALIDATOR_IMAGE, folder / VALIDATOR_IMAGE.name)
    with running(model_path, tmp_path / "stderr.log", "--images", str(folder)) as server:
        validator = shutil.which("iiif-validate.py", path=str(Path(sys.executable).parent))
        run = subprocess.run(
            [
                sys.executable,
                validator,
                "-s",
                f"127.0.0.1:{server.port}",
                "-p",
                "iiif/3",
                "-i",
                VALIDATOR_ID,
                "--version=3.0",
                "--level=2",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        summary = run.stderr.strip().splitlines()[-1]
        print(f"\niiif-validator: {summary}")
        assert run.returncode == 0, run.stderr
        assert re.fullmatch(r"Done \(\d+ tests, 0 failures\)", summary), run.stderr
