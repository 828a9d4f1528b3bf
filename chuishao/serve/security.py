"""API keys for feedback and admin endpoints (and classification when configured)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from fastapi import HTTPException, Request, status
from fastapi.security import APIKeyHeader

from chuishao.serve.settings import ServeSettings

# auto_error=False: the dependency below gives one clear message for every failure.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="a key from CHUISHAO_API_KEYS")


class AuthThrottle:
    """Wrong API keys per client address (a missing key does not count): after ``max_failures`` within ``lockout`` seconds the
    address gets 429 for ``lockout`` seconds, right key or not (guessing keys costs time). Per
    worker process; behind a proxy every client has the proxy's address, so all are locked out together."""

    MAX_CLIENTS = 10_000  # the oldest addresses are forgotten first: the table cannot grow without bound

    def __init__(self, max_failures: int, lockout: float) -> None:
        self.max_failures = max_failures
        self.lockout = lockout
        self._clients: OrderedDict[str, tuple[int, float, float]] = OrderedDict()  # count, first failure, locked until

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds left of this client's lockout, 0 when it is not locked out."""
        entry = self._clients.get(client)
        if entry is None:
            return 0.0
        return max(0.0, entry[2] - (time.monotonic() if now is None else now))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        count, first, until = self._clients.pop(client, (0, now, 0.0))
        if now - first > self.lockout:
            count, first = 0, now
        count += 1
        if count >= self.max_failures:
            count, first, until = 0, now, now + self.lockout
        self._clients[client] = (count, first, until)
        while len(self._clients) > self.MAX_CLIENTS:
            self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)


def check_key(settings: ServeSettings, given: str | None, throttle: AuthThrottle | None = None,
              client: str = "") -> None:
    if not settings.api_keys:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "this endpoint is disabled: the server has no API key configured (CHUISHAO_API_KEYS)")
    wait = throttle.retry_after(client) if throttle is not None else 0.0
    if wait > 0:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many wrong API keys from this address: try later",
                            headers={"Retry-After": str(math.ceil(wait))})
    if not given:  # no key is no guess: it does not count towards the lockout (an operator yet to enter one)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key (header X-API-Key)",
                            headers={"WWW-Authenticate": "X-API-Key"})
    if not settings.key_ok(given):
        if throttle is not None:
            throttle.failed(client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong API key (header X-API-Key)",
                            headers={"WWW-Authenticate": "X-API-Key"})
    if throttle is not None:
        throttle.succeeded(client)


def given_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key is None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    return key
