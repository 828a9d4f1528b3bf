"""Recent reports, for "similar recent reports" and whistle candidates: in the feedback store's database.

Two tables beside the feedback (same engine, SQLite or PostgreSQL):
- ``chuishao_reports``: one row per classified report: its id, time, topic, place key, departments,
  event, and its MinHash signature (``num_perm`` uint32, as bytes). No text is stored: the signature
  is all the lookup needs, and it cannot be read back into text. The place is stored PII-masked.
- ``chuishao_report_bands``: (band key, report) pairs, indexed by band key: the LSH buckets.

A lookup takes the new report's band keys (which include its topic and place: analysis/minhash.py),
reads the candidates sharing one (the most recent ``MAX_CANDIDATES``), verifies them by signature
(similarity >= threshold, within the time window) and answers the similar ones, most similar first.
A stored report joins the event of its most similar match (a new event otherwise): an event's size is
its reports still within retention. Two events a new report would bridge are not merged (the batch
``chuishao events`` does merge them): the report joins the closer one.

A report id holding personal data (a phone number) is stored and answered as its keyed pseudonym, as the
feedback store does. An id already stored (a client's retry, an operator's second click) is not stored
again: the answer is its event's, and it is not similar to itself. Storing takes a lock (SQLite's write
lock; a PostgreSQL advisory lock on the topic and place) before the lookup, so reports of one problem sent
at the same moment, to any worker, join one event.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import JSON, BigInteger, DateTime, Integer, LargeBinary, String, delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from chuishao.analysis.events_config import EventsConfig
from chuishao.analysis.minhash import band_keys, block_key, normalise, signatures, similarity
from chuishao.pipeline.privacy import mask_pii_raw, pseudonymise_id
from chuishao.serve.feedback_store import Base, rewrite_raw_ids
from chuishao.serve.id_key import load_key

MAX_CANDIDATES = 2000  # most recent candidate reports read per lookup: bounds its time on huge events
MAX_SIMILAR = 20  # similar reports answered, at most
PURGE_EVERY_SECONDS = 3600.0


class Report(Base):
    __tablename__ = "chuishao_reports"

    pk: Mapped[int] = mapped_column("report_pk", Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str | None] = mapped_column(String(128), index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    topic: Mapped[str] = mapped_column(String(32))
    place: Mapped[str | None] = mapped_column(String(256))
    lead: Mapped[str | None] = mapped_column(String(64))
    assist: Mapped[list[str]] = mapped_column(JSON, default=list)
    event: Mapped[str] = mapped_column(String(32), index=True)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class StoreMark(Base):
    """One-off migrations done on this database (key, when)."""
    __tablename__ = "chuishao_report_marks"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))


MASKED_MARK = "report_ids_masked"


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ReportBand(Base):
    __tablename__ = "chuishao_report_bands"

    band_key: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the key first: the lookup's index
    report_pk: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)


@dataclass
class Similar:
    id: str | None
    time: datetime
    similarity: float


@dataclass
class SimilarAnswer:
    event_id: str | None
    event_size: int
    whistle: bool
    whistle_reasons: list[str]
    similar: list[Similar] = field(default_factory=list)
    stored: bool = False
    repeated: bool = False  # the id was stored already: not stored again


def _signed(key: int) -> int:
    """A uint64 band key as the signed BIGINT databases store."""
    return key - (1 << 64) if key >= 1 << 63 else key


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class SimilarStore:
    """Blocking (database) calls: the service runs them in its thread pool."""

    def __init__(self, engine: Engine, config: EventsConfig | None = None, retention_days: float = 30.0,
                 id_key: bytes | None = None) -> None:
        self.engine = engine
        self.config = config or EventsConfig()
        self.id_key = id_key if id_key is not None else load_key()  # CHUISHAO_ID_KEY or the user's key file
        self.retention = timedelta(days=retention_days)
        self._purged = -math.inf  # the first write purges (monotonic time may be under an hour after boot)
        self._purge_lock = threading.Lock()
        tables = [Report.__table__, ReportBand.__table__, StoreMark.__table__]
        Base.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]

    def _keys(self, sig: np.ndarray, topic: str, place: str | None) -> list[int]:
        keys = band_keys(sig[None, :], np.array([block_key(topic, place)], dtype=np.uint64), self.config.bands)[0]
        return [_signed(int(k)) for k in keys if k != 0]

    def signature(self, text: str, title: str | None = None) -> np.ndarray:
        c = self.config
        return signatures([normalise(f"{title or ''} {text}")], c.num_perm, c.seed, c.shingle)[0]

    def lookup(self, text: str, title: str | None, topic: str, place: str | None, when: datetime | None = None,
               lead: str | None = None, assist: list[str] | None = None, report_id: str | None = None,
               record: bool = False) -> SimilarAnswer:
        """The similar recent reports of a new one, its event and whether that is a whistle candidate;
        with ``record``, the report is stored too (and joins that event)."""
        when = _utc(when or datetime.now(UTC))
        place = mask_pii_raw(place) if place else None
        stored_id = self.stored_id(report_id) if report_id else None
        sig = self.signature(text, title)
        keys = self._keys(sig, topic, place)
        with Session(self.engine) as session:
            if record:
                self._lock(session, topic, place)
            earlier = self._earlier(session, stored_id, when) if stored_id else None
            similar, event = self._similar(session, sig, keys, when, stored_id)
            if earlier is not None:
                event = earlier
            elif record:
                self._purge(session)
                event = self._store(session, sig, keys, stored_id, when, topic, place, lead, assist, event)
            session.commit()
            size, leads, deps = self._event(session, event, when) if event else (0, set(), set())
        if not record and earlier is None:  # the new report counts in its event's size and departments, stored or not
            size += 1
            leads |= {lead} if lead else set()
            deps |= {d for d in (lead, *(assist or [])) if d}
        reasons = self._reasons(size, leads, deps)
        return SimilarAnswer(event_id=event, event_size=size, whistle=bool(reasons), whistle_reasons=reasons,
                             similar=similar, stored=record or earlier is not None, repeated=earlier is not None)

    def stored_id(self, report_id: str) -> str:
        """How a report id is stored and answered: a keyed pseudonym when it holds personal data."""
        return pseudonymise_id(report_id, self.id_key)

    def _lock(self, session: Session, topic: str, place: str | None) -> None:
        """Held until the commit: the lookup and the insert of one report do not interleave with another's
        (threads or worker processes), else reports of one problem sent at once start several events."""
        if self.engine.dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(_signed(int(block_key(topic, place))))))
        else:  # SQLite: a write that touches nothing takes the database's write lock (waits up to busy_timeout)
            session.execute(delete(Report).where(Report.pk < 0))

    def _earlier(self, session: Session, stored_id: str, when: datetime) -> str | None:
        """The event of a report stored before under this id (within retention), else None."""
        return session.scalar(select(Report.event).where(Report.report_id == stored_id,
                                                         Report.created >= when - self.retention)
                              .order_by(Report.pk.desc()).limit(1))

    def _similar(self, session: Session, sig: np.ndarray, keys: list[int], when: datetime,
                 own_id: str | None = None) -> tuple[list[Similar], str | None]:
        if not keys:
            return [], None
        since = when - self.retention
        window = self.config.window_seconds
        if window is not None:
            since = max(since, when - timedelta(seconds=window))
        # one query: the band index finds the candidates, the join reads them (the most recent first)
        query = (select(Report.pk, Report.report_id, Report.created, Report.event, Report.signature)
                 .join(ReportBand, ReportBand.report_pk == Report.pk)
                 .where(ReportBand.band_key.in_(keys), Report.created >= since)
                 .distinct().order_by(Report.pk.desc()).limit(MAX_CANDIDATES))
        if window is not None:
            query = query.where(Report.created <= when + timedelta(seconds=window))
        rows = [r for r in session.execute(query).all() if own_id is None or r.report_id != own_id]
        if not rows:
            return [], None
        sigs = np.frombuffer(b"".join(r.signature for r in rows), dtype=np.uint32).reshape(len(rows), -1)
        sims = similarity(sigs, sig[None, :])
        keep = [i for i in np.argsort(-sims, kind="stable").tolist() if sims[i] >= self.config.threshold - 1e-9]
        found = [Similar(id=rows[i].report_id, time=_utc(rows[i].created), similarity=round(float(sims[i]), 3))
                 for i in keep]
        return found[:MAX_SIMILAR], rows[keep[0]].event if keep else None

    def _store(self, session: Session, sig: np.ndarray, keys: list[int], report_id: str | None, when: datetime,
               topic: str, place: str | None, lead: str | None, assist: list[str] | None, event: str | None) -> str:
        row = Report(report_id=report_id, created=when, topic=topic, place=place,
                     lead=mask_pii_raw(lead) if lead else None, assist=[mask_pii_raw(a) for a in assist or []],
                     event=event or "", signature=sig.astype(np.uint32).tobytes())
        session.add(row)
        session.flush()  # its pk: a new event is named after its first report
        if not event:
            row.event = event = f"R{row.pk}"
        session.add_all([ReportBand(band_key=k, report_pk=row.pk) for k in set(keys)])
        return event

    def _event(self, session: Session, event: str, when: datetime) -> tuple[int, set[str], set[str]]:
        since = when - self.retention
        rows = session.execute(select(Report.lead, Report.assist).where(Report.event == event, Report.created >= since)
                               .limit(10_000)).all()
        size = session.scalar(select(func.count()).select_from(Report).where(Report.event == event,
                                                                                Report.created >= since)) or 0
        leads = {r.lead for r in rows if r.lead}
        deps = leads | {a for r in rows for a in (r.assist or [])}
        return int(size), leads, deps

    def _reasons(self, size: int, leads: set[str], deps: set[str]) -> list[str]:
        c = self.config
        reasons = [f"{size} reports >= {c.whistle_size}"] if size >= c.whistle_size else []
        named = deps if c.whistle_count_assist else leads
        if len(named) >= c.whistle_departments:
            reasons.append(f"{len(named)} departments >= {c.whistle_departments}")
        return reasons

    def _purge(self, session: Session) -> None:
        """Drop reports older than the retention (at most once an hour, on a write). Counted from the
        server's clock, never from a report's own time: one report dated in the future must not empty the store."""
        with self._purge_lock:
            if time.monotonic() - self._purged < PURGE_EVERY_SECONDS:
                return
            self._purged = time.monotonic()
        self.purge(None, session)

    def purge(self, now: datetime | None = None, session: Session | None = None) -> int:
        """Delete the reports (and their band keys) older than the retention; returns how many."""
        cutoff = _utc(now or datetime.now(UTC)) - self.retention
        own = session is None
        session = session or Session(self.engine)
        try:
            old = select(Report.pk).where(Report.created < cutoff).scalar_subquery()
            session.execute(delete(ReportBand).where(ReportBand.report_pk.in_(old)))
            gone = session.execute(delete(Report).where(Report.created < cutoff))
            if own:
                session.commit()
            return int(getattr(gone, "rowcount", 0) or 0)
        finally:
            if own:
                session.close()

    def mask_stored_ids(self) -> int:
        """Rewrite the report ids that a release before id masking stored raw; returns how many distinct ids
        changed. ``chuishao serve`` calls it at every start, before the workers; it reads the ids once per
        database (a marker row then says it is done: every report stored since is masked on the way in)."""
        with Session(self.engine) as session:
            if session.get(StoreMark, MASKED_MARK) is not None:
                return 0
            changed = rewrite_raw_ids(session, Report.report_id, self.stored_id)
            session.add(StoreMark(key=MASKED_MARK, value=_now_text()))
            session.commit()
        return changed

    def bulk_add(self, rows: list[dict[str, Any]], sigs: np.ndarray) -> None:
        """Store many reports at once (benchmarks, back-fills): ``rows`` of report_id, created, topic,
        place, lead, event; each its own event unless given."""
        blocks = np.array([block_key(r["topic"], r.get("place")) for r in rows], dtype=np.uint64)
        keys = band_keys(sigs, blocks, self.config.bands)
        with Session(self.engine) as session:
            start = (session.scalar(select(func.max(Report.pk))) or 0) + 1
            session.execute(Report.__table__.insert(), [  # type: ignore[attr-defined]
                {"report_pk": start + i, "report_id": self.stored_id(r["report_id"]) if r.get("report_id") else None,
                 "created": _utc(r["created"]), "topic": r["topic"],
                 "place": r.get("place"), "lead": r.get("lead"), "assist": r.get("assist") or [],
                 "event": r.get("event") or f"R{start + i}", "signature": sigs[i].astype(np.uint32).tobytes()}
                for i, r in enumerate(rows)])
            # the driver's executemany directly: SQLAlchemy's per-row work would be most of a back-fill's time
            mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
            session.connection().exec_driver_sql(
                f"INSERT INTO {ReportBand.__tablename__} (band_key, report_pk) VALUES ({mark}, {mark})",
                [(_signed(k), start + i) for i in range(len(rows)) for k in set(keys[i].tolist()) if k != 0])
            session.commit()
