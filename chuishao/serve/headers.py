"""Security headers on every response; a Content-Security-Policy on the operator page."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The operator page loads its script and style from /static (no inline code) and calls the API
# on its own origin; nothing may frame it.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_PATHS = frozenset({"/", "/static/app.js", "/static/app.css"})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
        if scope.get("path") in PAGE_PATHS:  # not /docs: Swagger UI needs inline script and a CDN
            extra += [(b"content-security-policy", PAGE_CSP.encode()), (b"referrer-policy", b"no-referrer")]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
