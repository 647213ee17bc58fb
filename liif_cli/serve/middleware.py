"""Thin ASGI layers: a bound on request bodies, a bearer token, and one structured access-log record per request."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOG = logging.getLogger("liif.serve.access")


def _json_error(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[Message, Message]:
    body = json.dumps({"error": message}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        + (headers or []),
    }
    return start, {"type": "http.response.body", "body": body}


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body passes the limit: an HTTPException, so that the form parser
    lets it through (it turns other errors into 400) and the app's handler answers 413."""

    def __init__(self, limit: int):
        size = f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"
        text = f"upload larger than the limit of {size} (the server's max-upload setting)"
        super().__init__(413, text, {"Connection": "close"})


class BodyLimit:
    """Refuse bodies over `max_bytes`: at once from Content-Length, else while they stream in.

    The count happens as bytes arrive, so a client that lies about (or omits) its length is stopped
    at the limit, before the multipart parser has spooled more than that to disk.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            start, body = _json_error(413, BodyTooLarge(limit).detail, [(b"connection", b"close")])
            await send(start)
            await send(body)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


class BearerToken:
    """Every request but `GET /healthz` and CORS preflights needs the token: `Authorization: Bearer TOKEN`,
    or HTTP Basic with TOKEN as the password (any user name), which is how a browser sends it after asking
    once: a page navigation without it gets a Basic challenge, so the browser shows its login dialog and
    then sends the credentials with every request of the page (its images and tiles included). Otherwise
    401 with the JSON error body. Compared in constant time."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token.encode()

    def _allowed(self, header: bytes | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(b" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == b"basic":
            try:
                value = base64.b64decode(value, validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                return False
        elif scheme != b"bearer":
            return False
        return hmac.compare_digest(value, self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/healthz" or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self._allowed(headers.get(b"authorization")):
            return await self.app(scope, receive, send)
        page = b"text/html" in headers.get(b"accept", b"")
        challenge = b'Basic realm="liif serve"' if page else b'Bearer realm="liif serve"'
        message = "this server needs its token: send 'Authorization: Bearer TOKEN'"
        if headers.get(b"authorization"):
            message = "wrong token in the Authorization header"
        start, body = _json_error(401, message, [(b"www-authenticate", challenge)])
        await send(start)
        await send(body)


class AccessLog:
    """One `liif.serve.access` record per request, as JSON: method, path, status, bytes out, ms, client.

    The query string is left out (it may carry region coordinates, nothing secret, but keeps lines short).
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        record: dict[str, Any] = {"method": scope.get("method"), "path": scope.get("path"), "status": None, "bytes": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            elif message["type"] == "http.response.body":
                record["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            record["ms"] = round((time.perf_counter() - t0) * 1000, 1)
            record["client"] = f"{client[0]}:{client[1]}" if client else None
            if record["status"] is None:
                record["status"] = 499  # the client went away before an answer started
            ACCESS_LOG.info(json.dumps(record), extra={"access": record})
