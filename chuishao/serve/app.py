"""The FastAPI app: classification, taxonomy, feedback, health, metrics, operator page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chuishao.models.answer import RoutingAnswer
from chuishao.serve.batcher import InferenceQueue, Item
from chuishao.serve.feedback_store import FeedbackStore, has_text, training_record
from chuishao.serve.limits import BodyLimit
from chuishao.serve.logs import install_pii_masking
from chuishao.serve.metrics import ServeMetrics
from chuishao.serve.model_holder import ModelHolder
from chuishao.serve.schemas import (
    BatchRequest,
    BatchResponse,
    ClassifyRequest,
    FeedbackRequest,
    FeedbackStored,
    Readiness,
    ReloadResponse,
)
from chuishao.serve.security import api_key_header, check_key, given_key
from chuishao.serve.settings import ServeSettings
from chuishao.serve.taxonomy_view import taxonomy_view
from chuishao.serve.timing import Timing
from chuishao.version import __version__

log = logging.getLogger("chuishao.serve")
STATIC = Path(__file__).resolve().parent / "static"
ENDPOINTS = frozenset({"/", "/v1/classify", "/v1/classify/batch", "/v1/taxonomy", "/v1/feedback", "/v1/feedback/export",
                       "/healthz", "/readyz", "/metrics", "/admin/reload", "/docs", "/openapi.json"})
JSON = "application/json"


def create_app(settings: ServeSettings | None = None, holder: ModelHolder | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    holder = holder or ModelHolder(settings.model_dir, settings.taxonomy)
    metrics = ServeMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_pii_masking()
        if holder.current is None:
            await asyncio.to_thread(holder.load)  # once, at start-up: a broken model fails the start
        metrics.model_switched(None, holder.require().version)
        if not settings.api_keys:
            log.warning("no API key configured (CHUISHAO_API_KEYS): feedback and admin endpoints are disabled")
        app.state.store = await asyncio.to_thread(FeedbackStore, settings.db_url)
        queue = InferenceQueue(holder, settings.micro_batch)
        queue.start()
        app.state.queue = queue
        watcher = asyncio.create_task(_watch(holder, metrics, settings.model_poll_seconds))
        hup = _reload_on_hangup(holder, metrics)
        try:
            yield
        finally:
            if hup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            watcher.cancel()
            await queue.stop()
            app.state.store.close()
            metrics.process_ended()

    app = FastAPI(
        title="chuishao routing service", version=__version__, lifespan=lifespan,
        description="把市民诉求（12345热线、微信、网页）分到15类“吹哨”事项并建议主办/协办部门；"
                    "坐席确认或纠正后的结果经 /v1/feedback 回流为训练数据。",
    )
    app.state.settings, app.state.holder, app.state.metrics = settings, holder, metrics
    # the last added runs first: the body limit refuses a huge body before anything reads it, and
    # timing wraps even that, so refused requests are counted too
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Timing, metrics=metrics, endpoints=ENDPOINTS)

    # ---- errors: a bad request is a 4xx with a readable message, never a 500 ---------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The input is not echoed back: it may be 20,000 characters or hold personal numbers.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's answer to a body it could not decode says nothing of why
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return JSONResponse({"detail": "the request body is not readable JSON text: send UTF-8, uncompressed"},
                                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not a bad request. Logged through the PII-masking record factory (see logs.py).
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    # ---- dependencies -------------------------------------------------------------------
    async def admin_key(request: Request, _: Annotated[str | None, Depends(api_key_header)] = None) -> None:
        check_key(settings, given_key(request))

    async def classify_key(request: Request) -> None:
        if settings.classify_requires_key:
            check_key(settings, given_key(request))

    def _check_sizes(req: ClassifyRequest, where: str = "") -> None:
        if len(req.text) > settings.max_text_chars:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"{where}text too long: {len(req.text)} characters, the limit is {settings.max_text_chars}")
        if req.title is not None and len(req.title) > settings.max_title_chars:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"{where}title too long: {len(req.title)} characters, the limit is {settings.max_title_chars}")

    # ---- classification ------------------------------------------------------------------
    @app.post("/v1/classify", response_model=RoutingAnswer, tags=["classify"], dependencies=[Depends(classify_key)],
              responses={413: {"description": "text over the limit"}, 422: {"description": "unusable text"}})
    async def classify(req: ClassifyRequest, request: Request) -> Response:
        """Route one message: topic, sub-problem, departments, top-3, evidence words, model version."""
        _check_sizes(req)
        if not req.text.strip() and not (req.title or "").strip():
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "empty text")
        answers, _ = await request.app.state.queue.route([Item(req.text, req.title, req.id)])
        metrics.observe_answers(answers, req.channel)
        answer = answers[0]
        if answer.error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, answer.error)
        # Serialised directly (no second validation pass): this is the hot path.
        return Response(answer.model_dump_json(), media_type=JSON)

    @app.post("/v1/classify/batch", response_model=BatchResponse, tags=["classify"],
              dependencies=[Depends(classify_key)], responses={413: {"description": "too many items or text too long"}})
    async def classify_batch(req: BatchRequest, request: Request) -> Response:
        """Route up to ``max_batch`` messages; answers in input order, an unusable one carries ``error``."""
        if len(req.items) > settings.max_batch:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"batch too large: {len(req.items)} items, the limit is {settings.max_batch}")
        for i, item in enumerate(req.items):
            _check_sizes(item, f"items[{i}]: ")
        answers, _ = await request.app.state.queue.route([Item(it.text, it.title, it.id) for it in req.items])
        for item, answer in zip(req.items, answers):
            metrics.observe_answers([answer], item.channel)
        return Response(BatchResponse(answers=answers).model_dump_json(), media_type=JSON)

    @app.get("/v1/taxonomy", tags=["classify"])
    async def taxonomy() -> dict[str, object]:
        """Areas, topics, sub-problems and departments of the served model's taxonomy."""
        return taxonomy_view(holder.require().model.taxonomy)

    # ---- feedback ----------------------------------------------------------------------
    @app.post("/v1/feedback", response_model=FeedbackStored, status_code=201, tags=["feedback"],
              dependencies=[Depends(admin_key)])
    def feedback(req: FeedbackRequest, request: Request) -> FeedbackStored:
        """Store an operator's final topic / sub-problem / departments for a message (API key)."""
        tax = holder.require().model.taxonomy
        if req.topic not in tax.labels:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown topic {req.topic!r}")
        if req.sub is not None and req.sub not in tax.subs_of(req.topic):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"sub-problem {req.sub!r} does not belong to topic {req.topic}")
        if req.predicted_topic is not None and req.predicted_topic not in tax.labels:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown predicted_topic {req.predicted_topic!r}")
        for value, name, limit in ((req.text, "text", settings.max_text_chars), (req.title, "title", settings.max_title_chars)):
            if value is not None and len(value) > limit:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                    f"{name} too long: {len(value)} characters, the limit is {limit}")
        # Sync endpoint: FastAPI runs it in its thread pool, so the database write never blocks the loop.
        row = request.app.state.store.add(
            message_id=req.id, topic=req.topic, sub=req.sub, lead=req.departments.lead,
            assist=list(req.departments.assist), title=req.title, text=req.text, channel=req.channel,
            predicted_topic=req.predicted_topic, model_version=req.model_version, operator=req.operator)
        agrees = "unknown" if req.predicted_topic is None else str(req.predicted_topic == req.topic).lower()
        metrics.feedback.labels(agrees).inc()
        return FeedbackStored(feedback_id=row.pk, id=row.message_id, created=row.created)

    @app.get("/v1/feedback/export", tags=["feedback"], dependencies=[Depends(admin_key)],
             response_class=StreamingResponse)
    def feedback_export(request: Request) -> StreamingResponse:
        """Latest feedback per message as training JSONL (same as ``chuishao feedback export``)."""
        import json

        rows = [json.dumps(jsonable_encoder(training_record(r)), ensure_ascii=False) + "\n"
                for r in request.app.state.store.latest_per_message() if has_text(r.text)]
        return StreamingResponse(iter(rows), media_type="application/x-ndjson")

    # ---- operations --------------------------------------------------------------------
    @app.api_route("/healthz", methods=["GET", "HEAD"], tags=["ops"])  # HEAD: load balancers probe with it
    async def healthz() -> dict[str, str]:
        """Alive (the process answers); says nothing about the model."""
        return {"status": "ok"}

    @app.api_route("/readyz", methods=["GET", "HEAD"], response_model=Readiness, tags=["ops"], responses={503: {"model": Readiness}})
    async def readyz() -> JSONResponse:
        loaded = holder.current
        if loaded is None:
            return JSONResponse(Readiness(ready=False).model_dump(mode="json"), status_code=503)
        body = Readiness(ready=True, model_version=loaded.version, model_dir=str(loaded.directory),
                         loaded_at=loaded.loaded_at)
        return JSONResponse(body.model_dump(mode="json"))

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/admin/reload", response_model=ReloadResponse, tags=["ops"], dependencies=[Depends(admin_key)])
    async def reload() -> ReloadResponse:
        """Load the configured model directory again and switch to it once loaded (no downtime).

        Only the configured directory (a symlink may point to a new version): a key holder
        cannot make the server unpickle an arbitrary file.
        """
        previous = holder.require().version
        try:
            new = await asyncio.to_thread(holder.load)
        except Exception as exc:  # any failure: the old model keeps serving
            log.error("reload failed, still serving %s: %s", previous, exc)
            raise HTTPException(status.HTTP_409_CONFLICT, f"new model not loaded, still serving {previous}: {exc}") from exc
        metrics.model_switched(previous, new.version)
        return ReloadResponse(previous_version=previous, model_version=new.version, switched=new.version != previous)

    # ---- operator page -------------------------------------------------------------------
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    return app


