"""`liif serve`: the app against the official weights (in-process), then a real server in a subprocess
(load, disconnects, the page in Chromium, Ctrl-C). Tiny images throughout; no mocks."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import png  # pypng
import pytest
from click.testing import CliRunner
from conftest import MODEL_PATH as WEIGHTS
from conftest import ROOT, one_line_error
from PIL import Image
from serving import CHROMIUM, TILES_SETTLED, needs_chromium, png_bytes, running, serve_config

from liif_cli.cli import main

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytestmark = pytest.mark.usefixtures("model_path")  # MODEL_PATH: a random-weight EDSR-baseline-LIIF

from fastapi.testclient import TestClient  # noqa: E402

from liif_cli.serve.app import create_app  # noqa: E402
from liif_cli.serve.cache import ByteLRU, Evicted, TooLarge, Unknown  # noqa: E402
from liif_cli.serve.jobs import JobQueue, QueueFull  # noqa: E402

RNG = np.random.default_rng(15)
UPLOAD_LIMIT = 200_000  # bytes: small, so that an oversize upload is cheap to send
CONFIG = serve_config(WEIGHTS, max_upload_bytes=UPLOAD_LIMIT)


def png16_bytes(array: np.ndarray) -> bytes:
    h, w, _ = array.shape
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=False, bitdepth=16).write(buf, array.reshape(h, w * 3).tolist())
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(CONFIG)) as c:
        yield c


# --- acceptance 1: the API writes what `liif upscale` writes -----------------------------------------

u8 = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
rgba = np.concatenate([RNG.integers(0, 256, (8, 10, 3)), RNG.integers(0, 256, (8, 10, 1))], axis=2).astype(np.uint8)
y, x = np.mgrid[0:10, 0:12]
u16 = np.clip(np.stack([x * 5000, y * 6000, (x + y) * 2500], axis=2) + RNG.integers(0, 900, (10, 12, 3)), 0, 65535)

CASES = {
    "rgb-scale": ("a.png", png_bytes(u8), {"scale": "2.5"}),
    "rgb-jpeg-quality": ("a.png", png_bytes(u8), {"width": "30", "format": "jpg", "quality": "80"}),
    "rgba-size": ("b.png", png_bytes(rgba, "RGBA"), {"size": "23x17"}),
    "rgb16-anisotropic": ("c.png", png16_bytes(u16.astype(np.uint16)), {"scale": "2,3"}),
}


@pytest.mark.parametrize("case", CASES)
def test_upscale_returns_the_bytes_liif_upscale_writes(client, tmp_path, case):
    name, data, fields = CASES[case]
    src = tmp_path / name
    src.write_bytes(data)
    args = [f"--{k}" if k != "format" else "--ext" for k in fields]
    cli = [x for pair in zip(args, fields.values(), strict=True) for x in pair]
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["upscale", str(src), "-o", str(out), "--model", str(WEIGHTS), "--device", "cpu", "--precision", "fp32", *cli],
    )
    assert result.exit_code == 0, result.output
    (written,) = out.iterdir()

    r = client.post("/v1/upscale", files={"image": (name, data, "image/png")}, data=fields)
    assert r.status_code == 200, r.text
    assert r.content == written.read_bytes()
    assert f'filename="{written.name}"' in r.headers["content-disposition"]
    with Image.open(io.BytesIO(r.content)) as im:
        assert f"{im.size[0]}x{im.size[1]}" == r.headers["x-liif-size"]
    if case == "rgb16-anisotropic":  # really 16-bit: pypng reads the depth back
        assert png.Reader(bytes=r.content).read()[3]["bitdepth"] == 16
    if case == "rgba-size":
        assert Image.open(io.BytesIO(r.content)).mode == "RGBA"


# --- acceptance 4: hostile requests, each a 4xx with a one-line JSON error -----------------------------


def bomb_png() -> bytes:
    data = bytearray(png_bytes(u8))
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR declares 100000 x 100000
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


HOSTILE = {
    "not an image": ({"image": ("x.png", b"hello, I am not an image\n")}, {"scale": "2"}, 422, "not an image"),
    "empty file": ({"image": ("x.png", b"")}, {"scale": "2"}, 422, "empty"),
    "truncated": ({"image": ("x.png", png_bytes(u8)[:60])}, {"scale": "2"}, 422, "x.png"),
    "decompression bomb": (
        {"image": ("bomb.png", bomb_png())},
        {"scale": "2"},
        422,
        "(the server's max-pixels setting)",
    ),
    "oversize upload": (
        {"image": ("big.png", os.urandom(UPLOAD_LIMIT + 1))},
        {"scale": "2"},
        413,
        "(the server's max-upload setting)",
    ),
    "path as the image": (None, {"image": "/etc/passwd", "scale": "2"}, 400, "uploaded file"),
    "path in an extra field": (
        {"image": ("a.png", png_bytes(u8))},
        {"scale": "2", "output": "/tmp/x.png"},
        400,
        "unknown field",
    ),
    "path as the format": ({"image": ("a.png", png_bytes(u8))}, {"scale": "2", "format": "../../etc/x"}, 400, "format"),
    "no image": (None, {"scale": "2"}, 400, "image"),
    "no size option": ({"image": ("a.png", png_bytes(u8))}, {}, 400, "exactly one of scale"),
    "two size options": ({"image": ("a.png", png_bytes(u8))}, {"scale": "2", "width": "9"}, 400, "exactly one"),
    "bad scale": ({"image": ("a.png", png_bytes(u8))}, {"scale": "-1"}, 400, "scale must be"),
    "bad size": ({"image": ("a.png", png_bytes(u8))}, {"size": "big"}, 400, "size must be"),
    "bad quality": ({"image": ("a.png", png_bytes(u8))}, {"scale": "2", "quality": "500"}, 400, "quality"),
    "output too large": (
        {"image": ("a.png", png_bytes(u8))},
        {"size": "30000x30000"},
        400,
        "size 30000x30000 (900.0 MP) is over the limit of 400.0 MP (the server's max-out-pixels setting)",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_request_is_a_4xx_one_line_and_the_server_goes_on(client, case):
    files, data, status, needle = HOSTILE[case]
    r = client.post("/v1/upscale", files=files, data=data)
    assert r.status_code == status, r.text
    message = one_line_error(r)
    assert needle in message
    assert (
        "--" not in message and "raise it" not in message
    )  # the server's words: no CLI flag, no advice a client cannot follow
    assert "/tmp" not in message and "liif-serve-" not in message  # no server-side path leaks
    ok = client.post("/v1/upscale", files={"image": ("a.png", png_bytes(u8))}, data={"scale": "1.5"})
    assert ok.status_code == 200 and client.get("/healthz").json()["status"] == "ok"


# Every error the server can answer, in the server's words: each library error class it can hit (the input
# and output pixel limits, bad scale / size / width / height / region / format / quality, a format that cannot
# hold the size, unknown and evicted encodings, the byte limit, IIIF's own errors), with the server's limits
# small enough that each is cheap to reach. No text may name a CLI flag or give advice only the operator can
# follow; a limit is named as the server's setting, a value as the field the client sent.

SMALL_LIMITS = {"max_pixels": 300, "max_out_pixels": 40_000, "max_upload_bytes": 20_000}
TINY = png_bytes(RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8))  # 99 pixels: under every limit
OVER = png_bytes(RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8))  # 400 pixels: over max_pixels


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A server with small limits, an image folder (one image under the pixel limit, one over) and one
    encoding; also the id of an encoding that was deleted."""
    folder = tmp_path_factory.mktemp("limited")
    (folder / "tiny.png").write_bytes(TINY)
    (folder / "over.png").write_bytes(OVER)
    with TestClient(create_app(serve_config(WEIGHTS, images=folder, **SMALL_LIMITS))) as c:
        made = c.post("/v1/encodings", files={"image": ("t.png", TINY)}).json()["id"]
        gone = c.post("/v1/encodings", files={"image": ("t.png", TINY)}).json()["id"]
        assert c.delete(f"/v1/encodings/{gone}").status_code == 204
        yield c, made, gone


