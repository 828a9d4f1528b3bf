"""Administration (API key): reload the served model."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, HTTPException, status

from chuishao.analysis.gates import reload_refusal
from chuishao.errors import ModelLoadError
from chuishao.serve.deps import Holder, Metrics, admin_key
from chuishao.serve.schemas import ReloadResponse

log = logging.getLogger("chuishao.serve")

router = APIRouter()


@router.post("/admin/reload", response_model=ReloadResponse, tags=["ops"], dependencies=[Depends(admin_key)])
async def reload(holder: Holder, metrics: Metrics) -> ReloadResponse:
    """Load the configured model directory again and switch to it once loaded (no downtime).

    Only the configured directory (a symlink may point to a new version): a key holder
    cannot make the server unpickle an arbitrary file. The promotion gates run first (analysis/gates.py:
    a gate set from CHUISHAO_GATE_DATA, a policy from CHUISHAO_GATES): a refused model is not loaded.
    """
    previous = holder.require().version
    try:
        refusal = await asyncio.to_thread(reload_refusal, holder.require().model, holder.model_dir)
    except Exception as exc:  # the old model keeps serving
        log.error("reload failed, still serving %s: %s", previous, exc)
        what = (f"the model in {holder.model_dir} cannot be read" if isinstance(exc, ModelLoadError)
                else "the promotion gates could not run (CHUISHAO_GATES, CHUISHAO_GATE_DATA)")
        raise HTTPException(status.HTTP_409_CONFLICT, f"new model not loaded, still serving {previous}: {what}: "
                                                      f"{exc}") from exc
    if refusal is not None:
        log.error("reload refused by the promotion gates, still serving %s: %s", previous, refusal)
        raise HTTPException(status.HTTP_409_CONFLICT, f"new model refused by the promotion gates, still serving "
                                                      f"{previous}: {refusal}")
    try:
        new = await asyncio.to_thread(holder.load)
    except Exception as exc:  # any failure: the old model keeps serving
        log.error("reload failed, still serving %s: %s", previous, exc)
        raise HTTPException(status.HTTP_409_CONFLICT, f"new model not loaded, still serving {previous}: {exc}") from exc
    metrics.model_switched(previous, new.version)
    return ReloadResponse(previous_version=previous, model_version=new.version, switched=new.version != previous)
