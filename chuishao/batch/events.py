"""``chuishao events``: tag a backlog, group its reports into events, write one row per report and a summary.

Two passes, so memory holds arrays, not rows: the first reads and tags the input in chunks, writes the
tagged rows to a work file and keeps per row only its signature (uint32), block, time, topic, place and
departments; then ``analysis.events.group`` numbers the events; the second pass adds the event columns
to each tagged row and writes the output (the format by its extension, as ``chuishao tag``).

Time (``parse_time``): ISO text, dates, or epoch seconds / milliseconds as numbers or digit-only text alike (a CSV
cell is always text); an epoch outside 2000-2099 (an Excel date serial, 46000) is a row error that says so. Times
written without a zone are in ``--timezone`` (default UTC).

Place (``_place_of``): ``--place-field`` names a column holding the place key (text) or a JSON object with
district / street / community; a row without a value there gets the jurisdiction its answer carries, which the
place extractor (``pipeline/places.py``, the model's annotator from ``--gazetteer``, as ``chuishao tag``) read
from its title and text. No gazetteer (``--gazetteer none``): no jurisdiction, so such a row has no place.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from itertools import chain, islice
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from chuishao.analysis.events import Event, event_id, group, place_key, summarise
from chuishao.analysis.events_config import EventsConfig
from chuishao.analysis.events_html import BIGGEST
from chuishao.analysis.minhash import block_key, normalise, signatures
from chuishao.batch.rows import batches, output_record, tag_records
from chuishao.batch.writers import write_output
from chuishao.errors import DataError
from chuishao.io.formats import delimiter_for, detect_format
from chuishao.io.record import missing_column
from chuishao.io.records import FieldMap, InputRecord, read_records
from chuishao.io.text import AUTO
from chuishao.models.cascade import RoutingModel
from chuishao.pipeline.privacy import mask_pii_raw

EVENT_COLUMNS = ("event_id", "event_size", "whistle", "place", "time")
SUMMARY_COLUMNS = ("event_id", "topic", "topic_name", "place", "count", "first_time", "last_time", "departments",
                   "lead_departments", "whistle", "whistle_reasons", "report_ids", "example")
CHUNK = 4_000
EXCERPT_RAW, EXCERPT = 200, 80  # characters kept in the work folder / shown (masked) per event


def _excerpts(work: Path) -> Path:
    return work.with_name("excerpts.jsonl")


def _read_excerpts(work: Path, wanted: set[int]) -> dict[int, str]:
    found = {}
    with _excerpts(work).open("r", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i in wanted:
                found[i] = mask_pii_raw(json.loads(line))[:EXCERPT]
    return found


@dataclass
class EventsOptions:
    fields: FieldMap = field(default_factory=FieldMap)
    time_field: str | None = None
    place_field: str | None = None
    place_level: str = "street"  # for places given as objects: see analysis.events.place_key
    timezone: str = "UTC"  # the zone of times written without one (time_zone: UTC or an IANA name)
    batch_size: int = 256
    encoding: str = AUTO
    sheet: str | None = None
    keep_report_ids: int = 20  # report ids listed per event in the summary


@dataclass
class EventsResult:
    rows: int
    errors: int
    events: list[Event]
    whistle: list[bool]
    seconds_grouping: float = 0.0
    error_reasons: dict[str, int] = field(default_factory=dict)  # most rows first

    def as_dict(self) -> dict[str, object]:
        sizes = [e.count for e in self.events]
        return {"rows": self.rows, "errors": self.errors, "events": len(self.events),
                "events_of_2_or_more": sum(s > 1 for s in sizes), "reports_in_them": sum(s for s in sizes if s > 1),
                "largest": max(sizes, default=0), "whistle_candidates": sum(self.whistle),
                "seconds_grouping": round(self.seconds_grouping, 2), "error_reasons": self.error_reasons}


# Numbers are epoch seconds (milliseconds above 1e11); outside these years one is a mistake, not a report's time:
# an Excel date serial (46000) or a YYYYMMDD number read as seconds would silently become a 1970 date.
EPOCH_FROM = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
EPOCH_TO = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
_EXCEL_SERIAL_MAX = 2_958_465  # 9999-12-31 in Excel's day count
_NUMBER = re.compile(r"\d+(?:\.\d+)?")  # a CSV cell (always text) holding an epoch, as a number cell would


def time_zone(name: str) -> tzinfo:
    """``--timezone``: UTC or an IANA name (Asia/Shanghai), the zone of times written without one."""
    if name.strip().upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise DataError(f"--timezone {name!r}: not a known time zone; give an IANA name such as Asia/Shanghai, "
                        f"or UTC") from None


def parse_time(value: object, zone: tzinfo = UTC) -> float | None:
    """Seconds since the epoch of a time cell: ISO-like text (2026-12-01 08:30, 2026/12/01, with or
    without seconds or zone), a number or digit-only text (epoch seconds, or milliseconds when > 1e11;
    eight digits that form a date: YYYYMMDD), a datetime or a date (Excel, Parquet). Times without a zone
    are in ``zone``. None or '' is no time; anything else, or an epoch outside 2000-2099, raises ValueError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value.strip()) if "." in value else int(value.strip())
    if isinstance(value, (int, float)):
        return _number_time(value, zone)
    if isinstance(value, datetime):
        return _timestamp(value, zone)
    if isinstance(value, date):
        return _timestamp(datetime(value.year, value.month, value.day), zone)
    if isinstance(value, str):
        text = value.strip().replace("/", "-")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a time: {value!r} (expected e.g. 2026-12-01 08:30:00)") from None
        return _timestamp(parsed, zone)
    raise ValueError(f"not a time: {type(value).__name__}")


