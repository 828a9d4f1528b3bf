"""Error answers: a bad request is a 4xx with a readable message, never a 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("chuishao.serve")


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The input is not echoed back: it may be 20,000 characters or hold personal numbers.
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()[:20]]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    # FastAPI's answer to a body it could not decode says nothing of why
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        return JSONResponse({"detail": "the request body is not readable JSON text: send UTF-8, uncompressed"},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await http_exception_handler(request, exc)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    # A bug, not a bad request. Logged through the PII-masking record factory (see logs.py).
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def add_exception_handlers(app: FastAPI) -> None:
    # Starlette types every handler as taking any Exception; it calls each only with the class it is registered for
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal)
