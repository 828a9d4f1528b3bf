"""Durable store of operator feedback (SQLAlchemy 2: SQLite file by default, PostgreSQL by URL).

Every correction is kept (an audit trail); the training export takes the latest one per
message id. Every free-text field (text, title, departments, channel, model version, operator) is
stored PII-masked: the model masks texts anyway before features, so nothing is lost for training,
and a leaked database (or export) holds no phone, ID or card number. Message ids are kept as given:
masking two phone-number ids alike would merge them. Engines hide statement parameters in their
error messages, which the logs would otherwise carry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column, sessionmaker

from chuishao.pipeline.privacy import mask_pii_raw


class Base(DeclarativeBase):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class Feedback(Base):
    __tablename__ = "chuishao_feedback"

    pk: Mapped[int] = mapped_column("feedback_id", Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(128), index=True)
    topic: Mapped[str] = mapped_column(String(32))
    sub: Mapped[str | None] = mapped_column(String(32))
    lead: Mapped[str | None] = mapped_column(String(64))
    assist: Mapped[list[str]] = mapped_column(JSON, default=list)
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(32))
    predicted_topic: Mapped[str | None] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(128))
    operator: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL: readers (export) never block the writer; synchronous=FULL: a stored row survives a crash.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


# every stored string a client chose (topic codes are checked against the taxonomy; ids are kept)
_FREE_TEXT = ("text", "title", "lead", "channel", "model_version", "operator")


class FeedbackStore:
    def __init__(self, url: str) -> None:
        self.url = url
        # hide_parameters: a failed statement's error message (logged) must not carry the feedback
        self.engine: Engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            db = self.engine.url.database
            if db and db != ":memory:":
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def add(self, **fields: Any) -> Feedback:
        for key in _FREE_TEXT:
            if isinstance(fields.get(key), str):
                fields[key] = mask_pii_raw(fields[key])
        if fields.get("assist"):
            fields["assist"] = [mask_pii_raw(name) for name in fields["assist"]]
        row = Feedback(**fields)
        with self._sessions.begin() as session:
            session.add(row)
        return row

    def count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(Feedback)) or 0)

    def latest_per_message(self) -> Iterator[Feedback]:
        """The newest feedback of each message id, oldest first (stable for diffs). A newest row
        without text takes title and text from the message's newest feedback that has a text: a
        correction need not send the text again, and must not drop the message from training."""
        newest = (select(Feedback.message_id, func.max(Feedback.pk).label("pk"))
                  .group_by(Feedback.message_id).subquery())
        with_text = (select(Feedback.message_id, func.max(Feedback.pk).label("pk"))
                     .where(func.trim(Feedback.text) != "").group_by(Feedback.message_id).subquery())
        texted = aliased(Feedback)
        query = (select(Feedback, texted.title, texted.text)
                 .join(newest, Feedback.pk == newest.c.pk)
                 .outerjoin(with_text, with_text.c.message_id == Feedback.message_id)
                 .outerjoin(texted, texted.pk == with_text.c.pk)
                 .order_by(Feedback.pk))
        with Session(self.engine) as session:
            for row, title, text in session.execute(query):
                if not has_text(row.text) and text is not None:
                    session.expunge(row)  # a detached copy: filling it in must not write to the store
                    row.title, row.text = title, text
                yield row

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True

    def close(self) -> None:
        self.engine.dispose()


def _utc(when: datetime) -> datetime:
    # stored in UTC; SQLite hands the time back without its zone
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def has_text(text: str | None) -> bool:
    return bool(text and text.strip())  # rows stored before blank texts were refused may hold "" or spaces


def training_record(row: Feedback) -> dict[str, object]:
    """One JSONL row that ``chuishao train`` reads (id, title, text, label, sub, conf)."""
    return {
        "id": row.message_id, "title": row.title, "text": row.text, "label": row.topic, "sub": row.sub,
        "conf": "high", "source": "feedback", "channel": row.channel,
        "departments": {"lead": row.lead, "assist": list(row.assist or [])},
        "predicted_topic": row.predicted_topic, "model_version": row.model_version,
        "operator": row.operator, "created": _utc(row.created).isoformat() if row.created else None,
    }


def export_training(store: FeedbackStore, output: Path, include_textless: bool = False) -> dict[str, int]:
    """Write the latest feedback per message as JSONL (atomically); rows without text are skipped."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    written = skipped = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for row in store.latest_per_message():
            if not has_text(row.text) and not include_textless:
                skipped += 1
                continue
            fh.write(json.dumps(training_record(row), ensure_ascii=False) + "\n")
            written += 1
    tmp.replace(output)
    return {"written": written, "skipped_without_text": skipped}
