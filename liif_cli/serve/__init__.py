"""`liif serve`: a local web page and HTTP API over the library (needs the `serve` extra).

    from liif_cli.serve.app import ServeConfig, create_app   # the FastAPI app (tests, embedding)
    from liif_cli.serve.server import serve                 # what `liif serve` runs

Modules: `app` (`ServeConfig`: one `LoadOptions`, the devices and the server's own settings; routes: parse and
respond; library errors in the server's words), `jobs` (bounded queue, one worker per device), `upscale` (upload
bytes -> the CLI's batch path -> output bytes), `encodings` (upload -> Encoding; region render -> bytes),
`cache` (byte-bounded LRU for encodings), `middleware` (body limit, token, access log), `server` (bind, uvicorn,
logging, shutdown), `iiif` (the IIIF Image API 3.0), `docs` (the OpenAPI schema as the server behaves),
`static/` (the page: app.js; the zoom viewer: zoom.js).
This file imports nothing heavy, so `liif serve --help` stays fast and works without the extra.
"""

MISSING_EXTRA = (
    "liif serve needs the 'serve' extra: pip install 'liif-cli[serve]' (fastapi, uvicorn, python-multipart, "
    "fastapi-offline)"
)


def check_installed() -> None:
    """Raise a one-line UsageError naming the install command when the extra is missing."""
    import importlib.util

    from ..errors import UsageError

    missing = [m for m in ("fastapi", "uvicorn", "multipart", "fastapi_offline") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"{MISSING_EXTRA}; missing: {', '.join(missing)}")
