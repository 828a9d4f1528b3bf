"""The routing answer: what an operator, a batch record and the API all return."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TopicScore(BaseModel):
    topic: str = Field(description="topic code, e.g. W05 or OTHER")
    topic_name: str
    score: float = Field(ge=0, le=1, description="calibrated probability")


class Departments(BaseModel):
    lead: str | None = Field(None, description="the department that must act first")
    assist: list[str] = Field(default_factory=list, description="departments also reported to")


class RoutingAnswer(BaseModel):
    id: str | None = None
    topic: str | None = None
    topic_name: str | None = None
    area: str | None = None
    sub: str | None = None
    sub_name: str | None = None
    confidence: float | None = Field(None, ge=0, le=1)
    needs_review: bool = True
    top: list[TopicScore] = Field(default_factory=list)
    departments: Departments = Field(default_factory=Departments)
    evidence: list[str] = Field(default_factory=list, description="words that drove the decision")
    model_version: str | None = None
    error: str | None = None


def answer_dict(
    *,
    id: str | None = None,
    topic: str | None = None,
    topic_name: str | None = None,
    area: str | None = None,
    sub: str | None = None,
    sub_name: str | None = None,
    confidence: float | None = None,
    needs_review: bool = True,
    top: list[dict[str, object]] | None = None,
    departments: dict[str, object] | None = None,
    evidence: list[str] | None = None,
    model_version: str | None = None,
    error: str | None = None,
) -> dict[str, object]:
    """An answer as a plain dict, exactly ``RoutingAnswer(...).model_dump()`` (tested), fields in
    its order: the one place that builds the shape batch tagging writes out, without pydantic's
    per-message validation (a tenth of the routing cost). ``top`` holds TopicScore-shaped dicts."""
    return {
        "id": id,
        "topic": topic,
        "topic_name": topic_name,
        "area": area,
        "sub": sub,
        "sub_name": sub_name,
        "confidence": confidence,
        "needs_review": needs_review,
        "top": top if top is not None else [],
        "departments": departments if departments is not None else {"lead": None, "assist": []},
        "evidence": evidence if evidence is not None else [],
        "model_version": model_version,
        "error": error,
    }


def error_answer(message_id: str | None, error: str, model_version: str | None) -> dict[str, object]:
    """The answer for a message that could not be classified, as batch tagging carries answers."""
    return answer_dict(id=message_id, error=error, model_version=model_version)
