"""``chuishao import``: a city's labelled messages (CSV, XLSX, JSONL, Parquet, Hugging Face datasets)
to our training JSONL (id, title, text, label, sub), through a label mapping file.

A mapping file says, for each of the city's own category codes or names, which whistle topic it
is (``OTHER`` allowed; ``DROP``: rows of that category are left out, counted). It is CSV
(``source,target[,sub]``, ``#`` lines are comments) or YAML (``source: target`` or
``source: {target: W14, sub: W14a}``). A target may be a topic code or a topic's name.

Nothing is lost silently: an unreadable row is an error naming it; a label the mapping does not
know is an error listing every such label with its count, unless ``unmapped`` says what to do
(``other``: they become OTHER; ``drop``: they are left out), and the summary counts them. Labels
and sub-problems are matched by a code in any case or by the name (a sub-problem under its topic first); a
sub-problem still unmatched (unknown, or of another topic) is written as none, counted and said on
stderr, as are repeated message ids. A row with neither text nor title is an error. The output is
written to a temporary file and renamed at the end, so a refused import leaves none.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import yaml

from chuishao.errors import DataError
from chuishao.extras import need
from chuishao.io.records import FieldMap, InputRecord, has_given_id, make_record, read_records
from chuishao.pipeline.privacy import mask_pii_raw
from chuishao.taxonomy import UNKNOWN_SUB, Codes, Taxonomy
from chuishao.training.data import label_text, row_place, visible

DROP = "DROP"
UNMAPPED_ACTIONS = ("error", "other", "drop")
NO_LABEL = "(no label)"


@dataclass(frozen=True)
class Target:
    label: str  # a taxonomy code, OTHER, or DROP
    sub: str | None = None


class LabelMap:
    """A city's categories to whistle topics, checked against a taxonomy."""

    def __init__(self, entries: dict[str, Target], path: Path | None = None) -> None:
        self.entries = entries
        self.path = path

    def get(self, label: str) -> Target | None:
        return self.entries.get(label)

    @classmethod
    def load(cls, path: str | Path, taxonomy: Taxonomy | None) -> LabelMap:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
        raw = _yaml_entries(path, text) if path.suffix.lower() in (".yaml", ".yml") else _csv_entries(path, text)
        entries: dict[str, Target] = {}
        for where, source, target, sub in raw:
            if not source:
                raise DataError(f"{path} {where}: empty source category")
            if not target:
                raise DataError(f"{path} {where}: no target for {source!r} (a topic code or name, OTHER or DROP)")
            resolved = _resolve(target, sub, taxonomy, f"{path} {where}")
            if source in entries and entries[source] != resolved:
                raise DataError(f"{path} {where}: {source!r} is mapped twice, to {entries[source].label} and {resolved.label}")
            entries[source] = resolved
        if not entries:
            raise DataError(f"{path}: no mappings (expected source,target[,sub] rows)")
        return cls(entries, path)


def _csv_entries(path: Path, text: str) -> list[tuple[str, str, str, str | None]]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"{path}: no mappings (expected a source,target[,sub] header and rows)")
    rows = list(csv.reader(io.StringIO("\n".join(line for _, line in lines))))
    header = [h.strip().lower() for h in rows[0]]
    if header[:2] != ["source", "target"] or len(header) > 3 or (len(header) == 3 and header[2] != "sub"):
        raise DataError(f"{path} line {lines[0][0]}: the header must be source,target or source,target,sub "
                        f"(got {','.join(rows[0])})")
    out = []
    for (n, _), values in zip(lines[1:], rows[1:], strict=True):
        if len(values) not in (2, 3) or len(values) > len(header):
            raise DataError(f"{path} line {n}: {len(values)} values for the {len(header)} columns {','.join(header)}")
        sub = values[2].strip() if len(values) == 3 and values[2].strip() else None
        out.append((f"line {n}", values[0].strip(), values[1].strip(), sub))
    return out


