"""An ASGI middleware that refuses oversized request bodies before they are read.

Every endpoint has a body limit: JSON endpoints ``max_bytes`` (1 MiB), the upload
endpoint (which streams to disk) its per-file limit plus room for the multipart
envelope. A ``Content-Length`` above the limit is answered 413 before a byte of the
body is read, and the connection is closed; a body sent without a length (chunked)
is cut off at the limit with the same 413.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(Exception):
    """Raised inside the wrapped app when the streamed body exceeds the limit."""


class BodyLimitMiddleware:
    """Cap request bodies at ``max_bytes``, or at the limit of a path prefix in ``limits``."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        limits: Iterable[tuple[str, int]] = (),
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.limits = tuple(limits)

    def limit_for(self, path: str) -> int:
        """The body limit of a request path (bytes)."""
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streaming = any(scope["path"].startswith(prefix) for prefix, _ in self.limits)
        max_bytes = self.limit_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        refusal = _refuse_declared(declared, max_bytes)
        if refusal is not None:
            await _reject(send, *refusal)
            return
        if declared is None and not streaming:
            # A small body of unknown length is read here, up to the limit, and handed
            # on whole: the frameworks below turn a receive error into a 400.
            buffered = await _read_limited(receive, max_bytes)
            if buffered is None:
                await _reject(send, 413, _message(max_bytes))
                return
            receive = _replay(buffered, receive)
        await self._call_limited(scope, receive, send, max_bytes)

    async def _call_limited(
        self, scope: Scope, receive: Receive, send: Send, max_bytes: int
    ) -> None:
        """Run the app, cutting the body off at ``max_bytes`` with a 413 (if the app has
        not started its answer yet)."""
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(_message(max_bytes))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reject(send, 413, _message(max_bytes))


def _refuse_declared(declared: bytes | None, max_bytes: int) -> tuple[int, str] | None:
    """Status and message for a ``Content-Length`` that is invalid or over the limit."""
    if declared is None:
        return None
    try:
        too_big = int(declared) > max_bytes
    except ValueError:
        return 400, "invalid Content-Length header"
    return (413, _message(max_bytes)) if too_big else None


async def _read_limited(receive: Receive, max_bytes: int) -> list[Message] | None:
    """The request's body messages, or None once they exceed ``max_bytes``."""
    messages: list[Message] = []
    total = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        total += len(message.get("body", b""))
        if total > max_bytes:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out ``messages`` first, then asks the server."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _message(max_bytes: int) -> str:
    return f"request body too large (limit {max_bytes} bytes)"


async def _reject(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
