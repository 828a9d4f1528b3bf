"""Similar recent reports: classify a new report, find the recent ones of the same problem, flag a whistle."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from chuishao.analysis.events import place_key
from chuishao.serve.batcher import Item
from chuishao.serve.deps import Metrics, Queue, Settings, admin_key
from chuishao.serve.feedback_store import StoreUnavailable
from chuishao.serve.schemas import SimilarReport, SimilarRequest, SimilarResponse
from chuishao.serve.similar_store import SimilarStore

router = APIRouter()


@router.post("/v1/similar", response_model=SimilarResponse, tags=["events"], dependencies=[Depends(admin_key)],
             responses={413: {"description": "text over the limit"}, 422: {"description": "unusable text"},
                        503: {"description": "the store of recent reports is unavailable"}})
async def similar(req: SimilarRequest, request: Request, settings: Settings, queue: Queue, metrics: Metrics) -> Response:
    """Route a report, answer the similar recent reports (same topic and place, within the window), its
    event's size and whether it is a whistle candidate; stored among the recent reports unless
    ``record`` is false (API key: the answer names other reports). The place is the request's, else the
    district/street of the answer's jurisdiction."""
    for value, name, limit in ((req.text, "text", settings.max_text_chars), (req.title, "title", settings.max_title_chars)):
        if value is not None and len(value) > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"{name} too long: {len(value)} characters, the limit is {limit}")
    store: SimilarStore | None = getattr(request.app.state, "similar", None)
    if store is None:
        raise StoreUnavailable("the store of recent reports is unavailable (see /readyz)")
    answers, _ = await queue.route([Item(req.text, req.title, req.id)])
    metrics.observe_answers(answers, req.channel)
    answer = answers[0]
    if answer.error or answer.topic is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, answer.error or "no topic")
    deps = answer.departments
    # no place given: the one the answer names (the service's gazetteer), down to the street as chuishao events
    place = req.place or place_key(answer.jurisdiction.model_dump())
    try:
        found = await asyncio.to_thread(
            store.lookup, req.text, req.title, answer.topic, place, req.time,
            deps.lead, list(deps.assist or []), req.id, req.record)
    except SQLAlchemyError as exc:  # the database went away: 503, as the feedback store does
        raise StoreUnavailable(f"the store of recent reports failed ({type(exc).__name__})") from exc
    body = SimilarResponse(answer=answer, place=place, event_id=found.event_id, event_size=found.event_size,
                           whistle=found.whistle, whistle_reasons=found.whistle_reasons, stored=found.stored,
                           repeated=found.repeated,
                           similar=[SimilarReport(id=s.id, time=s.time, similarity=s.similarity) for s in found.similar])
    return Response(body.model_dump_json(), media_type="application/json")