def up(fields: dict, image: bytes = TINY) -> tuple:
    return ("post", "/v1/upscale", {"files": {"image": ("a.png", image)}, "data": fields})


def render(params: dict, key: str = "{id}") -> tuple:
    return ("get", f"/v1/encodings/{key}/render", {"params": params})


EVERY_ERROR = {
    # InputError: an upload over the server's pixel limit, a folder image over it, a file that is no image
    "upscale: input over max-pixels": (up({"scale": "2"}, OVER), 422, "the server's max-pixels setting"),
    "encode: input over max-pixels": (
        ("post", "/v1/encodings", {"files": {"image": ("a.png", OVER)}}),
        422,
        "the server's max-pixels setting",
    ),
    "iiif: folder image over max-pixels": (("get", "/iiif/3/over/info.json", {}), 422, "over.png: image of 20x20"),
    "iiif: folder image over max-pixels, magnified": (
        ("get", "/iiif/3/over@4x/0,0,8,8/^64,/0/default.png", {}),
        422,
        "the server's max-pixels setting",
    ),
    "upscale: not an image": (up({"scale": "2"}, b"not an image"), 422, "a.png"),
    # UsageError: the output over the server's limit, every size field, the exactly-one rule, format, quality
    "upscale: output over max-out-pixels": (up({"scale": "30"}), 400, "the server's max-out-pixels setting"),
    "upscale: size over max-out-pixels": (up({"size": "300x300"}), 400, "the server's max-out-pixels setting"),
    "upscale: bad scale": (up({"scale": "-1"}), 400, "scale must be"),
    "upscale: scale not a number": (up({"scale": "x2"}), 400, "scale must be"),
    "upscale: absurd scale": (up({"scale": "1e9"}), 400, "scale"),
    "upscale: bad size": (up({"size": "big"}), 400, "size must be"),
    "upscale: bad width": (up({"width": "0"}), 400, "width"),
    "upscale: bad height": (up({"height": "tall"}), 400, "height"),
    "upscale: two size fields": (up({"scale": "2", "width": "30"}), 400, "exactly one of scale, size, width"),
    "upscale: no size field": (up({}), 400, "exactly one of scale, size, width"),
    "upscale: bad format": (up({"scale": "2", "format": "gif"}), 400, "format must be"),
    "upscale: bad quality": (up({"scale": "2", "quality": "0"}), 400, "quality"),
    "upscale: unknown field": (up({"scale": "2", "tile": "64"}), 400, "unknown field 'tile'"),
    # OutputError: a format that cannot hold the size (WebP: 16383 pixels a side)
    "upscale: webp too wide": (up({"size": "16384x2", "format": "webp"}), 400, "cannot hold"),
    "render: webp too wide": (render({"size": "16384x2", "format": "webp"}), 400, "cannot hold"),
    # the render of an encoding: region, sizes, limits, unknown and deleted ids
    "render: region outside": (render({"region": "10,5,8,8", "scale": "2"}), 400, "region"),
    "render: negative region": (render({"region": "-1,0,4,4", "scale": "2"}), 400, "region"),
    "render: region not numbers": (render({"region": "a,b,c,d", "scale": "2"}), 400, "region must be"),
    "render: output over max-out-pixels": (render({"scale": "30"}), 400, "the server's max-out-pixels setting"),
    "render: bad scale": (render({"scale": "0"}), 400, "scale must be"),
    "render: bad size": (render({"size": "12"}), 400, "size must be"),
    "render: two size fields": (render({"width": "20", "height": "20"}), 400, "exactly one"),
    "render: bad format": (render({"scale": "2", "format": "bmp"}), 400, "format must be"),
    "render: unknown parameter": (render({"scale": "2", "device": "cuda"}), 400, "unknown parameter 'device'"),
    "render: unknown id": (render({"scale": "2"}, "never-made"), 404, "no encoding never-made"),
    "render: deleted id": (render({"scale": "2"}, "{gone}"), 404, "deleted"),
    # the server's own: the byte limit, the queue's and IIIF's errors, the estimate
    "upload over max-upload": (
        up({"scale": "2"}, os.urandom(20_001)),
        413,
        "upload larger than the limit of 20000 bytes (the server's max-upload setting)",
    ),
    "iiif: region outside": (("get", "/iiif/3/tiny/20,0,5,5/max/0/default.png", {}), 400, "outside"),
    "iiif: size over maxArea": (("get", "/iiif/3/tiny/full/^1000,/0/default.png", {}), 400, "maxArea"),
    "iiif: no such image": (("get", "/iiif/3/nothing/info.json", {}), 404, "no image"),
    "estimate: bad size": (("get", "/v1/estimate", {"params": {"input": "9x9", "output": "big"}}), 400, "output"),
}


