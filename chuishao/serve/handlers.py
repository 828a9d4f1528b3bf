"""Error answers: a bad request is a 4xx with a readable message, never a 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from chuishao.serve.batcher import QueueFull
from chuishao.serve.feedback_store import StoreUnavailable

log = logging.getLogger("chuishao.serve")


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The input is not echoed back: it may be 20,000 characters or hold personal numbers.
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()[:20]]
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    json_kind = kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))
    if request.method == "POST" and not json_kind:  # curl -d sends a form: say so, not "valid dictionary"
        errors.insert(0, {"loc": ["header", "content-type"], "type": "content_type",
                          "msg": f"the body must be JSON sent with Content-Type: application/json (got {kind or 'none'})"})
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    # FastAPI's answer to a body it could not decode says nothing of why
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        return JSONResponse({"detail": "the request body is not readable JSON text: send UTF-8, uncompressed"},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await http_exception_handler(request, exc)


async def _store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.store_up.set(0)
    return JSONResponse({"detail": f"{exc}: the feedback was not stored; classification still works"},
                        status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "30"})


async def _queue_full(request: Request, exc: QueueFull) -> JSONResponse:
    return JSONResponse({"detail": f"the service is overloaded ({exc}): retry shortly"},
                        status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"})


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    # A bug, not a bad request. Logged through the PII-masking record factory (see logs.py).
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def add_exception_handlers(app: FastAPI) -> None:
    # Starlette types every handler as taking any Exception; it calls each only with the class it is registered for
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailable, _store_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(QueueFull, _queue_full)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal)
