"""Administration (API key): reload the served model."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, HTTPException, status

from chuishao.serve.deps import Holder, Metrics, admin_key
from chuishao.serve.schemas import ReloadResponse

log = logging.getLogger("chuishao.serve")

router = APIRouter()


@router.post("/admin/reload", response_model=ReloadResponse, tags=["ops"], dependencies=[Depends(admin_key)])
async def reload(holder: Holder, metrics: Metrics) -> ReloadResponse:
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
