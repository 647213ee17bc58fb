"""The API's own description: the error body and every status a route sends, for `/openapi.json`, `/docs`
(Swagger UI) and `/redoc` (ReDoc). Both pages come from `fastapi-offline` (the `serve` extra), which ships
their scripts and styles inside the package, so the docs render with no network.

FastAPI would document a 422 with its own validation body on every route with parameters; this server
never sends that (a malformed parameter is a 400 with `{"error": ...}`), so `openapi` replaces it with what
the server does send, and adds the 401 every route but `/healthz` answers when the server has a token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI


class ErrorBody(BaseModel):
    """Every error the server sends: one line, no traceback, no server path."""

    error: str = Field(
        description="What was wrong, in one line.", examples=["scale must be a finite number > 0, got '-1'"]
    )


WHY = {
    400: "A bad or missing parameter, an unknown field, a region outside the image, an output over the limit.",
    401: "The server requires a token and the request has no valid `Authorization: Bearer TOKEN`.",
    404: "Unknown, deleted or evicted id (the message says which).",
    413: "The upload is over the byte limit; or its encoding is larger than the server's whole cache.",
    422: "Not a readable image, truncated or corrupt, or over the pixel limit.",
    429: "The queue is full; `Retry-After` says in how many seconds to try again.",
    501: "A valid IIIF request for something this server does not do (a rotation not a multiple of 90, "
    "the tif, gif, pdf or jp2 formats).",
    503: "The server is shutting down, or the model cannot be loaded.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each code with the JSON error body and why it is sent."""
    return {code: {"model": ErrorBody, "description": WHY[code]} for code in codes}


def openapi(app: FastAPI) -> dict[str, Any]:
    """The schema as the server behaves: FastAPI's 422 validation body replaced by the 400 error body,
    and 401 declared on every route but `/healthz`."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    body = {"content": {"application/json": {"schema": error_ref}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            default = responses.get("422", {})
            if "HTTPValidationError" in str(default):
                del responses["422"]
                responses.setdefault("400", {"description": WHY[400], **body})
            if path != "/healthz":
                responses.setdefault("401", {"description": WHY[401], **body})
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components.setdefault("ErrorBody", ErrorBody.model_json_schema())
    app.openapi_schema = schema
    return schema


DOCS_PATHS = ("/docs", "/redoc")
# Everything from this server: the bundled scripts and styles, inline bootstraps, data: images and blob:
# workers. ReDoc's sidebar always asks for a Redocly logo on a CDN; this makes the browser refuse it
# without any request (ReDoc then leaves the logo out).
DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


class DocsPolicy:
    """A Content-Security-Policy on `/docs` and `/redoc` that keeps every request on this server."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in DOCS_PATHS:
            return await self.app(scope, receive, send)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"content-security-policy", DOCS_CSP)]}
            await send(message)

        await self.app(scope, receive, sending)
