"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from chuishao.serve.deps import Holder, Metrics, Store
from chuishao.serve.schemas import Readiness

router = APIRouter()


@router.api_route("/healthz", methods=["GET", "HEAD"], tags=["ops"])  # HEAD: load balancers probe with it
async def healthz() -> dict[str, str]:
    """Alive (the process answers); says nothing about the model."""
    return {"status": "ok"}


@router.api_route("/readyz", methods=["GET", "HEAD"], response_model=Readiness, tags=["ops"],
                  responses={503: {"model": Readiness}})
async def readyz(holder: Holder, store: Store, metrics: Metrics) -> JSONResponse:
    """200 while classification works (``status`` says ``degraded`` when the feedback store or the
    model directory is not fine); 503 until the model is loaded."""
    loaded = holder.current
    if loaded is None:
        return JSONResponse(Readiness(ready=False).model_dump(mode="json"), status_code=503)
    disk = await asyncio.to_thread(holder.disk_state)
    store_up, store_error = await asyncio.to_thread(store.health)
    metrics.store_up.set(1 if store_up else 0)
    degraded = not store_up or disk.state == "broken" or loaded.source != "directory"
    body = Readiness(ready=True, status="degraded" if degraded else "ok", model_version=loaded.version,
                     model_dir=str(loaded.directory), loaded_at=loaded.loaded_at, model_source=loaded.source,
                     model_on_disk=disk.state, model_on_disk_error=disk.error,
                     feedback_store="ok" if store_up else "down", feedback_store_error=store_error)
    return JSONResponse(body.model_dump(mode="json"))


@router.get("/metrics", tags=["ops"], response_class=Response)
async def prometheus(metrics: Metrics) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)
