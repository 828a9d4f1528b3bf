"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from chuishao.serve.deps import Holder, Metrics
from chuishao.serve.schemas import Readiness

router = APIRouter()


@router.api_route("/healthz", methods=["GET", "HEAD"], tags=["ops"])  # HEAD: load balancers probe with it
async def healthz() -> dict[str, str]:
    """Alive (the process answers); says nothing about the model."""
    return {"status": "ok"}


@router.api_route("/readyz", methods=["GET", "HEAD"], response_model=Readiness, tags=["ops"],
                  responses={503: {"model": Readiness}})
async def readyz(holder: Holder) -> JSONResponse:
    loaded = holder.current
    if loaded is None:
        return JSONResponse(Readiness(ready=False).model_dump(mode="json"), status_code=503)
    body = Readiness(ready=True, model_version=loaded.version, model_dir=str(loaded.directory),
                     loaded_at=loaded.loaded_at)
    return JSONResponse(body.model_dump(mode="json"))


@router.get("/metrics", tags=["ops"], response_class=Response)
async def prometheus(metrics: Metrics) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)