def _timestamp(value: datetime, zone: tzinfo) -> float:
    """Epoch seconds of a datetime; one without a zone is in ``zone``."""
    try:
        return (value if value.tzinfo else value.replace(tzinfo=zone)).timestamp()
    except (OverflowError, ValueError):  # year 1 or 9999 moved across the date line
        raise ValueError(f"not a time: {value.isoformat()} is out of range") from None


def _number_time(value: float, zone: tzinfo) -> float:
    """A number cell: a YYYYMMDD date (no epoch in range has 8 digits), else epoch seconds or milliseconds
    that must fall in 2000-2099, so that a number meant otherwise is a row error that says why."""
    if not math.isfinite(value):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int) and 10_000_000 <= value <= 99_999_999:
        try:
            return _timestamp(datetime.strptime(str(value), "%Y%m%d"), zone)
        except ValueError:
            pass  # not a date: judged as an epoch below
    seconds = float(value) / 1000.0 if abs(value) > 1e11 else float(value)
    if EPOCH_FROM <= seconds < EPOCH_TO:
        return seconds
    return _implausible(value, seconds)


def _implausible(value: float, seconds: float) -> NoReturn:
    unit = "milliseconds" if abs(value) > 1e11 else "seconds"
    shown = iso(seconds) if -6e10 < seconds < 2.5e11 else "a date out of range"  # what datetime can show
    side = "before 2000-01-01" if seconds < EPOCH_FROM else "after 2099"
    why = ("an Excel date serial? format the column as a date or text" if 0 < value <= _EXCEL_SERIAL_MAX
           else "epoch seconds or milliseconds since 1970 expected")
    raise ValueError(f"not a plausible time: {value!r} read as epoch {unit} is {shown}, {side} ({why})")


_WHERE = re.compile(r"^(?:[^:]*?\b(?:line|row) \d+(?: \(line \d+\))?: )+")  # "in.csv row 3: ", "row 3: "
_DETAIL = re.compile(r": |, |; | \(")


def error_reason(error: str) -> str:
    """A row error without its place in the file or its value ("row 7: not a time: 'x' (...)" -> "not a time"),
    so that the page can count the rows per reason."""
    text = _WHERE.sub("", error.strip())
    return _DETAIL.split(text, maxsplit=1)[0].strip() or text


def iso(seconds: float | None) -> str | None:
    # the Z: with --timezone a reader must not take these UTC times for local ones
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _place_of(rec: InputRecord, answer: Mapping[str, object], opts: EventsOptions) -> str | None:
    """The row's place key: its ``--place-field`` value when it has one, else the key of the jurisdiction its
    answer carries (``place_key(extractor.extract(title, text), level)``, filled by the model's annotator);
    None when neither names a district. Raises ValueError for a column value that is no place."""
    given = _given_place(rec, opts)
    if given is not None:
        return given
    jurisdiction = answer.get("jurisdiction")
    return place_key(jurisdiction, opts.place_level) if isinstance(jurisdiction, Mapping) else None


def _given_place(rec: InputRecord, opts: EventsOptions) -> str | None:
    """The place key of the row's ``--place-field`` value (None: no column, or no value in it)."""
    if not opts.place_field:
        return None
    value = rec.fields.get(opts.place_field)
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{opts.place_field!r} is not a place: broken JSON object") from None
    if value is None or isinstance(value, str):
        return place_key(value)
    if isinstance(value, dict):
        return place_key(value, opts.place_level)
    raise ValueError(f"{opts.place_field!r} must be text or an object with district/street/community, "
                     f"got {type(value).__name__}")


