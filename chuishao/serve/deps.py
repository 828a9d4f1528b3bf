"""What the routes need, read from ``request.app.state`` (create_app and its lifespan put it there)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chuishao.serve.batcher import InferenceQueue
from chuishao.serve.feedback_store import FeedbackStore
from chuishao.serve.metrics import ServeMetrics
from chuishao.serve.model_holder import ModelHolder
from chuishao.serve.security import AuthThrottle, api_key_header, check_key, given_key
from chuishao.serve.settings import ServeSettings


# async: resolved on the event loop, no thread-pool hop per request
async def get_settings(request: Request) -> ServeSettings:
    return request.app.state.settings


async def get_holder(request: Request) -> ModelHolder:
    return request.app.state.holder


async def get_metrics(request: Request) -> ServeMetrics:
    return request.app.state.metrics


async def get_store(request: Request) -> FeedbackStore:
    return request.app.state.store  # opened by the lifespan


async def get_queue(request: Request) -> InferenceQueue:
    return request.app.state.queue  # started by the lifespan


Settings = Annotated[ServeSettings, Depends(get_settings)]
Holder = Annotated[ModelHolder, Depends(get_holder)]
Metrics = Annotated[ServeMetrics, Depends(get_metrics)]
Store = Annotated[FeedbackStore, Depends(get_store)]
Queue = Annotated[InferenceQueue, Depends(get_queue)]


def _check(request: Request, settings: ServeSettings) -> None:
    throttle: AuthThrottle | None = getattr(request.app.state, "auth_throttle", None)
    client = request.client.host if request.client is not None else ""
    check_key(settings, given_key(request), throttle, client)


async def admin_key(request: Request, settings: Settings,
                    _: Annotated[str | None, Depends(api_key_header)] = None) -> None:
    """A configured API key, for feedback and admin endpoints (``_`` puts the scheme in the OpenAPI spec)."""
    _check(request, settings)


async def classify_key(request: Request, settings: Settings) -> None:
    """A configured API key for classification, when the settings ask for one."""
    if settings.classify_requires_key:
        _check(request, settings)
