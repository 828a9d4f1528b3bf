"""The FastAPI app: wires settings, model holder, metrics, feedback store and inference queue
into the routers of serve/routes (classification, feedback, similar reports, health and metrics, admin, operator page)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from chuishao.analysis.events_config import EventsConfig
from chuishao.serve.batcher import InferenceQueue
from chuishao.serve.feedback_store import FeedbackStore
from chuishao.serve.handlers import add_exception_handlers
from chuishao.serve.headers import SecurityHeaders
from chuishao.serve.id_key import key_of
from chuishao.serve.limits import BodyLimit, JsonGuard
from chuishao.serve.logs import install_pii_masking
from chuishao.serve.metrics import ServeMetrics
from chuishao.serve.model_holder import ModelHolder
from chuishao.serve.reloading import reload_on_hangup, stop_reloading_on_hangup, watch
from chuishao.serve.routes import admin, classify, feedback, health, pages, similar
from chuishao.serve.security import AuthThrottle
from chuishao.serve.settings import ServeSettings
from chuishao.serve.similar_store import SimilarStore
from chuishao.serve.timing import Timing
from chuishao.version import __version__

log = logging.getLogger("chuishao.serve")
ENDPOINTS = frozenset({"/", "/v1/classify", "/v1/classify/batch", "/v1/taxonomy", "/v1/feedback", "/v1/feedback/export",
                       "/v1/similar", "/healthz", "/readyz", "/metrics", "/admin/reload", "/docs", "/openapi.json",
                       "/static/app.js", "/static/app.css"})


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start-up and shut-down: the model, the feedback store, the inference queue and the reloaders.
    The routes read what this puts on ``app.state`` through serve/deps.py."""
    settings: ServeSettings = app.state.settings
    holder: ModelHolder = app.state.holder
    metrics: ServeMetrics = app.state.metrics
    install_pii_masking()
    if holder.current is None:
        # once, at start-up: the model directory, else the verified copy of the model in service
        # (kept by chuishao serve); a broken model without a copy fails the start
        await asyncio.to_thread(holder.start)
    metrics.model_switched(None, holder.require().version)
    if not settings.api_keys:
        log.warning("no API key configured (CHUISHAO_API_KEYS): feedback and admin endpoints are disabled")
    # strict=False: a store that cannot be opened (read-only, full, server down) degrades the
    # service (feedback 503, /readyz says so), it does not stop classification
    store = await asyncio.to_thread(FeedbackStore, settings.db_url, False, key_of(settings))
    app.state.store = store
    app.state.similar = await asyncio.to_thread(_similar_store, store, settings)
    metrics.store_up.set(1 if store.up else 0)
    queue = InferenceQueue(holder, settings.micro_batch, settings.max_queue)
    queue.start()
    app.state.queue = queue
    watcher = asyncio.create_task(watch(holder, metrics, settings.model_poll_seconds))
    hup = reload_on_hangup(holder, metrics)
    try:
        yield
    finally:
        if hup:
            stop_reloading_on_hangup()
        watcher.cancel()
        await queue.stop()
        app.state.store.close()
        metrics.process_ended()


def _similar_store(store: FeedbackStore, settings: ServeSettings) -> SimilarStore | None:
    """The recent reports, in the feedback store's database; None (so /v1/similar answers 503) when that
    database is down. A bad events config stops the start: it is the operator's file to fix."""
    config = EventsConfig.load(settings.events_config)
    if not store.up:
        return None
    try:
        return SimilarStore(store.engine, config, settings.similar_retention_days, store.id_key)
    except SQLAlchemyError as exc:
        log.error("store of recent reports unavailable: %s; /v1/similar gets 503", exc.__class__.__name__)
        return None


def create_app(settings: ServeSettings | None = None, holder: ModelHolder | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    holder = holder or ModelHolder(settings.model_dir, settings.taxonomy, settings.model_fallback_dir, settings.gazetteer)
    metrics = ServeMetrics()
    app = FastAPI(
        title="chuishao routing service", version=__version__, lifespan=lifespan,
        description="把市民诉求（12345热线、微信、网页）分到15类“吹哨”事项并建议主办/协办部门；"
                    "坐席确认或纠正后的结果经 /v1/feedback 回流为训练数据。",
    )
    app.state.settings, app.state.holder, app.state.metrics = settings, holder, metrics
    app.state.auth_throttle = AuthThrottle(settings.auth_max_failures, settings.auth_lockout_seconds)
    # the last added runs first: the body limit refuses a huge body before anything reads it, the
    # JSON guard refuses non-UTF-8 bodies and over-limit batches before parsing, and timing wraps
    # them all, so refused requests are counted too
    app.add_middleware(JsonGuard, max_batch=settings.max_batch)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(Timing, metrics=metrics, endpoints=ENDPOINTS)
    add_exception_handlers(app)
    for routes in (classify, feedback, similar, health, admin, pages):
        app.include_router(routes.router)
    return app
