"""`liif serve` as deployed: the bound port printed, a busy port or foreign address as one line and exit 11,
off-loopback refusal without a token, the token itself (401 with the JSON body), and JSON-lines logs.

Real servers in subprocesses (127.0.0.1 only) with a random-weight EDSR-baseline LIIF built by the project's
own model code; the token's rules also in-process.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT, one_line_error
from serving import ENV, running, serve_config, stop

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

from fastapi.testclient import TestClient  # noqa: E402

from liif_cli.load_options import LoadOptions  # noqa: E402
from liif_cli.serve.app import create_app  # noqa: E402


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liif_cli", "serve", *args],
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=timeout,
        cwd=ROOT,
    )


def test_port_0_prints_the_port_it_listens_on(model_path, tmp_path):
    import httpx

    with running(model_path, tmp_path / "log") as server:
        assert server.port > 0
        assert httpx.get(f"{server.url}/healthz", timeout=10).json()["status"] == "ok"  # the printed URL answers
        assert stop(server.proc) in (0, 130)
    assert "Traceback" not in (tmp_path / "log").read_text()


def test_the_option_block_reaches_every_worker(model_path, tmp_path):
    """`--device cpu,cpu` is two workers, and each loads the model with the rest of the block (one LoadOptions,
    passed down whole, as `liif upscale` takes it): both run in the precision asked."""
    import httpx

    args = ("--tile", "40", "--threads", "1", "--batch-size", "4096")
    with running(model_path, tmp_path / "log", *args, device="cpu,cpu", precision="bf16") as server:
        health = httpx.get(f"{server.url}/healthz", timeout=30).json()
        assert health["devices"] == ["cpu", "cpu"] and health["precision"] == ["bf16", "bf16"]
        assert stop(server.proc) in (0, 130)
    load = LoadOptions(precision="fp32", tile=40, batch_size=4096)  # in process: the renderer's own options
    with TestClient(create_app(serve_config(model_path, devices=("cpu", "cpu"), load=load))) as client:
        workers = [w.get() for w in client.app.state.jobs.resources]
        got = [(u.device.type, u.precision, u.renderer.options.tile, u.renderer.options.query_batch) for u in workers]
        assert got == [("cpu", "fp32", 40, 4096)] * 2


def test_a_busy_port_is_one_line_and_exit_11(model_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        r = cli("--port", str(port), "--model", str(model_path), "--device", "cpu")
    assert r.returncode == 11, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: {r.stderr.split(': ', 2)[2].strip()}"
    ]
    assert "in use" in r.stderr and "liif serve: http" not in r.stderr
    assert time.monotonic() - t0 < 60  # refused before the model would be loaded
    with socket.socket() as busy:  # with --log-format json, the error is a JSON record too
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = cli("--port", str(port), "--model", str(model_path), "--device", "cpu", "--log-format", "json")
    (line,) = r.stderr.strip().splitlines()
    assert r.returncode == 11 and json.loads(line)["level"] == "error" and "in use" in json.loads(line)["message"]


def test_an_address_not_of_this_machine_is_one_line_and_exit_11(model_path):
    r = cli("--host", "192.0.2.1", "--no-auth", "--port", "0", "--model", str(model_path), "--device", "cpu")
    assert r.returncode == 11, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "not an address of this machine" in r.stderr


def test_off_loopback_without_a_token_refuses_to_start(model_path):
    r = cli("--host", "0.0.0.0", "--port", "0", "--model", str(model_path), "--device", "cpu")
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: --host 0.0.0.0 is reachable") and "--token" in line and "--no-auth" in line
    r = cli("--host", "0.0.0.0", "--token", "t", "--no-auth", "--model", str(model_path))
    assert r.returncode == 2 and "contradict" in r.stderr


def test_with_a_token_every_route_but_healthz_needs_it(model_path, tmp_path):
    with TestClient(create_app(serve_config(model_path, token="s3cret", images=tmp_path))) as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/", "/v1/models", "/openapi.json", "/docs", "/static/app.js", "/iiif/3/x/info.json"):
            r = client.get(path)
            assert r.status_code == 401, (path, r.text)
            assert "token" in one_line_error(r) and r.headers["www-authenticate"].startswith("Bearer")
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong token" in one_line_error(wrong)
        page = client.get("/", headers={"Accept": "text/html"})  # a browser: asked once, by its own dialog
        assert page.status_code == 401 and page.headers["www-authenticate"].startswith("Basic")
        assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        basic = base64.b64encode(b"anyone:s3cret").decode()
        assert client.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
        iiif = client.get("/iiif/3/x/info.json")
        assert iiif.status_code == 401 and iiif.headers["access-control-allow-origin"] == "*"
        pre = client.options(
            "/iiif/3/x/info.json", headers={"Origin": "http://a", "Access-Control-Request-Method": "GET"}
        )
        assert pre.status_code == 204  # a preflight never carries the token
        assert client.post("/v1/encodings").status_code == 401


def test_cors_origin_allows_only_the_named_origins(model_path):
    with TestClient(create_app(serve_config(model_path, cors_origins=("http://viewer.test",)))) as client:
        ok = client.get("/v1/models", headers={"Origin": "http://viewer.test"})
        assert ok.headers["access-control-allow-origin"] == "http://viewer.test"
        other = client.get("/v1/models", headers={"Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in other.headers
    with TestClient(create_app(serve_config(model_path))) as client:
        assert "access-control-allow-origin" not in client.get("/v1/models", headers={"Origin": "http://a"}).headers


def test_log_format_json_every_line_is_a_json_object(model_path, tmp_path):
    import httpx

    log = tmp_path / "log"
    with running(model_path, log, "--log-format", "json", env={**ENV, "LIIF_SERVE_TOKEN": "tok"}) as server:
        url = server.url
        auth = {"Authorization": "Bearer tok"}
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/nothing", headers=auth).status_code == 404
        assert (
            httpx.post(
                f"{url}/v1/upscale", headers=auth, files={"image": ("x.png", b"junk")}, data={"scale": "2"}
            ).status_code
            == 422
        )
        with socket.create_connection(("127.0.0.1", server.port)) as raw:  # not HTTP at all
            raw.sendall(b"\x00\x01garbage\r\n\r\n")
            raw.recv(100)
        assert stop(server.proc) in (0, 130)
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    assert all(isinstance(r, dict) and "time" in r and "level" in r for r in records)
    access = [r for r in records if r["logger"] == "liif.serve.access"]
    assert {(r["path"], r["status"]) for r in access} >= {
        ("/healthz", 200),
        ("/v1/models", 401),
        ("/v1/nothing", 404),
        ("/v1/upscale", 422),
    }
    assert any("liif serve: http://127.0.0.1:" in r.get("message", "") for r in records)