@pytest.mark.parametrize("case", EVERY_ERROR)
def test_every_error_speaks_the_servers_words_never_a_cli_flag(limited, case):
    client, made, gone = limited
    (method, url, kwargs), status, needle = EVERY_ERROR[case]
    r = getattr(client, method)(url.format(id=made, gone=gone), **kwargs)
    assert r.status_code == status, r.text
    message = one_line_error(r)
    assert needle in message, message
    assert not re.search(r"(^|\W)--?[a-z]", message), message  # no CLI flag, long or short
    assert "raise it" not in message and "liif " not in message, message  # no advice only the operator can follow
    assert "/tmp" not in message and str(ROOT) not in message, message  # nor a path on the server


def test_an_upload_name_with_folders_names_nothing_on_the_server(client, tmp_path):
    target = tmp_path / "evil_x2.png"
    name = f"../../../../{tmp_path}/evil.png"
    r = client.post("/v1/upscale", files={"image": (name, png_bytes(u8))}, data={"scale": "2"})
    assert r.status_code == 200 and 'filename="evil_x2.png"' in r.headers["content-disposition"]
    assert not target.exists() and list(tmp_path.iterdir()) == []
    r = client.post("/v1/upscale", files={"image": (name, b"junk")}, data={"scale": "2"})
    assert r.status_code == 422 and one_line_error(r).startswith("evil.png: ")


