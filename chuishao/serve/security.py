"""API keys for feedback and admin endpoints (and classification when configured)."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.security import APIKeyHeader

from chuishao.serve.settings import ServeSettings

# auto_error=False: the dependency below gives one clear message for every failure.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="a key from CHUISHAO_API_KEYS")


def check_key(settings: ServeSettings, given: str | None) -> None:
    if not settings.api_keys:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "this endpoint is disabled: the server has no API key configured (CHUISHAO_API_KEYS)")
    if not settings.key_ok(given):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong API key (header X-API-Key)",
                            headers={"WWW-Authenticate": "X-API-Key"})


def given_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key is None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    return key
