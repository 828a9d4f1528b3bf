"""``chuishao import``: a city's labelled messages (CSV, XLSX, JSONL, Parquet, Hugging Face datasets)
to our training JSONL (id, title, text, label, sub), through a label mapping file.

A mapping file says, for each of the city's own category codes or names, which whistle topic it
is (``OTHER`` allowed; ``DROP``: rows of that category are left out, counted). It is CSV
(``source,target[,sub]``, ``#`` lines are comments) or YAML (``source: target`` or
``source: {target: W14, sub: W14a}``). A target may be a topic code or a topic's name.

Nothing is lost silently: an unreadable row is an error naming it; a label the mapping does not
know is an error listing every such label with its count, unless ``unmapped`` says what to do
(``other``: they become OTHER; ``drop``: they are left out), and the summary counts them. The
output is written to a temporary file and renamed at the end, so a refused import leaves none.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import yaml

from chuishao.errors import DataError
from chuishao.extras import need
from chuishao.io.records import FieldMap, InputRecord, has_given_id, make_record, read_records
from chuishao.pipeline.privacy import mask_pii_raw
from chuishao.taxonomy import Taxonomy
from chuishao.training.data import label_text

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
    by_name = {taxonomy.name_of(code): code for code in taxonomy.labels}
    code = target if target in taxonomy.labels else by_name.get(target)
    if code is None:
        raise DataError(f"{where}: {target!r} is not a topic of taxonomy {taxonomy.name} "
                        f"(codes: {', '.join(taxonomy.labels)}; or DROP)")
    if sub and sub not in taxonomy.subs_of(code):
        raise DataError(f"{where}: sub-problem {sub!r} is not under {code} (its sub-problems: "
                        f"{', '.join(taxonomy.subs_of(code)) or 'none'})")
    return Target(code, sub)


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
def import_labelled(src: str | Path, output: str | Path, fields: FieldMap | None = None, label_field: str = "label",
                    sub_field: str | None = "sub", time_field: str | None = None, mapping: LabelMap | None = None,
                    unmapped: str = "error", taxonomy: Taxonomy | None = None, split: str | None = None,
                    sheet: str | None = None, mask_pii: bool = True) -> dict[str, object]:
    """Write ``src``'s rows to ``output`` (JSONL) with their labels mapped; the summary as a dict.
    ``taxonomy`` None: labels are free (only the mapping, or the labels as given)."""
    src, output = Path(src), Path(output)
    fields = fields or FieldMap()
    if unmapped not in UNMAPPED_ACTIONS:
        raise DataError(f"--unmapped {unmapped!r}: use other or drop (or leave it out: unmapped labels are an error)")
    if not output.name.endswith((".jsonl", ".ndjson")):
        raise DataError(f"{output}: the output is JSON Lines; name it .jsonl")
    if output.exists() and src.exists() and output.resolve() == src.resolve():
        raise DataError(f"{output}: is the input; write the import to another file")
    known = set(taxonomy.labels) if taxonomy is not None and not taxonomy.is_free else None
    other = taxonomy.other.code if taxonomy is not None and taxonomy.other is not None else "OTHER"
    records = source_records(src, fields, split, sheet)  # raises before any work for a missing file or column

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    bad: list[str] = []
    unmapped_counts: Counter[str] = Counter()
    mapped: dict[str, Counter[str]] = {}
    labels: Counter[str] = Counter()
    dropped_by_mapping: Counter[str] = Counter()
    ids: Counter[str] = Counter()
    rows = written = masked = subs_left = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in records:
                rows += 1
                if rec.error:
                    bad.append(rec.error)
                    continue
                raw = rec.fields.get(label_field)
                source = label_text(raw).strip() if raw not in (None, "") else NO_LABEL
                target = _target(source, mapping, known, taxonomy)
                if target is None:
                    unmapped_counts[source] += 1
                    if unmapped != "other":
                        continue
                    target = Target(other)
                elif target.label == DROP:
                    dropped_by_mapping[source] += 1
                    continue
                mapped.setdefault(source, Counter())[target.label] += 1
                sub = target.sub
                given_sub = rec.fields.get(sub_field) if sub_field else None
                if sub is None and given_sub not in (None, ""):
                    if taxonomy is None or taxonomy.is_free or label_text(given_sub) in taxonomy.subs_of(target.label):
                        sub = label_text(given_sub)
                    else:
                        subs_left += 1  # a sub-problem of another topic cannot be kept under this one
                message_id = rec.id if has_given_id(rec, fields) else f"{src.name}:row-{rec.row}"
                ids[message_id] += 1
                title, text = rec.title or "", str(rec.text)
                if mask_pii:
                    new_title, new_text = mask_pii_raw(title), mask_pii_raw(text)
                    masked += (new_title, new_text) != (title, text)
                    title, text = new_title, new_text
                out: dict[str, object] = {"id": message_id, "title": title, "text": text, "label": target.label,
                                          "sub": sub, "source_label": None if source == NO_LABEL else source}
                if time_field:
                    out["time"] = _time_text(rec.fields.get(time_field))
                if rec.fields.get("conf") not in (None, ""):  # the annotator's confidence: train weighs "low" rows less
                    out["conf"] = label_text(rec.fields["conf"])
                fh.write(json.dumps(out, ensure_ascii=False) + "\n")
                labels[target.label] += 1
                written += 1
        if bad:
            shown = "; ".join(bad[:5])
            raise DataError(f"{src}: {len(bad)} of {rows} rows cannot be read ({shown}{'; ...' if len(bad) > 5 else ''}); "
                            f"nothing was written")
        if unmapped_counts and unmapped == "error":
            listed = ", ".join(f"{k} ({v})" for k, v in unmapped_counts.most_common())
            where = f"the mapping {mapping.path}" if mapping is not None and mapping.path else "the taxonomy"
            raise DataError(f"{src}: {sum(unmapped_counts.values())} rows have labels {where} does not map: {listed}. "
                            f"Add them to the mapping file, or say --unmapped other|drop; nothing was written")
        if written == 0:
            raise DataError(f"{src}: no row left to write ({rows} read); nothing was written")
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "source": str(src), "output": str(output), "rows": rows, "written": written,
        "labels": dict(labels.most_common()),
        "mapped": {k: dict(v) for k, v in sorted(mapped.items())},
        "dropped_by_mapping": dict(dropped_by_mapping.most_common()),
        "unmapped": dict(unmapped_counts.most_common()), "unmapped_action": unmapped,
        "unmapped_rows": sum(unmapped_counts.values()),
        "repeated_ids": sum(n - 1 for n in ids.values() if n > 1),
        "subs_not_under_topic": subs_left,
        "pii_masked_rows": masked,
    }


def _target(source: str, mapping: LabelMap | None, known: set[str] | None, taxonomy: Taxonomy | None) -> Target | None:
    if mapping is not None:
        return mapping.get(source)
    if source == NO_LABEL:
        return None
    if known is None:
        return Target(source)
    if source in known:
        return Target(source)
    assert taxonomy is not None
    by_name = {taxonomy.name_of(code): code for code in taxonomy.labels}
    return Target(by_name[source]) if source in by_name else None
