"""Request-body limits as plain ASGI middleware: size, UTF-8 text and batch items, checked before the body is parsed."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chuishao.serve.batch_count import ItemCounter


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = too_large = refused = False

        async def counting_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # chunked upload without (or lying about) Content-Length
                    too_large = True
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started, refused
            if too_large:
                # FastAPI turns any error while reading the body into its own 400 ("error parsing
                # the body"): the client gets our 413 instead
                if message["type"] == "http.response.start" and not refused:
                    refused = True
                    await self._refuse(send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started and not refused:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body too large: the limit is {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


NOT_TEXT = "the request body is not readable JSON text: send UTF-8, uncompressed"


class JsonGuard:
    """Reads a request body once (after BodyLimit) and, before any parsing or validation:
    refuses one that is not UTF-8 (JSON parsers also take UTF-16 and UTF-32, which the API does
    not) and a batch with more than ``max_batch`` items. Batch items are counted as the body
    arrives (batch_count.py): at the ``max_batch + 1``-th the rest is read and dropped unseen, so
    an over-limit batch costs the same whatever its size."""

    def __init__(self, app: ASGIApp, max_batch: int, batch_path: str = "/v1/classify/batch") -> None:
        self.app = app
        self.max_batch = max_batch
        self.batch_path = batch_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        counter = ItemCounter(self.max_batch) if scope.get("path") == self.batch_path else None
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk, more = message.get("body", b""), bool(message.get("more_body", False))
            if counter is not None:
                try:
                    counter.feed(chunk, final=not more)
                except UnicodeDecodeError:
                    await _answer_after(receive, more, send, 422, NOT_TEXT)
                    return
                if counter.over:
                    await _answer_after(receive, more, send, 413, f"batch too large: more than {self.max_batch} "
                                                                  f"items, the limit is {self.max_batch}")
                    return
            chunks.append(chunk)
        body = b"".join(chunks)
        if counter is None and body and not _is_text(body):
            await _answer(send, 422, NOT_TEXT)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _is_text(body: bytes) -> bool:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\x00" not in text  # UTF-16/32 text of ASCII JSON is valid UTF-8 with NULs


async def _answer_after(receive: Receive, more: bool, send: Send, status: int, detail: str) -> None:
    """Answer once the client has sent its whole body, read and dropped here (BodyLimit bounds it):
    closing a connection with unread data resets it, and the client would never see the answer."""
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        more = bool(message.get("more_body", False))
    await _answer(send, status, detail)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
