"""`liif serve`'s API description is honest and its docs work offline.

- The OpenAPI schema declares the JSON error body and every status each route sends (no FastAPI 422 body
  that the server never sends), typed and described parameters with examples.
- A bounded schemathesis run against `/openapi.json` (in-process, a random-weight model built by the project's
  own code): every response conforms to the schema (status, content type, body) and none is a 5xx.
- `/docs` (Swagger UI) and `/redoc` (ReDoc) render in Chromium with every request going to the server itself.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from serving import CHROMIUM, needs_chromium, running, serve_config

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

from liif_cli.serve.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def app(model_path, tmp_path_factory):
    images = tmp_path_factory.mktemp("images")
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(images / "photo.png")
    return create_app(serve_config(model_path, images=images, max_out_pixels=20_000))


def test_the_schema_declares_the_error_body_and_every_status(app):
    spec = TestClient(app).get("/openapi.json").json()  # no lifespan: the shared app's job queue stays open
    assert "HTTPValidationError" not in str(spec)
    assert not re.search(r"(^|\W)--[a-z]", json.dumps(spec))  # described in the API's words: no CLI flag
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    expected = {
        ("/v1/upscale", "post"): {"200", "400", "401", "413", "422", "429", "503"},
        ("/v1/encodings", "post"): {"201", "400", "401", "413", "422", "429", "503"},
        ("/v1/encodings/{encoding_id}/render", "get"): {"200", "400", "401", "404", "429", "503"},
        ("/v1/encodings/{encoding_id}", "delete"): {"204", "400", "401", "404"},
        ("/iiif/3/{identifier}/info.json", "get"): {"200", "400", "401", "404", "422"},
        ("/iiif/3/{identifier}/{region}/{size}/{rotation}/{quality_format}", "get"): set(
            "200 400 401 404 413 422 429 501 503".split()
        ),
        ("/healthz", "get"): {"200"},
    }
    for (path, method), codes in expected.items():
        responses = spec["paths"][path][method]["responses"]
        assert set(responses) == codes, (path, set(responses))
        for code in codes - {"200", "201", "204"}:
            assert responses[code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }
    render = {p["name"]: p for p in spec["paths"]["/v1/encodings/{encoding_id}/render"]["get"]["parameters"]}
    assert render["quality"]["schema"]["type"] == "integer" and render["quality"]["schema"]["maximum"] == 100
    for name in ("region", "scale", "size", "width", "height", "format", "quality"):
        assert render[name].get("description") and render[name]["schema"].get("examples"), name


def test_every_response_conforms_to_the_schema(app):
    """schemathesis against /openapi.json, bounded: 12 examples per operation (derandomized), 20 s per answer
    (outputs are capped at 20,000 pixels, so that no example asks for a render of minutes).
    Every check it has: no 5xx, and status, content type, headers and body as the schema declares them."""
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 10  # healthz, models, estimate, upscale, 3 encodings routes, 3 IIIF routes

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case):
            # Not checked: that every schema-valid request is accepted. "Exactly one of scale, size, width,
            # height" spans fields, which the schema describes in words; the server answers it with a 400.
            case.call_and_validate(timeout=20, excluded_checks=[positive_data_acceptance])

        check()


# --- the docs pages in Chromium, offline ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    with running(model_path, tmp_path_factory.mktemp("docs") / "stderr.log") as started:
        yield started.url


@needs_chromium
@pytest.mark.parametrize("page_path,ready", [("/docs", ".swagger-ui .opblock"), ("/redoc", "[role=menuitem]")])
def test_docs_render_offline_with_no_request_off_the_server(server, page_path, ready):
    sync_api = pytest.importorskip("playwright.sync_api")
    requested: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context()

        def route(r):  # the network is unreachable: anything not for the server is refused, and recorded
            requested.append(r.request.url)
            if r.request.url.startswith(server) or r.request.url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + page_path)
        page.wait_for_selector(ready, timeout=60_000)
        text = page.inner_text("body")
        browser.close()
    assert "/v1/upscale" in text or "Upscale one image" in text
    off = [u for u in requested if not u.startswith(server)]
    assert off == [], off
    assert any(u.endswith((".js",)) for u in requested)  # its scripts came from the server
    assert errors == []