def test_streamed_upload_without_a_length_is_cut_at_the_limit(client):
    def chunks():
        for _ in range(40):
            yield b"x" * 10_000

    headers = {"content-type": "multipart/form-data; boundary=zzz"}
    r = client.post("/v1/upscale", content=chunks(), headers=headers)
    assert r.status_code == 413 and "limit" in one_line_error(r)


def test_unknown_path_and_method_are_json(client):
    assert client.get("/v1/nothing").status_code == 404 and one_line_error(client.get("/v1/nothing"))
    r = client.get("/v1/upscale")
    assert r.status_code == 405 and one_line_error(r)


def test_models_healthz_docs_and_page(client):
    models = client.get("/v1/models").json()
    assert models["served"] == str(WEIGHTS) and any(m["name"] == "edsr-baseline" for m in models["models"])
    health = client.get("/healthz").json()
    assert health["devices"] == ["cpu"] and health["precision"] == ["fp32"]
    spec = client.get("/openapi.json").json()
    assert {"/v1/upscale", "/v1/models", "/healthz"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
    page = client.get("/").text
    assert 'id="compare"' in page and 'id="zoom-viewer"' in page
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page):
        assert client.get(asset).status_code == 200
    for script in ("app.js", "zoom.js"):  # no CDN, nothing remote
        assert "http" not in client.get(f"/static/{script}").text.replace("XMLHttpRequest", "")


