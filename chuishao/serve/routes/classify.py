"""Classification: one message, a batch, and the taxonomy the answers use."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import Response

from chuishao.models.answer import RoutingAnswer
from chuishao.serve.batcher import Item
from chuishao.serve.deps import Holder, Metrics, Queue, Settings, classify_key
from chuishao.serve.schemas import BatchRequest, BatchResponse, ClassifyRequest
from chuishao.serve.settings import ServeSettings
from chuishao.serve.taxonomy_view import taxonomy_view

JSON = "application/json"

router = APIRouter()


def _check_sizes(req: ClassifyRequest, settings: ServeSettings, where: str = "") -> None:
    if len(req.text) > settings.max_text_chars:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"{where}text too long: {len(req.text)} characters, the limit is {settings.max_text_chars}")
    if req.title is not None and len(req.title) > settings.max_title_chars:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"{where}title too long: {len(req.title)} characters, the limit is {settings.max_title_chars}")


@router.post("/v1/classify", response_model=RoutingAnswer, tags=["classify"], dependencies=[Depends(classify_key)],
             responses={413: {"description": "text over the limit"}, 422: {"description": "unusable text"}})
async def classify(req: ClassifyRequest, settings: Settings, queue: Queue, metrics: Metrics) -> Response:
    """Route one message: topic, sub-problem, departments, top-3, evidence words, model version."""
    _check_sizes(req, settings)
    if not req.text.strip() and not (req.title or "").strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "empty text")
    answers, _ = await queue.route([Item(req.text, req.title, req.id)])
    metrics.observe_answers(answers, req.channel)
    answer = answers[0]
    if answer.error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, answer.error)
    # Serialised directly (no second validation pass): this is the hot path.
    return Response(answer.model_dump_json(), media_type=JSON)


@router.post("/v1/classify/batch", response_model=BatchResponse, tags=["classify"],
             dependencies=[Depends(classify_key)], responses={413: {"description": "too many items or text too long"}})
async def classify_batch(req: BatchRequest, settings: Settings, queue: Queue, metrics: Metrics) -> Response:
    """Route up to ``max_batch`` messages; answers in input order, an unusable one carries ``error``."""
    if len(req.items) > settings.max_batch:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"batch too large: {len(req.items)} items, the limit is {settings.max_batch}")
    for i, item in enumerate(req.items):
        _check_sizes(item, settings, f"items[{i}]: ")
    answers, _ = await queue.route([Item(it.text, it.title, it.id) for it in req.items])
    for item, answer in zip(req.items, answers, strict=True):
        metrics.observe_answers([answer], item.channel)
    return Response(BatchResponse(answers=answers).model_dump_json(), media_type=JSON)


@router.get("/v1/taxonomy", tags=["classify"])
async def taxonomy(holder: Holder) -> dict[str, object]:
    """Areas, topics, sub-problems and departments of the served model's taxonomy."""
    return taxonomy_view(holder.require().model.taxonomy)
