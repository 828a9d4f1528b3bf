"""The routing answer: what an operator, a batch record and the API all return."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TopicScore(BaseModel):
    topic: str = Field(description="topic code, e.g. W05 or OTHER")
    topic_name: str
    score: float = Field(ge=0, le=1, description="calibrated probability")


class Departments(BaseModel):
    lead: str | None = Field(None, description="the department that must act first")
    assist: list[str] = Field(default_factory=list, description="departments also reported to")


class Jurisdiction(BaseModel):
    """Where the message is, read from its title and text against the city's gazetteer; nulls when it names no place."""

    province: str | None = None
    city: str | None = None
    district: str | None = Field(None, description="district or county")
    street: str | None = Field(None, description="street (街道) or township (镇/乡)")
    community: str | None = Field(None, description="community (社区) or village (村)")
    place: str | None = Field(None, description="compound (小区), road or landmark named")
    office: str | None = Field(None, description="the office responsible for the most specific place found")
    matched: list[str] = Field(default_factory=list, description="the place names found in the text, as written")
    confidence: float | None = Field(None, ge=0, le=1, description="share of the names found that agree with the place chosen")
    candidates: int = Field(0, ge=0, description="distinct places named (more than 1: the most specific agreeing one is chosen)")
    unlisted: list[str] = Field(
        default_factory=list,
        description="units the text writes below the place chosen that the gazetteer does not list (a street, community "
                    "or natural village), as written, the outermost first; their office is unknown, so `office` is the "
                    "nearest listed unit's. Without a listed place: a village or community named on its own")


def empty_jurisdiction() -> dict[str, object]:
    """``Jurisdiction().model_dump()``, built without pydantic (tested)."""
    return {"province": None, "city": None, "district": None, "street": None, "community": None, "place": None,
            "office": None, "matched": [], "confidence": None, "candidates": 0, "unlisted": []}


class UrgencyField(BaseModel):
    """Ongoing danger the message describes (gas smell, fire, people trapped, a blocked fire exit, ...), by the city's
    urgency rules; level null when it describes none."""

    level: Literal["high", "medium"] | None = Field(
        None, description="high: life in danger now; medium: a hazard that can hurt soon")
    triggers: list[str] = Field(default_factory=list, description="the words that raised it")


def empty_urgency() -> dict[str, object]:
    """``UrgencyField().model_dump()``, built without pydantic (tested)."""
    return {"level": None, "triggers": []}


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
    jurisdiction: Jurisdiction = Field(default_factory=Jurisdiction, description="the place, when a gazetteer is in use")
    urgency: UrgencyField = Field(default_factory=UrgencyField, description="ongoing danger, when urgency rules are in use")
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
    jurisdiction: dict[str, object] | None = None,
    urgency: dict[str, object] | None = None,
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
        "jurisdiction": jurisdiction if jurisdiction is not None else empty_jurisdiction(),
        "urgency": urgency if urgency is not None else empty_urgency(),
        "model_version": model_version,
        "error": error,
    }


def error_answer(message_id: str | None, error: str, model_version: str | None) -> dict[str, object]:
    """The answer for a message that could not be classified, as batch tagging carries answers."""
    return answer_dict(id=message_id, error=error, model_version=model_version)