# --- the queue and the cache, on their own (real threads, real arrays) ---------------------------------


def test_queue_is_bounded_answers_retry_after_and_skips_cancelled_jobs():
    release = threading.Event()
    ran: list[str] = []
    jobs = JobQueue(["device"], max_waiting=1)
    try:
        first = jobs.submit(lambda dev, job: (release.wait(10), ran.append("first")))
        while jobs.running == 0:
            time.sleep(0.01)
        second = jobs.submit(lambda dev, job: ran.append("second"))
        with pytest.raises(QueueFull) as full:
            jobs.submit(lambda dev, job: ran.append("third"))
        assert full.value.retry_after >= 1
        second.cancel()  # its client went away while it waited: its place goes to the next request
        fourth = jobs.submit(lambda dev, job: ran.append("fourth"))
        assert second.future.cancelled()
        release.set()
        first.future.result(10)
        fourth.future.result(10)
        third = jobs.submit(lambda dev, job: (job.check(), ran.append(dev))[1])
        third.future.result(10)
        assert ran == ["first", "fourth", "device"]
    finally:
        release.set()
        jobs.close()


def test_byte_lru_evicts_least_recently_used_by_bytes():
    cache = ByteLRU(3000)
    a, b, c = (np.zeros(1000, np.uint8) for _ in range(3))
    ka, kb, kc = cache.add(a), cache.add(b), cache.add(c)
    assert cache.nbytes == 3000 and len({ka, kb, kc}) == 3
    assert cache.get(ka) is a  # a is now the most recent: b goes first
    kd = cache.add(np.zeros(1500, np.uint8))
    assert kb not in cache and kc not in cache and ka in cache and kd in cache and cache.nbytes == 2500
    with pytest.raises(Evicted):
        cache.get(kb)
    with pytest.raises(Unknown):
        cache.get("never-issued")
    cache.delete(ka)
    assert cache.nbytes == 1500
    with pytest.raises(Unknown):
        cache.delete(ka)
    with pytest.raises(TooLarge):
        cache.add(np.zeros(3001, np.uint8))