@dataclass
class _Columns:
    """What the grouping keeps per row (a few arrays and short strings)."""
    sigs: list[np.ndarray] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    topics: list[str | None] = field(default_factory=list)
    places: list[str | None] = field(default_factory=list)
    departments: list[dict | None] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)  # rows with errors, per reason (error_reason)


def check_named_columns(path: Path, first: list[InputRecord], opts: EventsOptions) -> None:
    """A ``--time-field`` or ``--place-field`` the input lacks is a usage error, not rows without time or place
    that merge across dates and streets. The columns are those of the first rows (a header's, for CSV, Excel
    and Parquet; JSONL: the fields of the first CHUNK lines). No readable row: nothing to judge by."""
    columns = list(dict.fromkeys(k for rec in first for k in rec.fields))
    if not columns:
        return
    for option, column in (("--time-field", opts.time_field), ("--place-field", opts.place_field)):
        if column and column not in columns:
            raise missing_column(path, column, columns, f"check the spelling of {option}")


def _time_and_place(rec: InputRecord, answer: dict[str, object], opts: EventsOptions,
                    zone: tzinfo) -> tuple[float, str | None]:
    """The row's time (NaN: none) and place key; a value that cannot be read becomes the row's error."""
    try:
        t = parse_time(rec.fields.get(opts.time_field), zone) if opts.time_field else None
        return math.nan if t is None else t, _place_of(rec, answer, opts)
    except ValueError as exc:
        answer["error"] = f"row {rec.row}: {exc}"
        return math.nan, None


def _first_pass(model: RoutingModel, records: Iterator[InputRecord], work: Path, opts: EventsOptions,
                config: EventsConfig, zone: tzinfo = UTC) -> _Columns:
    cols = _Columns()
    with work.open("w", encoding="utf-8") as out, _excerpts(work).open("w", encoding="utf-8") as ex:
        for chunk in batches(records, CHUNK):
            texts = []
            for rec, answer in tag_records(model, chunk, opts.batch_size):
                when, place = _time_and_place(rec, answer, opts, zone) if answer["error"] is None else (math.nan, None)
                ok = answer["error"] is None
                if not ok:
                    cols.reasons[error_reason(str(answer["error"]))] += 1
                row = output_record(rec, answer)
                row["place"], row["time"] = place, iso(None if math.isnan(when) else when)
                out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
                texts.append(normalise(f"{rec.title or ''} {rec.text}") if ok else "")
                # raw, in the work folder only: masked when shown (masking a cut text could miss half a number)
                ex.write(json.dumps(f"{rec.title or ''} {rec.text}".strip()[:EXCERPT_RAW] if ok else "",
                                    ensure_ascii=False) + "\n")
                topic = answer["topic"] if ok else None
                cols.blocks.append(block_key(str(topic), place))
                cols.times.append(when)
                cols.valid.append(ok)
                cols.topics.append(topic)  # type: ignore[arg-type]
                cols.places.append(place)
                cols.departments.append(answer.get("departments") if ok else None)  # type: ignore[arg-type]
                cols.ids.append(rec.id)
            cols.sigs.append(signatures(texts, config.num_perm, config.seed, config.shingle))
    return cols


def _second_pass(work: Path, labels: np.ndarray, events: list[Event], whistle: list[bool], typed: bool,
                 chunk_dir: Path) -> list[Path]:
    """The tagged rows with their event columns, as JSONL chunk files for ``write_output``."""
    paths: list[Path] = []
    with work.open("r", encoding="utf-8") as fh:
        out = None
        for i, line in enumerate(fh):
            if i % 100_000 == 0:
                if out:
                    out.close()
                paths.append(chunk_dir / f"events-{len(paths):05d}.jsonl")
                out = paths[-1].open("w", encoding="utf-8")
            row = json.loads(line)
            label = int(labels[i])
            size = events[label].count if label >= 0 else None
            flag = whistle[label] if label >= 0 else None
            row["event_id"] = event_id(label)
            row["event_size"] = str(size) if typed and size is not None else size
            row["whistle"] = ("true" if flag else "false") if typed and flag is not None else flag
            assert out is not None
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        if out:
            out.close()
    return paths