async def _reload(holder: ModelHolder, metrics: ServeMetrics, why: str) -> None:
    previous = holder.require().version
    try:
        new = await asyncio.to_thread(holder.load)
    except Exception as exc:  # noqa: BLE001 - the old model keeps serving
        log.error("%s: new model not loaded, still serving %s: %s", why, previous, exc)
        return
    metrics.model_switched(previous, new.version)


_running: set[asyncio.Task] = set()


def _keep(task: asyncio.Task) -> None:
    """Hold a fire-and-forget task until it ends: the loop keeps only a weak reference."""
    _running.add(task)
    task.add_done_callback(_running.discard)


def _reload_on_hangup(holder: ModelHolder, metrics: ServeMetrics) -> bool:
    """SIGHUP reloads the model in this process. With one worker uvicorn runs the app in its own
    process and leaves HUP at its default, which ends the service: an operator's usual "reload"
    must not. (With several workers the uvicorn parent gets HUP and replaces them.)"""
    if not hasattr(signal, "SIGHUP"):
        return False
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: _keep(loop.create_task(_reload(holder, metrics, "SIGHUP"))))
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread (tests), or no signals here
        return False
    return True


async def _watch(holder: ModelHolder, metrics: ServeMetrics, every: float) -> None:
    """Pick up a model written into the served directory (how workers other than the one that got
    /admin/reload follow it). A broken new model is logged and the old one keeps serving."""
    if every <= 0:
        return
    while True:
        await asyncio.sleep(every)
        previous = holder.require().version
        try:
            if await asyncio.to_thread(holder.reload_if_changed):
                metrics.model_switched(previous, holder.require().version)
        except Exception as exc:  # noqa: BLE001
            log.error("new model in %s not loaded, still serving %s: %s", holder.model_dir, previous, exc)
