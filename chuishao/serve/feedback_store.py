"""Durable store of operator feedback (SQLAlchemy 2: SQLite file by default, PostgreSQL by URL).

Every correction is kept (an audit trail); the training export takes the latest one per
message id. Every free-text field (text, title, departments, channel, model version, operator) is
stored PII-masked: the model masks texts anyway before features, so nothing is lost for training,
and a leaked database (or export) holds no phone, ID or card number. A message id that holds
personal data is stored as its masked form and a keyed hash (privacy.pseudonymise_id, keyed by
serve/id_key.py): masking alone would merge two phone-number ids; other ids are kept as given.
Engines hide statement parameters in their error messages, which the logs would otherwise carry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, create_engine, delete, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column, sessionmaker

from chuishao.analysis.checks import matching_form
from chuishao.pipeline.privacy import mask_pii_raw, pseudonymise_id
from chuishao.serve.id_key import load_key

log = logging.getLogger("chuishao.serve")
SCHEMA_TRIES = 20  # "database is locked" while another process creates the schema: retried, bounded
PROBE_SECONDS = 5.0  # health() asks the database again at most this often


class StoreUnavailable(Exception):
    """The feedback store cannot take the write (full disk, read-only database, server down):
    the feedback is not stored, classification is not affected."""


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
    cur.execute("PRAGMA busy_timeout=5000")  # first: switching a fresh file to WAL can meet another process's lock
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


# every stored string a client chose (topic codes are checked against the taxonomy; ids are kept)
_FREE_TEXT = ("text", "title", "lead", "channel", "model_version", "operator")


def _raced(exc: BaseException) -> bool:
    """Another process creating the schema at the same moment: SQLite's "database is locked",
    PostgreSQL's duplicate type or relation."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "locked" in text or "already exists" in text or "duplicate key" in text


