"""Request-body size limit as plain ASGI middleware: a huge body is refused before it is read whole."""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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


_WS = re.compile(r"[ \t\n\r]*")
def _skip(text: str, i: int) -> int:
    match = _WS.match(text, i)
    return match.end() if match else i


NOT_TEXT = "the request body is not readable JSON text: send UTF-8, uncompressed"


def count_items(text: str, limit: int) -> int | None:
    """The number of elements of the top-level ``"items"`` array of a JSON object, counted up to
    ``limit + 1`` only: an over-limit batch is known after ``limit + 1`` elements, whatever its
    size. None when the text is not such an object (the app's own parsing then answers)."""
    scan = vars(json.JSONDecoder())["scan_once"]  # the C scanner json.loads uses: one value from an index
    try:
        i = _skip(text, 0)
        if text[i] != "{":
            return None
        i = _skip(text, i + 1)
        while text[i] == '"':
            key, i = scan(text, i)
            i = _skip(text, i)
            if text[i] != ":":
                return None
            i = _skip(text, i + 1)
            if key == "items" and text[i] == "[":
                i = _skip(text, i + 1)
                if text[i] == "]":
                    return 0
                count = 0
                while True:
                    _, i = scan(text, i)
                    count += 1
                    if count > limit:
                        return count
                    i = _skip(text, i)
                    if text[i] == "]":
                        return count
                    if text[i] != ",":
                        return None
                    i = _skip(text, i + 1)
            _, i = scan(text, i)
            i = _skip(text, i)
            if text[i] != ",":
                return None
            i = _skip(text, i + 1)
        return None
    except (StopIteration, ValueError, IndexError):
        return None


class JsonGuard:
    """Reads a request body once (after BodyLimit) and, before any parsing or validation:
    refuses one that is not UTF-8 (JSON parsers also take UTF-16 and UTF-32, which the API does
    not) and a batch with more than ``max_batch`` items, counted without parsing the rest."""

    def __init__(self, app: ASGIApp, max_batch: int, batch_path: str = "/v1/classify/batch") -> None:
        self.app = app
        self.max_batch = max_batch
        self.batch_path = batch_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is None or "\x00" in text:  # UTF-16/32 text of ASCII JSON is valid UTF-8 with NULs
                await _answer(send, 422, NOT_TEXT)
                return
            if scope.get("path") == self.batch_path:
                count = count_items(text.removeprefix("\ufeff"), self.max_batch)
                if count is not None and count > self.max_batch:
                    await _answer(send, 413, f"batch too large: more than {self.max_batch} items, "
                                             f"the limit is {self.max_batch}")
                    return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


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
