"""Request and response bodies at the API edge. Unknown fields are refused (extra="forbid")."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from chuishao.models.answer import RoutingAnswer
from chuishao.pipeline.normalize import repair_surrogates


def _without_nul(value: object) -> object:
    # before the length and blank checks: " \x00 " must be blank, not a stored ""
    return value.replace("\x00", "") if isinstance(value, str) and "\x00" in value else value


# Every string a client sends: a lone surrogate is valid JSON but cannot be stored or logged, and PostgreSQL
# refuses a NUL character in text (one request would mark the store down); neither carries meaning.
Text = Annotated[str, BeforeValidator(_without_nul), AfterValidator(repair_surrogates)]

# Not an Enum: a new intake channel must not break old clients; it is only recorded.
Channel = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32,
                                           pattern=r"^[A-Za-z0-9_\-]+$")]
# NFC: the same id typed on two systems (composed or decomposed accents, Hangul) is one message.
MessageId = Annotated[Text, StringConstraints(min_length=1, max_length=128),
                      AfterValidator(lambda value: unicodedata.normalize("NFC", value))]
Code = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Department = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

EXAMPLE_TEXT = "小区楼下烧烤店每天营业到凌晨两点，油烟和噪音严重扰民，联系电话13812345678。"

MAX_CLOCK_SKEW = timedelta(days=1)  # how far in the future a report's time may be


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifyRequest(_Strict):
    """One message. Length limits are checked by the app against its settings (see routes/classify.py)."""

    text: Text = Field("", description="the complaint text (Chinese); may be left out when a title is given")
    title: Text | None = Field(None, description="title or summary, if the channel has one")
    channel: Channel = Field("hotline", description="hotline | wechat | web | ...")
    id: MessageId | None = Field(None, description="message id, echoed back; feedback refers to it")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": EXAMPLE_TEXT, "title": "烧烤店油烟噪音扰民", "channel": "hotline", "id": "rx-20240612-0001"},
        {"text": "家门口的路灯坏了一个多月，晚上漆黑一片，老人走路摔了好几次。", "channel": "wechat"},
    ]})


class BatchRequest(_Strict):
    items: list[ClassifyRequest] = Field(min_length=1, description="messages; at most the configured max_batch")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"items": [
        {"text": "工地夜里十二点还在打桩，噪音吵得睡不着觉。", "id": "a1"},
        {"text": "小区垃圾桶三天没人清运，臭气熏天。", "id": "a2", "channel": "web"},
    ]}]})


class BatchResponse(BaseModel):
    answers: list[RoutingAnswer]


class FeedbackDepartments(_Strict):
    lead: Department | None = None
    assist: list[Department] = Field(default_factory=list, max_length=20)


class FeedbackRequest(_Strict):
    """An operator's final routing for a message: the label analysts retrain on."""

    id: MessageId = Field(description="the message id given to /v1/classify")
    topic: Code = Field(description="final topic code, e.g. W06 or OTHER")
    sub: Code | None = Field(None, description="final sub-problem code, e.g. W06a")
    departments: FeedbackDepartments = Field(default_factory=FeedbackDepartments)
    text: Text | None = Field(None, description="the message text; needed for the row to be training data "
                              "(feedback without it takes the text of the message's earlier feedback)")
    title: Text | None = None
    channel: Channel | None = None
    predicted_topic: Code | None = Field(None, description="what the model suggested")
    model_version: Text | None = Field(None, max_length=128)
    operator: Text | None = Field(None, max_length=64)

    @field_validator("text", "title")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        # a blank text is no text: it must not replace the message's text in the training export
        return value if value is None or value.strip() else None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "id": "rx-20240612-0001", "topic": "W06", "sub": "W06a",
        "departments": {"lead": "生态环境局", "assist": ["城管执法局"]},
        "text": EXAMPLE_TEXT, "title": "烧烤店油烟噪音扰民", "channel": "hotline",
        "predicted_topic": "W05", "model_version": "whistle-15-2024-06-01-abcd1234", "operator": "op-017",
    }]})


class FeedbackStored(BaseModel):
    stored: Literal[True] = True
    feedback_id: int
    id: str
    created: datetime


class ReloadResponse(BaseModel):
    previous_version: str
    model_version: str
    switched: bool


class Readiness(BaseModel):
    ready: bool = Field(description="the model is loaded: classification works")
    status: Literal["ok", "degraded", "starting"] = Field(
        "starting", description="degraded: classification works, but the feedback store is down, or the model "
                                "directory does not load, or this worker serves the verified copy")
    model_version: str | None = None
    model_dir: str | None = None
    loaded_at: datetime | None = None
    model_source: Literal["directory", "verified copy"] | None = Field(
        None, description="verified copy: the model directory did not load when this worker started")
    model_on_disk: Literal["same", "differs", "broken"] | None = Field(
        None, description="the model directory against the model in service: the same model, another one "
                          "(a reload switches to it), or one that does not load")
    model_on_disk_error: str | None = None
    feedback_store: Literal["ok", "down"] | None = None
    feedback_store_error: str | None = None


class SimilarRequest(ClassifyRequest):
    """A new report: classified, then compared with the recent ones of its topic and place."""

    time: datetime | None = Field(None, description="when it was reported (default: now); ISO 8601")
    place: Annotated[Text, StringConstraints(strip_whitespace=True, max_length=256)] | None = Field(
        None, description="place key (e.g. 东城区/和平街道); without it, the district/street the text names (the answer's "
                           "jurisdiction); reports without a place match only others without one")
    record: bool = Field(True, description="store it among the recent reports (false: only look)")

    @field_validator("time")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        # a report from the future (beyond a day of clock skew) or before 1970 is a client's mistake; such
        # dates would also overflow the window arithmetic
        if value is None:
            return None
        try:
            moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
            raise ValueError(f"time {value.isoformat()} is out of range") from None
        if moment > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError(f"time {value.isoformat()} is in the future: give when the report was made")
        if moment.year < 1970:
            raise ValueError(f"time {value.isoformat()} is before 1970")
        return value

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": "工地夜里十二点还在打桩，噪音吵得睡不着觉。", "id": "a1", "place": "东城区/和平街道",
         "time": "2026-12-01T23:30:00+08:00"},
    ]})


class SimilarReport(BaseModel):
    id: str | None = Field(description="its id as stored: a keyed pseudonym where the id holds personal data")
    time: datetime
    similarity: float


class SimilarResponse(BaseModel):
    answer: RoutingAnswer
    place: str | None = Field(None, description="the place key it was grouped under: the request's, else the answer's "
                              "jurisdiction down to the street; null: unknown place")
    event_id: str | None = Field(description="the event it belongs to (null: not stored and nothing similar)")
    event_size: int = Field(description="reports in the event within retention, this one included")
    whistle: bool = Field(description="a whistle (吹哨) candidate: event_size >= whistle_size or several departments")
    whistle_reasons: list[str]
    similar: list[SimilarReport] = Field(description="similar recent reports, most similar first")
    stored: bool = Field(description="it is among the recent reports (false: record was false and the id is new)")
    repeated: bool = Field(False, description="the id was stored before (a retry, a second click): not stored or "
                           "counted again; the answer is its event's")