def _reason(exc: BaseException) -> str:
    """The database's own words, without the statement and parameters SQLAlchemy adds."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def rewrite_raw_ids(session: Session, column: Any, stored_id: Callable[[str], str]) -> int:
    """Rewrite the ids of ``column`` that are not in their stored form (a phone number kept raw by a release
    before id masking); returns how many distinct ids changed. The caller commits."""
    changed = 0
    for raw in session.scalars(select(column).where(column.is_not(None)).distinct()).all():
        stored = stored_id(raw)
        if stored != raw:
            session.execute(update(column.class_).where(column == raw).values({column: stored}))
            changed += 1
    return changed


class FeedbackStore:
    """With ``strict=False`` (the service) a store that cannot be opened or written is reported
    (``health()``) and its writes raise StoreUnavailable; the service keeps classifying."""

    def __init__(self, url: str, strict: bool = True, id_key: bytes | None = None) -> None:
        self.url = url
        self.id_key = id_key if id_key is not None else load_key()  # CHUISHAO_ID_KEY or the user's key file
        # pre-ping: a connection the server dropped (restart, failover) is replaced, not handed out;
        # hide_parameters: a failed statement's error message (logged) must not carry the feedback
        self.engine: Engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
        self._schema_ready = False
        self._up = True
        self._error: str | None = None
        self._error_from_write = False
        self._probed = 0.0
        self._lock = threading.Lock()
        try:
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
                db = self.engine.url.database
                if db and db != ":memory:" and not self.engine.url.query.get("uri"):
                    Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.ensure_schema()
        except (SQLAlchemyError, OSError) as exc:
            if strict:
                raise
            self._down(exc, from_write=False)
            log.error("feedback store %s unavailable: %s; classification goes on, feedback gets 503",
                      self.engine.url.render_as_string(hide_password=True), self._error)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def ensure_schema(self) -> None:
        """Create the table once (``chuishao serve`` does it before the workers start); a
        "database is locked" from another process doing the same is retried, bounded."""
        if self._schema_ready:
            return
        for attempt in range(SCHEMA_TRIES):
            try:
                Base.metadata.create_all(self.engine)
                break
            except (OperationalError, IntegrityError, ProgrammingError) as exc:
                if not _raced(exc) or attempt == SCHEMA_TRIES - 1:
                    raise
                time.sleep(min(0.05 * 2 ** attempt, 1.0))
        self._schema_ready = True

    # ---- health -----------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self._up

    @property
    def error(self) -> str | None:
        return self._error

    def _down(self, exc: BaseException, from_write: bool) -> None:
        with self._lock:
            self._up, self._error, self._error_from_write = False, _reason(exc), from_write

    def _fine(self) -> None:
        with self._lock:
            self._up, self._error, self._error_from_write = True, None, False

    def _guard(self, what: str, work: Callable[[], Any], write: bool) -> Any:
        try:
            self.ensure_schema()
            result = work()
        except SQLAlchemyError as exc:
            self._down(exc, from_write=write)
            log.error("feedback store: %s failed: %s", what, self._error)
            raise StoreUnavailable(f"the feedback store cannot {what} ({self._error})") from exc
        if write or not self._error_from_write:
            self._fine()
        return result

    def health(self) -> tuple[bool, str | None]:
        """(up, reason). Asks the database at most every PROBE_SECONDS: it must answer and take a
        write transaction (a read-only database does not). A failed write (a full disk) is only
        cleared by a write that succeeds. Blocking: call from a thread."""
        now = time.monotonic()
        if now - self._probed >= PROBE_SECONDS:
            self._probed = now
            try:
                self.ensure_schema()
                with self._sessions() as session:  # a write that touches nothing, rolled back
                    session.execute(delete(Feedback).where(Feedback.pk < 0))
                    session.rollback()
            except SQLAlchemyError as exc:
                self._down(exc, from_write=False)
            else:
                if not self._error_from_write:
                    self._fine()
        return self._up, self._error

    def stored_id(self, message_id: str) -> str:
        """How a message id is stored: a keyed pseudonym when it holds personal data (see the module's doc)."""
        return pseudonymise_id(message_id, self.id_key)

    def mask_stored_ids(self) -> int:
        """Rewrite the ids that a release before id masking stored raw (a phone number as id);
        returns how many distinct ids changed. ``chuishao serve`` and ``feedback export`` run it
        once, before the workers start and before the export."""
        with self._sessions.begin() as session:
            return rewrite_raw_ids(session, Feedback.message_id, self.stored_id)

    def add(self, **fields: Any) -> Feedback:
        if isinstance(fields.get("message_id"), str):
            fields["message_id"] = self.stored_id(fields["message_id"])
        for key in _FREE_TEXT:
            if isinstance(fields.get(key), str):
                fields[key] = mask_pii_raw(fields[key])
        if fields.get("assist"):
            fields["assist"] = [mask_pii_raw(name) for name in fields["assist"]]
        row = Feedback(**fields)

        def write() -> None:
            with self._sessions.begin() as session:
                session.add(row)

        self._guard("store the feedback", write, write=True)
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
            # yield_per: rows come from the database in chunks (a server-side cursor on PostgreSQL)
            for row, title, text in session.execute(query.execution_options(yield_per=500)):
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


def feedback_conflicts(store: FeedbackStore, include_textless: bool = False) -> tuple[list[dict[str, object]], set[int]]:
    """Corrections that contradict each other, and the feedback rows (pk) the export leaves out.

    - ``same_id``: one message id was given different topics over time. The newest is exported
      (a correction of a correction), the others are listed, not lost from view.
    - ``same_text``: messages with the identical text (in the matching form of ``chuishao check``:
      NFKC, letters and digits) whose latest corrections name different topics. Training on both
      would teach the model a contradiction: the newest is exported, the others are left out.
    """
    history: dict[str, list[tuple[str, str | None, str | None, str | None]]] = {}
    query = select(Feedback.message_id, Feedback.topic, Feedback.sub, Feedback.operator, Feedback.created).order_by(Feedback.pk)
    with Session(store.engine) as session:
        for message_id, topic, sub, operator, created in session.execute(query.execution_options(yield_per=2000)):
            history.setdefault(message_id, []).append(
                (topic, sub, operator, _utc(created).isoformat() if created else None))
    conflicts: list[dict[str, object]] = []
    for message_id, rows in history.items():
        if len({topic for topic, *_ in rows}) > 1:
            conflicts.append({"kind": "same_id", "message_id": message_id, "exported": rows[-1][0],
                              "history": [{"topic": t, "sub": s, "operator": o, "created": c} for t, s, o, c in rows]})
    # a print of the text's matching form -> [(pk, message id, topic)], oldest first: 8 bytes a text, not the text
    by_text: dict[bytes, list[tuple[int, str, str]]] = {}
    for row in store.latest_per_message():
        if has_text(row.text) or include_textless:
            form = matching_form(row.text)
            if form:
                key = hashlib.blake2b(form.encode("utf-8"), digest_size=8).digest()
                by_text.setdefault(key, []).append((row.pk, row.message_id, row.topic))
    left_out: set[int] = set()
    for members in by_text.values():
        if len({topic for _, _, topic in members}) > 1:
            kept = members[-1]
            dropped = [m for m in members[:-1] if m[2] != kept[2]]
            left_out.update(pk for pk, _, _ in dropped)
            conflicts.append({"kind": "same_text", "exported": {"message_id": kept[1], "topic": kept[2]},
                              "left_out": [{"message_id": i, "topic": t} for _, i, t in dropped],
                              "agreeing": [{"message_id": i, "topic": t} for _, i, t in members[:-1] if t == kept[2]]})
    return conflicts, left_out


@dataclass
class FeedbackExport:
    """What an export writes, decided once for the CLI and ``GET /v1/feedback/export`` alike: the
    contradicting corrections (``feedback_conflicts``) and the rows left out because of them."""

    conflicts: list[dict[str, object]]
    left_out: set[int]
    include_textless: bool = False
    written: int = 0
    skipped_without_text: int = 0

    @classmethod
    def plan(cls, store: FeedbackStore, include_textless: bool = False) -> FeedbackExport:
        conflicts, left_out = feedback_conflicts(store, include_textless)
        return cls(conflicts, left_out, include_textless)

    def records(self, store: FeedbackStore) -> Iterator[dict[str, object]]:
        """The training rows, streamed: the newest correction per message, without the rows without
        text (unless ``include_textless``) and the older of identical texts given other topics."""
        for row in store.latest_per_message():
            if not has_text(row.text) and not self.include_textless:
                self.skipped_without_text += 1
                continue
            if row.pk in self.left_out:
                continue
            self.written += 1
            yield training_record(row)

    def conflict_counts(self) -> dict[str, int]:
        return {"conflicting_ids": sum(1 for c in self.conflicts if c["kind"] == "same_id"),
                "conflicting_texts": sum(1 for c in self.conflicts if c["kind"] == "same_text"),
                "left_out_conflicting": len(self.left_out)}


def export_training(store: FeedbackStore, output: Path, include_textless: bool = False,
                    conflicts_file: Path | None = None) -> dict[str, int]:
    """Write the latest feedback per message as JSONL (atomically); rows without text are skipped.
    Contradicting corrections (see ``feedback_conflicts``) are counted, and listed in ``conflicts_file``
    (JSONL) when given; of identical texts with different topics only the newest is written."""
    export = FeedbackExport.plan(store, include_textless)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in export.records(store):
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    if conflicts_file is not None:
        conflicts_file.parent.mkdir(parents=True, exist_ok=True)
        part = conflicts_file.with_name(f".{conflicts_file.name}.part")
        part.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in export.conflicts), encoding="utf-8")
        part.replace(conflicts_file)
    tmp.replace(output)
    return {"written": export.written, "skipped_without_text": export.skipped_without_text, **export.conflict_counts()}
