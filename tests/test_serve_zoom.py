"""`liif serve` encodings: POST an image, render regions of it, DELETE it; the pixels are the library's.

In-process (HTTPX through FastAPI's TestClient) against the official weights; tiny images. The page's zoom
viewer in Chromium is in tests/test_serve.py (it needs the real server that file starts).
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from conftest import MODEL_PATH as WEIGHTS
from conftest import one_line_error
from PIL import Image
from serving import png_bytes, serve_config

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF

from fastapi.testclient import TestClient  # noqa: E402

from liif_cli.serve.app import create_app  # noqa: E402

RNG = np.random.default_rng(152)
SIDE = (14, 10)  # (w, h) of the test images: an encoding weighs 256 bytes per input pixel in fp32
ONE = SIDE[0] * SIDE[1] * 256
CONFIG = serve_config(WEIGHTS, max_cache_bytes=int(3.5 * ONE), max_out_pixels=2_000_000)


RGB = RNG.integers(0, 256, (SIDE[1], SIDE[0], 3), dtype=np.uint8)
RGBA = np.concatenate([RGB, RNG.integers(0, 256, (SIDE[1], SIDE[0], 1), dtype=np.uint8)], axis=2)


@pytest.fixture(scope="module")
def app():
    return create_app(CONFIG)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


def encode(client, data: bytes, name: str = "a.png") -> dict:
    r = client.post("/v1/encodings", files={"image": (name, data, "image/png")})
    assert r.status_code == 201, r.text
    return r.json()


def decoded(content: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(content)) as im:
        return np.asarray(im)


# --- acceptance 1, second half: a render of an encoding's region is the library's region render ---------

RENDERS = {
    "rgb region to a tile size": (RGB, None, {"region": "3.5,2.25,4,3", "size": "37x29"}),
    "rgb region at a scale": (RGB, None, {"region": "0,0,7,5", "scale": "4.5"}),
    "rgba region by width": (RGBA, "RGBA", {"region": "6,1,8,8", "width": "40"}),
    "rgb whole image": (RGB, None, {"scale": "3"}),
}


@pytest.mark.parametrize("case", RENDERS)
def test_render_of_an_encoding_region_equals_the_library_region_render(app, client, tmp_path, case):
    array, mode, query = RENDERS[case]
    data = png_bytes(array, mode)
    made = encode(client, data)
    assert (made["width"], made["height"]) == SIDE and made["bytes"] >= ONE
    r = client.get(f"/v1/encodings/{made['id']}/render", params=query)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"

    src = tmp_path / "a.png"
    src.write_bytes(data)
    up = app.state.jobs.resources[0].get()  # the server's own Upscaler: the same weights and precision
    kw = {k: v for k, v in query.items() if k != "region"}
    if "scale" in kw:
        kw["scale"] = float(kw["scale"])
    if "width" in kw:
        kw["width"] = int(kw["width"])
    if "size" in kw:
        kw["size"] = tuple(int(v) for v in kw["size"].split("x"))
    region = tuple(float(v) for v in query["region"].split(",")) if "region" in query else None
    expected = up.upscale(Image.open(src), region=region, **kw)  # PIL in: rounded as a PNG is written
    got = decoded(r.content)
    assert got.shape == np.asarray(expected).shape
    assert f"{got.shape[1]}x{got.shape[0]}" == r.headers["x-liif-size"]
    assert np.array_equal(got, np.asarray(expected))
    assert client.delete(f"/v1/encodings/{made['id']}").status_code == 204


def test_tiles_of_a_zoomed_view_stitch_into_the_whole_view(client):
    """What the viewer does: four 16x12 screen tiles at zoom 4 == one render of their union."""
    made = encode(client, png_bytes(RGB))
    url = f"/v1/encodings/{made['id']}/render"
    whole = decoded(client.get(url, params={"region": "2,1,8,6", "size": "32x24"}).content)
    rows = []
    for ty in (0, 1):
        row = []
        for tx in (0, 1):
            region = f"{2 + tx * 4},{1 + ty * 3},4,3"
            row.append(decoded(client.get(url, params={"region": region, "size": "16x12"}).content))
        rows.append(np.concatenate(row, axis=1))
    assert np.array_equal(np.concatenate(rows, axis=0), whole)
    client.delete(url.removesuffix("/render"))


# --- acceptance 4: bad region, unknown id, evicted id (each a 4xx one-line JSON; the server goes on) -----


BAD_RENDERS = {
    "region outside the image": ({"region": "10,5,8,8", "size": "16x16"}, 400, "not inside the 14x10 image"),
    "negative region": ({"region": "-1,0,4,4", "size": "16x16"}, 400, "must be >= 0"),
    "empty region": ({"region": "1,1,0,3", "size": "16x16"}, 400, "is empty"),
    "not numbers": ({"region": "a,b,c,d", "size": "16x16"}, 400, "region must be"),
    "three numbers": ({"region": "1,2,3", "size": "16x16"}, 400, "region must be"),
    "infinite": ({"region": "0,0,inf,4", "size": "16x16"}, 400, "finite"),
    "a path as the region": ({"region": "/etc/passwd", "size": "16x16"}, 400, "region must be"),
    "no size": ({"region": "0,0,4,4"}, 400, "exactly one of scale"),
    "two sizes": ({"region": "0,0,4,4", "scale": "2", "width": "9"}, 400, "exactly one"),
    "output too large": ({"region": "0,0,4,4", "size": "3000x3000"}, 400, "over the"),
    "bad format": ({"scale": "2", "format": "../x"}, 400, "format"),
    "unknown parameter": ({"scale": "2", "output": "/tmp/x.png"}, 400, "unknown parameter 'output'"),
}


@pytest.mark.parametrize("case", BAD_RENDERS)
def test_a_bad_render_request_is_a_400_one_line(client, case):
    params, status, needle = BAD_RENDERS[case]
    made = encode(client, png_bytes(RGB))
    url = f"/v1/encodings/{made['id']}/render"
    r = client.get(url, params=params)
    assert r.status_code == status, r.text
    assert needle in one_line_error(r)
    assert client.get(url, params={"region": "0,0,4,4", "size": "8x8"}).status_code == 200
    client.delete(f"/v1/encodings/{made['id']}")


def test_unknown_deleted_and_evicted_ids_are_404_with_a_clear_message(client):
    r = client.get("/v1/encodings/never-made/render", params={"scale": "2"})
    assert r.status_code == 404 and "no encoding never-made" in one_line_error(r)
    assert client.delete("/v1/encodings/never-made").status_code == 404

    made = encode(client, png_bytes(RGB))["id"]
    assert client.delete(f"/v1/encodings/{made}").status_code == 204
    r = client.get(f"/v1/encodings/{made}/render", params={"scale": "2"})
    assert r.status_code == 404 and "deleted" in one_line_error(r)

    ids = [encode(client, png_bytes(RGB))["id"] for _ in range(4)]  # the cache holds 3.5 of them
    r = client.get(f"/v1/encodings/{ids[0]}/render", params={"scale": "2"})
    assert r.status_code == 404
    assert "evicted" in one_line_error(r) and "upload the image again" in one_line_error(r)
    for key in ids[1:]:
        assert client.get(f"/v1/encodings/{key}/render", params={"scale": "1"}).status_code == 200
        client.delete(f"/v1/encodings/{key}")
    assert client.get("/healthz").json()["status"] == "ok"


def test_encoding_hostile_uploads_are_4xx_one_line(client):
    r = client.post("/v1/encodings", files={"image": ("x.png", b"not an image at all")})
    assert r.status_code == 422 and one_line_error(r).startswith("x.png: ")
    r = client.post("/v1/encodings", data={"image": "/etc/passwd"})
    assert r.status_code == 400 and "uploaded file" in one_line_error(r)
    r = client.post("/v1/encodings", files={"image": ("a.png", png_bytes(RGB))}, data={"path": "/tmp/x"})
    assert r.status_code == 400 and "unknown field 'path'" in one_line_error(r)
    bomb = bytearray(png_bytes(RGB))
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR declares 100000 x 100000
    bomb[29:33] = zlib.crc32(bytes(bomb[12:29])).to_bytes(4, "big")
    r = client.post("/v1/encodings", files={"image": ("bomb.png", bytes(bomb))})
    assert r.status_code == 422 and "over the limit" in one_line_error(r)
    big = RNG.integers(0, 256, (60, 60, 3), dtype=np.uint8)  # 900 KiB of latents: more than the whole cache
    r = client.post("/v1/encodings", files={"image": ("big.png", png_bytes(big))})
    assert r.status_code == 413 and "too large for the server's cache" in one_line_error(r)


def test_the_api_schema_lists_the_encodings_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/v1/encodings"]
    assert "get" in paths["/v1/encodings/{encoding_id}/render"]
    assert "delete" in paths["/v1/encodings/{encoding_id}"]