def _yaml_entries(path: Path, text: str) -> list[tuple[str, str, str, str | None]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise DataError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping of source categories to targets, got {type(data).__name__}")
    out = []
    for source, value in data.items():
        if isinstance(value, dict):
            unknown = set(value) - {"target", "sub"}
            if unknown:
                raise DataError(f"{path} {source!r}: unknown keys {', '.join(sorted(map(str, unknown)))} (target, sub)")
            target, sub = value.get("target"), value.get("sub")
        else:
            target, sub = value, None
        out.append((f"entry {source!r}", label_text(source).strip(), label_text(target or "").strip(),
                    label_text(sub).strip() if sub else None))
    return out


def _resolve(target: str, sub: str | None, taxonomy: Taxonomy | None, where: str) -> Target:
    if target.upper() == DROP:
        if sub:
            raise DataError(f"{where}: DROP takes no sub-problem")
        return Target(DROP)
    if taxonomy is None or taxonomy.is_free:
        return Target(target, sub)
    codes = Codes(taxonomy)
    code = codes.topic(target)
    if code is None:
        raise DataError(f"{where}: {target!r} is not a topic of taxonomy {taxonomy.name} "
                        f"(codes: {', '.join(taxonomy.labels)}; or DROP)")
    sub_code, _ = codes.sub(sub, code) if sub else (None, None)
    if sub and sub_code is None:
        raise DataError(f"{where}: sub-problem {sub!r} is not under {code} (its sub-problems: "
                        f"{', '.join(taxonomy.subs_of(code)) or 'none'})")
    return Target(code, sub_code)


# ---- reading the source ---------------------------------------------------------------------
def _is_hf(src: Path) -> bool:
    if src.suffix.lower() == ".arrow":
        return True
    return src.is_dir()


def _hf_records(src: Path, fields: FieldMap, split: str | None) -> Iterator[InputRecord]:
    """Rows of a Hugging Face dataset: a ``save_to_disk`` folder (``load_from_disk``), a folder of
    data files (``load_dataset`` on it), or one ``.arrow`` file."""
    datasets = need("datasets", "transformer")
    try:
        if src.is_file():
            ds = datasets.Dataset.from_file(str(src))
        elif any((src / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json")):
            ds = datasets.load_from_disk(str(src))
        else:
            ds = datasets.load_dataset(str(src))
    except Exception as exc:  # noqa: BLE001 - datasets raises many types (FileNotFoundError, DatasetNotFoundError, ArrowInvalid)
        raise DataError(f"{src}: not a readable Hugging Face dataset ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in splits:
            raise DataError(f"{src}: {'no split ' + repr(split) if split else 'several splits'}; choose one with "
                            f"--split ({', '.join(splits)})")
        ds = ds[split]
    elif split is not None:
        raise DataError(f"{src}: one dataset without splits; leave --split out")
    columns = list(ds.column_names)
    if fields.text not in columns:
        raise DataError(f"{src}: no {fields.text!r} column (columns: {', '.join(columns)}); "
                        f"name the text column with --text-field")
    for row, obj in enumerate(ds, start=1):
        yield make_record(row, dict(obj), fields, f"{src.name} row {row}")


def source_records(src: Path, fields: FieldMap, split: str | None = None, sheet: str | None = None) -> Iterator[InputRecord]:
    if not src.exists():
        raise DataError(f"input file not found: {src}")
    if _is_hf(src):
        return _hf_records(src, fields, split)
    if split is not None:
        raise DataError(f"{src}: --split applies to Hugging Face datasets (folders, .arrow files) only")
    return read_records(src, fields, sheet=sheet)


def _time_text(value: object) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return label_text(value)


# ---- the import -----------------------------------------------------------------------------
_EXAMPLES = 3  # examples named in a warning line


@dataclass
class _Tally:
    """What an import counts as it goes; the summary, the warnings and the refusals come from it."""

    rows: int = 0
    written: int = 0
    masked: int = 0
    bad: list[str] = field(default_factory=list)
    unmapped: Counter[str] = field(default_factory=Counter)
    mapped: dict[str, Counter[str]] = field(default_factory=dict)
    labels: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    subs_unknown: Counter[str] = field(default_factory=Counter)
    subs_elsewhere: Counter[str] = field(default_factory=Counter)  # "W06a under W05"
    columns: dict[str, None] = field(default_factory=dict)  # every column or field seen, in order
    first_of_id: dict[str, tuple[str, str | None, int]] = field(default_factory=dict)  # label, sub, hash of the texts
    repeated: int = 0
    ids_other_labels: dict[str, None] = field(default_factory=dict)
    ids_other_texts: dict[str, None] = field(default_factory=dict)

    def note_id(self, message_id: str, label: str, sub: str | None, texts: tuple[str, str]) -> None:
        """Train refuses an id given two labels and keeps only the first row of an id given twice,
        so an import counts both (and writes the rows: the user decides which to keep)."""
        seen = self.first_of_id.get(message_id)
        if seen is None:
            self.first_of_id[message_id] = (label, sub, hash(texts))
            return
        self.repeated += 1
        if seen[:2] != (label, sub):
            self.ids_other_labels[message_id] = None
        elif seen[2] != hash(texts):
            self.ids_other_texts[message_id] = None

    def note_sub(self, given: str, topic: str, why: str) -> None:
        if why == UNKNOWN_SUB:
            self.subs_unknown[given] += 1
        else:
            self.subs_elsewhere[f"{given} under {topic}"] += 1


def _examples(counts: Counter[str]) -> str:
    shown = ", ".join(f"{visible(k)} ({v})" for k, v in counts.most_common(_EXAMPLES))
    return shown + (", ..." if len(counts) > _EXAMPLES else "")


def _say_on_stderr(line: str) -> None:
    print(f"chuishao: warning: {line}", file=sys.stderr, flush=True)


def _source_label(raw: object) -> str:
    """The city's label as looked up: trimmed; one of spaces only is kept as it is, so it is listed
    (quoted) as the unknown label it is rather than as a blank."""
    if raw in (None, ""):
        return NO_LABEL
    text = label_text(raw)
    return text.strip() or text


def _title_and_text(rec: InputRecord, fields: FieldMap, place: str) -> tuple[str, str] | str:
    """(title, text), or the row's error. An empty text cell reads as None from a spreadsheet and
    as "" from CSV or JSONL: both are an empty text, written when the title says something (train
    reads both), and a row with neither is an error in every format: it would train on nothing."""
    if rec.error and fields.text in rec.fields and rec.fields[fields.text] is None:
        rec = make_record(rec.row, {**rec.fields, fields.text: ""}, fields, place)  # checks the title as usual
    if rec.error:
        return rec.error
    title, text = rec.title or "", str(rec.text)
    if not title.strip() and not text.strip():
        return f"{place}: {fields.text!r} is empty and there is no title"
    return title, text


def _given_sub(value: object, target: Target, codes: Codes | None, tally: _Tally) -> str | None:
    """The row's own sub-problem, when the mapping gives none: matched as labels are (code in any
    case, or name); one that is unknown or under another topic is counted, and written as none."""
    if target.sub is not None or value in (None, ""):
        return target.sub
    given = label_text(value).strip()
    if codes is None or not given:
        return given or None
    code, why = codes.sub(given, target.label)
    if why is not None:
        tally.note_sub(given, target.label, why)
    return code


def _check_named_columns(src: Path, tally: _Tally, named: dict[str, str | None]) -> None:
    """A column named on the command line that no row has would leave its values silently empty."""
    for option, column in named.items():
        if column and tally.rows and column not in tally.columns:
            raise DataError(f"{src}: no {column!r} column for {option} (columns: {', '.join(tally.columns) or 'none'}); "
                            f"nothing was written")


def import_labelled(src: str | Path, output: str | Path, fields: FieldMap | None = None, label_field: str = "label",
                    sub_field: str | None = "sub", time_field: str | None = None, mapping: LabelMap | None = None,
                    unmapped: str = "error", taxonomy: Taxonomy | None = None, split: str | None = None,
                    sheet: str | None = None, mask_pii: bool = True,
                    say: Callable[[str], None] | None = _say_on_stderr) -> dict[str, object]:
    """Write ``src``'s rows to ``output`` (JSONL) with their labels mapped; the summary as a dict.
    ``taxonomy`` None: labels are free (only the mapping, or the labels as given). ``sub_field``
    "sub" (the default) may be missing; another name, and ``time_field``, must be a column.
    ``say`` gets the warnings (sub-problems left out, repeated ids), one line each."""
    src, output = Path(src), Path(output)
    fields = fields or FieldMap()
    if unmapped not in UNMAPPED_ACTIONS:
        raise DataError(f"--unmapped {unmapped!r}: use other or drop (or leave it out: unmapped labels are an error)")
    if not output.name.endswith((".jsonl", ".ndjson")):
        raise DataError(f"{output}: the output is JSON Lines; name it .jsonl")
    if output.exists() and src.exists() and output.resolve() == src.resolve():
        raise DataError(f"{output}: is the input; write the import to another file")
    codes = Codes(taxonomy) if taxonomy is not None and not taxonomy.is_free else None
    other = taxonomy.other.code if taxonomy is not None and taxonomy.other is not None else "OTHER"
    records = source_records(src, fields, split, sheet)  # raises before any work for a missing file or column

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    tally = _Tally()
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in records:
                line = _import_row(rec, src, fields, label_field, sub_field, time_field, mapping, unmapped, codes,
                                   other, mask_pii, tally)
                if line is not None:
                    fh.write(line)
        _check_named_columns(src, tally, {"--time-field": time_field,
                                          "--sub-field": sub_field if sub_field != "sub" else None})
        _refuse(src, tally, unmapped, mapping)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    for warning in _warnings(tally):
        (say or (lambda _: None))(warning)
    return _summary(src, output, tally, unmapped)


def _import_row(rec: InputRecord, src: Path, fields: FieldMap, label_field: str, sub_field: str | None,
                time_field: str | None, mapping: LabelMap | None, unmapped: str, codes: Codes | None, other: str,
                mask_pii: bool, tally: _Tally) -> str | None:
    """One source row as its output line, or None (unreadable, unmapped or dropped: counted in ``tally``)."""
    tally.rows += 1
    tally.columns.update(dict.fromkeys(rec.fields))
    texts = _title_and_text(rec, fields, row_place(src, rec.row))
    if isinstance(texts, str):  # an unreadable row is that, whatever its label
        tally.bad.append(texts)
        return None
    source = _source_label(rec.fields.get(label_field))
    target = _target(source, mapping, codes)
    if target is None:
        tally.unmapped[source] += 1
        if unmapped != "other":
            return None
        target = Target(other)
    elif target.label == DROP:
        tally.dropped[source] += 1
        return None
    tally.mapped.setdefault(source, Counter())[target.label] += 1
    sub = _given_sub(rec.fields.get(sub_field) if sub_field else None, target, codes, tally)
    message_id = rec.id if has_given_id(rec, fields) else f"{src.name}:row-{rec.row}"
    tally.note_id(message_id, target.label, sub, texts)
    title, text = texts
    if mask_pii:
        title, text = mask_pii_raw(title), mask_pii_raw(text)
        tally.masked += (title, text) != texts
    out: dict[str, object] = {"id": message_id, "title": title, "text": text, "label": target.label,
                              "sub": sub, "source_label": None if source == NO_LABEL else source}
    if time_field:
        out["time"] = _time_text(rec.fields.get(time_field))
    if rec.fields.get("conf") not in (None, ""):  # the annotator's confidence: train weighs "low" rows less
        out["conf"] = label_text(rec.fields["conf"])
    tally.labels[target.label] += 1
    tally.written += 1
    return json.dumps(out, ensure_ascii=False) + "\n"


def _refuse(src: Path, tally: _Tally, unmapped: str, mapping: LabelMap | None) -> None:
    """The errors that stop an import once every row is read (each lists all its rows or labels)."""
    if tally.bad:
        shown = "; ".join(tally.bad[:5])
        raise DataError(f"{src}: {len(tally.bad)} of {tally.rows} rows cannot be read ({shown}"
                        f"{'; ...' if len(tally.bad) > 5 else ''}); nothing was written")
    if tally.unmapped and unmapped == "error":
        listed = ", ".join(f"{visible(k)} ({v})" for k, v in tally.unmapped.most_common())
        where = f"the mapping {mapping.path}" if mapping is not None and mapping.path else "the taxonomy"
        raise DataError(f"{src}: {tally.unmapped.total()} rows have labels {where} does not map: {listed}. "
                        f"Add them to the mapping file, or say --unmapped other|drop; nothing was written")
    if tally.written == 0:
        raise DataError(f"{src}: no row left to write ({tally.rows} read); nothing was written")


def _warnings(tally: _Tally) -> list[str]:
    out = []
    if tally.subs_unknown:
        out.append(f"{tally.subs_unknown.total()} rows have a sub-problem the taxonomy does not know, written without "
                   f"one: {_examples(tally.subs_unknown)}")
    if tally.subs_elsewhere:
        out.append(f"{tally.subs_elsewhere.total()} rows have a sub-problem of another topic, written without one: "
                   f"{_examples(tally.subs_elsewhere)}")
    if tally.repeated:
        labels, texts = list(tally.ids_other_labels), list(tally.ids_other_texts)
        out.append(f"{tally.repeated} rows repeat a message id given before; {len(labels)} ids come with two "
                   f"different labels (train refuses them{', e.g. ' + ', '.join(labels[:_EXAMPLES]) if labels else ''}), "
                   f"{len(texts)} with another text (train keeps the first row only"
                   f"{', e.g. ' + ', '.join(texts[:_EXAMPLES]) if texts else ''}); chuishao check lists them")
    return out


def _summary(src: Path, output: Path, tally: _Tally, unmapped: str) -> dict[str, object]:
    return {
        "source": str(src), "output": str(output), "rows": tally.rows, "written": tally.written,
        "labels": dict(tally.labels.most_common()),
        "mapped": {k: dict(v) for k, v in sorted(tally.mapped.items())},
        "dropped_by_mapping": dict(tally.dropped.most_common()),
        "unmapped": dict(tally.unmapped.most_common()), "unmapped_action": unmapped,
        "unmapped_rows": tally.unmapped.total(),
        "repeated_ids": tally.repeated,
        "ids_with_two_labels": len(tally.ids_other_labels),
        "ids_with_two_texts": len(tally.ids_other_texts),
        "subs_unknown": tally.subs_unknown.total(),
        "subs_not_under_topic": tally.subs_elsewhere.total(),
        "pii_masked_rows": tally.masked,
    }


def _target(source: str, mapping: LabelMap | None, codes: Codes | None) -> Target | None:
    if mapping is not None:
        return mapping.get(source)
    if source == NO_LABEL:
        return None
    if codes is None:
        return Target(source)
    code = codes.topic(source)
    return Target(code) if code is not None else None