def test_serve_help_needs_neither_the_extra_nor_a_model():
    """`liif serve --help` imports nothing of the web stack (torch is the CLI module's business)."""
    code = (
        "import sys; from click.testing import CliRunner; from liif_cli.cli import main; "
        "r = CliRunner().invoke(main, ['serve', '--help']); assert r.exit_code == 0, r.output; "
        "assert '--host' in r.output; print(*(m in sys.modules for m in ('fastapi', 'uvicorn', 'liif_cli.serve.app')))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_serve_without_the_extra_says_how_to_install_it():
    code = (
        "import sys; sys.modules['uvicorn'] = None; from click.testing import CliRunner; "
        "from liif_cli.cli import main; r = CliRunner().invoke(main, ['serve']); print(r.exit_code, r.output)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.startswith("2 error: ") and "pip install 'liif-cli[serve]'" in out and len(out.strip().splitlines()) == 1


# --- a real server: load, disconnect, the page, Ctrl-C ---------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running(WEIGHTS, tmp_path_factory.mktemp("serve") / "stderr.log", "--queue", "8") as started:
        yield started


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def test_load_200_requests_from_20_clients_all_answered_200_or_429(server):
    import httpx

    images = [png_bytes(RNG.integers(0, 256, (12, 12, 3), dtype=np.uint8)) for _ in range(5)]
    statuses: list[int] = []
    lock = threading.Lock()
    per_client = 10

    def client(k: int) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            for i in range(per_client):
                files = {"image": (f"c{k}-{i}.png", images[(k + i) % len(images)], "image/png")}
                try:
                    r = c.post("/v1/upscale", files=files, data={"scale": "2"})
                    code = r.status_code
                    if code == 429 and not (r.headers.get("retry-after", "").isdigit() and one_line_error(r)):
                        code = "429 without Retry-After"
                except httpx.HTTPError as exc:
                    code = f"lost: {type(exc).__name__}"
                with lock:
                    statuses.append(code)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    counts = {s: statuses.count(s) for s in set(statuses)}
    rss = peak_rss_mib(server.proc.pid)
    print(
        f"\nload: {counts} in {seconds:.1f} s = {len(statuses) / seconds:.1f} answers/s, "
        f"{counts.get(200, 0) / seconds:.1f} upscales/s; server peak RSS {rss:.0f} MiB"
    )
    assert len(statuses) == 200 and set(counts) <= {200, 429}, counts
    assert counts.get(200, 0) > 0
    assert rss < 2048
    assert httpx.get(f"{server.url}/healthz").json()["queue"]["waiting"] == 0


def test_a_client_that_disconnects_cancels_its_job(server):
    import httpx

    data = png_bytes(RNG.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    with pytest.raises(httpx.ReadTimeout):  # a 3000x3000 render takes far longer than this
        httpx.post(
            f"{server.url}/v1/upscale",
            files={"image": ("s.png", data)},
            data={"size": "3000x3000"},
            timeout=httpx.Timeout(60, read=1.5),
        )
    t0 = time.monotonic()
    while httpx.get(f"{server.url}/healthz").json()["queue"]["running"]:
        assert time.monotonic() - t0 < 10, "the job kept running after its client left"
        time.sleep(0.1)
    records = [
        json.loads(line.split(" INFO ", 1)[1])
        for line in server.log.read_text().splitlines()
        if "liif.serve.access" in line
    ]
    assert any(r["path"] == "/v1/upscale" and r["status"] == 499 for r in records)
    assert {"method", "path", "status", "bytes", "ms", "client"} <= set(records[0])


@needs_chromium
def test_page_in_chromium_upload_result_slider_zoom(server, tmp_path):
    import httpx

    sync_api = pytest.importorskip("playwright.sync_api")
    src = tmp_path / "suit.png"  # the astronaut's shoulder, hair and the black background: sharp edges
    Image.open(ROOT / "examples" / "astronaut.png").convert("RGB").crop((90, 40, 122, 64)).save(src)
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        renders: list[str] = []
        page.on("request", lambda r: renders.append(r.url) if "/iiif/3/" in r.url else None)
        page.goto(server.url + "/")
        page.set_input_files("#file", str(src))
        page.select_option("#mode", "scale")
        page.fill("#value", "4")
        page.click("#go")
        page.wait_for_function("document.getElementById('after').naturalWidth > 0", timeout=60_000)
        assert page.eval_on_selector("#after", "e => [e.naturalWidth, e.naturalHeight]") == [128, 96]
        assert page.text_content("#result-size") == "(128x96)"
        page.locator("#slider").scroll_into_view_if_needed()
        box = page.locator("#slider").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2)
        clip = page.eval_on_selector("#before", "e => e.style.clipPath")
        assert re.fullmatch(r"inset\(0(px)? 8\d(\.\d+)?% 0(px)? 0(px)?\)", clip), clip
        assert page.get_attribute("#download", "download") == "suit_x4.png"
        shot = tmp_path / "page.png"
        page.locator("#compare").screenshot(path=str(shot))

        # The zoom viewer: it opens on the encoding of the same upload; 1x, then four doublings to 16x.
        page.wait_for_selector("#zoom-viewer:not([hidden])", timeout=60_000)
        assert page.text_content("#zoom-size") == "(32x24)"
        page.locator("#zoom-view").scroll_into_view_if_needed()
        page.click("#zoom-one")
        assert page.text_content("#zoom-factor") == "1x"
        for _ in range(4):
            page.click("#zoom-in")
        assert page.text_content("#zoom-factor") == "16x"
        box = page.locator("#zoom-view").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, 100)  # one notch out: a quarter octave, 16 / 2^(1/4)
        page.wait_for_function("document.getElementById('zoom-factor').textContent === '13.5x'")
        page.mouse.wheel(0, -100)
        page.wait_for_function("document.getElementById('zoom-factor').textContent === '16x'")
        page.mouse.down()  # drag the image 40 px right and 30 px down: a pan, the zoom stays
        page.mouse.move(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2 + 30, steps=4)
        page.mouse.up()
        assert page.text_content("#zoom-factor") == "16x"
        page.wait_for_function(TILES_SETTLED, timeout=120_000)
        tiles = page.eval_on_selector_all("#zoom-tiles img", "ts => ts.map(t => [t.naturalWidth, t.naturalHeight])")
        # 32x24 at 16x is 512x384 screen pixels: four tiles, 256 wide, 256 and 128 high
        why = page.eval_on_selector("#zoom-viewer", "v => v.innerText")
        assert sorted(tiles) == [[256, 128], [256, 128], [256, 256], [256, 256]], (tiles, why, renders, errors)
        sizes = {tuple(map(int, re.search(r"/(?:\^|%5E)(\d+),(\d+)/", url).groups())) for url in renders}
        assert sizes and all(w <= 256 and h <= 256 for w, h in sizes)  # every request is one screen tile
        zoomed = tmp_path / "zoom.png"
        page.locator("#zoom-view").screenshot(path=str(zoomed))
        origin = page.eval_on_selector("#zoom-backdrop", "b => [parseInt(b.style.left), parseInt(b.style.top)]")
        encoding = re.search(r"/iiif/3/([^/@]+)", renders[0]).group(1)
        assert all(
            re.search(r"/iiif/3/[^/]+@16x/\d+,\d+,\d+,\d+/(\^|%5E)\d+,\d+/0/default\.png$", u) for u in renders[-4:]
        )
        if os.environ.get("LIIF_SCREENSHOTS"):  # keep them to look at
            for f in (shot, zoomed):
                Path(os.environ["LIIF_SCREENSHOTS"], f.name).write_bytes(f.read_bytes())
        browser.close()
    for picture in (shot, zoomed):
        pixels = np.asarray(Image.open(picture).convert("RGB"), dtype=np.float32)
        assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # not blank
    assert errors == []
    # What the screen shows at 16x is the server's render of the whole image at scale 16, tiles and all.
    whole = httpx.get(f"{server.url}/v1/encodings/{encoding}/render", params={"scale": "16"}, timeout=120)
    expected = np.asarray(Image.open(io.BytesIO(whole.content)).convert("RGB"), dtype=np.int16)
    (x0, y0), screen = origin, np.asarray(Image.open(zoomed).convert("RGB"), dtype=np.int16)
    assert np.abs(screen[y0 : y0 + 384, x0 : x0 + 512] - expected).max() <= 2


def test_ctrl_c_stops_the_server_cleanly_even_mid_render(server):
    import httpx

    url, proc = server.url, server.proc
    data = png_bytes(RNG.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    answers: list = []

    def long_request() -> None:
        try:
            r = httpx.post(
                f"{url}/v1/upscale", files={"image": ("s.png", data)}, data={"size": "4000x4000"}, timeout=60
            )
            answers.append(r.status_code)
        except httpx.HTTPError as exc:
            answers.append(type(exc).__name__)

    t = threading.Thread(target=long_request)
    t.start()
    t0 = time.monotonic()
    while httpx.get(f"{url}/healthz").json()["queue"]["running"] == 0:
        assert time.monotonic() - t0 < 20
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=40)  # uvicorn's grace period (10 s), then the render is cancelled at its next block
    t.join(60)
    log = server.log.read_text()
    assert "Traceback" not in log, log
    assert proc.returncode in (0, 130), log
    assert answers == [503]  # the render was stopped and answered, not finished