def events_file(model: RoutingModel, input_path: str | Path, output_path: str | Path,
                config: EventsConfig | None = None, options: EventsOptions | None = None,
                summary_path: str | Path | None = None, html_path: str | Path | None = None) -> EventsResult:
    """Tag and group a file; every input row comes out, with its event (errors: with their error)."""
    import time

    config = config or EventsConfig()
    opts = options or EventsOptions()
    input_path, output_path = Path(input_path), Path(output_path)
    out_fmt = detect_format(output_path)
    if summary_path is not None:
        detect_format(summary_path)  # an unknown extension fails now, not after the work
    zone = time_zone(opts.timezone)  # an unknown zone fails now, not after the work
    records = read_records(input_path, opts.fields, encoding=opts.encoding, sheet=opts.sheet)
    first = list(islice(records, CHUNK))
    check_named_columns(input_path, first, opts)
    records = chain(first, records)
    with tempfile.TemporaryDirectory(prefix=".chuishao-events-", dir=output_path.parent) as tmp:
        work = Path(tmp) / "tagged.jsonl"
        cols = _first_pass(model, records, work, opts, config, zone)
        started = time.perf_counter()
        sigs = np.concatenate(cols.sigs) if cols.sigs else np.empty((0, config.num_perm), dtype=np.uint32)
        cols.sigs = []
        times = np.asarray(cols.times, dtype=np.float64)
        labels = group(sigs, np.asarray(cols.blocks, dtype=np.uint64), times, config, np.asarray(cols.valid, dtype=bool))
        events = summarise(labels, cols.topics, cols.places, times, cols.departments, row_numbers=range(len(labels)))
        whistle = [bool(ev.whistle_reasons(config)) for ev in events]
        grouping = time.perf_counter() - started
        typed = out_fmt != "jsonl"
        paths = _second_pass(work, labels, events, whistle, typed, Path(tmp))
        kept = ["place", "time", *EVENT_COLUMNS[:3]]
        _atomic(output_path, lambda fh: write_output(out_fmt, paths, fh, kept, len(labels), "utf-8-sig",
                                                     delimiter_for(output_path) if out_fmt == "csv" else ","))
        rows = summary_rows(events, whistle, config, cols.ids, model, opts.keep_report_ids)
        shown = sorted(rows, key=lambda r: (not r["whistle"], -int(r["count"])))[:2 * BIGGEST]
        shown_ids = {r["event_id"] for r in shown}
        excerpts = _read_excerpts(work, {int(r["_first"]) for r in rows if r["event_id"] in shown_ids})
        for r in rows:  # a masked excerpt of the first report, for the events the page shows
            r["example"] = excerpts.get(int(r.pop("_first")))
    result = EventsResult(rows=len(labels), errors=int(len(labels) - sum(cols.valid)), events=events, whistle=whistle,
                          seconds_grouping=grouping, error_reasons=dict(cols.reasons.most_common()))
    if summary_path is not None:
        write_summary(rows, Path(summary_path))
    if html_path is not None:
        from chuishao.analysis.events_html import events_html

        html = events_html(rows, result.as_dict(), config)
        _atomic(Path(html_path), lambda fh: fh.write(html.encode("utf-8")))
    return result


def summary_rows(events: list[Event], whistle: list[bool], config: EventsConfig, ids: list[str],
                 model: RoutingModel | None = None, keep_ids: int = 20) -> list[dict[str, Any]]:
    """The events summary, biggest first (then by event id)."""
    name_of = getattr(getattr(model, "taxonomy", None), "name_of", None)
    rows: list[dict[str, Any]] = []
    for ev, flag in zip(events, whistle, strict=True):
        rows.append({
            "event_id": ev.event_id, "topic": ev.topic,
            "topic_name": name_of(ev.topic) if name_of and ev.topic else None,
            "place": ev.place, "count": ev.count, "first_time": iso(ev.first_time), "last_time": iso(ev.last_time),
            "departments": sorted(ev.departments, key=lambda d: (-ev.departments[d], d)),
            "lead_departments": sorted(ev.leads, key=lambda d: (-ev.leads[d], d)),
            "whistle": flag, "whistle_reasons": ev.whistle_reasons(config),
            "report_ids": [ids[r] for r in ev.rows[:keep_ids]], "_first": ev.rows[0],
        })
    rows.sort(key=lambda r: (-int(r["count"]), str(r["event_id"])))
    return rows


def write_summary(rows: list[dict[str, Any]], path: Path) -> None:
    """JSONL (lists as lists) or CSV (lists joined by '、'; UTF-8 with BOM for Excel), by extension."""
    fmt = detect_format(path)
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        _atomic(path, lambda fh: fh.write(text.encode("utf-8")))
    elif fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delimiter_for(path))
        writer.writerow(SUMMARY_COLUMNS)
        for r in rows:
            writer.writerow(["、".join(map(str, v)) if isinstance(v, list) else
                             ("true" if v else "false") if isinstance(v, bool) else v for v in
                             (r[c] for c in SUMMARY_COLUMNS)])
        _atomic(path, lambda fh: fh.write(buf.getvalue().encode("utf-8-sig")))
    else:
        raise DataError(f"{path}: the events summary is written as .jsonl or .csv")


def _atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same folder, so a failed run leaves no half file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the output readable by its owner only
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
