"""Operators' feedback: store a final answer (API key), export the latest per message as training JSONL."""

from __future__ import annotations

import itertools
import json

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from chuishao.serve.deps import Holder, Metrics, Settings, Store, admin_key
from chuishao.serve.feedback_store import FeedbackExport, StoreUnavailable
from chuishao.serve.schemas import FeedbackRequest, FeedbackStored

router = APIRouter()


@router.post("/v1/feedback", response_model=FeedbackStored, status_code=201, tags=["feedback"],
             dependencies=[Depends(admin_key)])
def feedback(req: FeedbackRequest, settings: Settings, holder: Holder, store: Store,
             metrics: Metrics) -> FeedbackStored:
    """Store an operator's final topic / sub-problem / departments for a message (API key)."""
    model = holder.require().model
    tax = model.taxonomy
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
    if req.text is not None or req.title is not None:  # it becomes training data: what classify refuses, refuse here
        problem = model.preprocessor.problem(req.text or "", title=req.title)
        if problem is not None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"this text cannot be training data: {problem}")
    # Sync endpoint: FastAPI runs it in its thread pool, so the database write never blocks the loop.
    row = store.add(
        message_id=req.id, topic=req.topic, sub=req.sub, lead=req.departments.lead,
        assist=list(req.departments.assist), title=req.title, text=req.text, channel=req.channel,
        predicted_topic=req.predicted_topic, model_version=req.model_version, operator=req.operator)
    metrics.store_up.set(1)
    agrees = "unknown" if req.predicted_topic is None else str(req.predicted_topic == req.topic).lower()
    metrics.feedback.labels(agrees).inc()
    return FeedbackStored(feedback_id=row.pk, id=row.message_id, created=row.created)


@router.get("/v1/feedback/export", tags=["feedback"], dependencies=[Depends(admin_key)],
            response_class=StreamingResponse)
def feedback_export(store: Store, conflicts: bool = False) -> StreamingResponse:
    """Latest feedback per message as training JSONL (same as ``chuishao feedback export``: the same
    function decides the rows), streamed: rows are read from the database as they are sent, never all
    held in memory. Contradicting corrections are counted in the ``X-Chuishao-Conflicting-Ids``,
    ``-Texts`` and ``-Left-Out`` headers; ``?conflicts=true`` answers their list instead (JSONL, what
    ``--conflicts FILE`` writes)."""
    try:  # the conflicts and the first row before the 200: a store that cannot be read answers 503
        export = FeedbackExport.plan(store)
        counts = export.conflict_counts()
        headers = {"X-Chuishao-Conflicting-Ids": str(counts["conflicting_ids"]),
                   "X-Chuishao-Conflicting-Texts": str(counts["conflicting_texts"]),
                   "X-Chuishao-Left-Out": str(counts["left_out_conflicting"])}
        if conflicts:
            body = "".join(json.dumps(jsonable_encoder(c), ensure_ascii=False) + "\n" for c in export.conflicts)
            return StreamingResponse(iter([body]), media_type="application/x-ndjson", headers=headers)
        lines = (json.dumps(jsonable_encoder(r), ensure_ascii=False) + "\n" for r in export.records(store))
        first = next(lines, "")
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"the feedback store cannot be read ({exc.__class__.__name__})") from exc
    # a sync iterator: Starlette pulls it in its thread pool, one row at a time
    return StreamingResponse(itertools.chain([first], lines), media_type="application/x-ndjson", headers=headers)
