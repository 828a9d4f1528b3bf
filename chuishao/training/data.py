"""Labelled data: reading, validation against the taxonomy, fingerprinting."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chuishao.errors import DataError
from chuishao.io.formats import detect_format
from chuishao.io.labels import read_id_label_file
from chuishao.io.records import FieldMap, InputRecord, has_given_id, read_records
from chuishao.taxonomy import Codes, Taxonomy


@dataclass
class LabelledSet:
    ids: list[str] = field(default_factory=list)
    titles: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    subs: list[str | None] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    _COLUMNS = ("ids", "titles", "texts", "labels", "subs", "weights")

    def extend(self, other: LabelledSet) -> None:
        for name in self._COLUMNS:
            getattr(self, name).extend(getattr(other, name))

    def take(self, rows: list[int]) -> LabelledSet:
        """These rows, in this order."""
        return LabelledSet(**{name: [getattr(self, name)[i] for i in rows] for name in self._COLUMNS})

    def fingerprint(self) -> str:
        """Order-independent hash of (id, label, sub, text): the same data gives the same print."""
        items = sorted(
            hashlib.sha256(f"{i}\x1f{lab}\x1f{s or ''}\x1f{ti or ''}\x1f{te}".encode()).hexdigest()
            for i, lab, s, ti, te in zip(self.ids, self.labels, self.subs, self.titles, self.texts, strict=True)
        )
        return hashlib.sha256("".join(items).encode()).hexdigest()[:16]


def label_text(value: object) -> str:
    """A label as text. A whole number stored as a float (1.0, as Excel and pandas keep numbers)
    is the same class as 1: ``str`` alone would make them two."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def visible(label: str) -> str:
    """A label as shown in a message: quoted when it is empty or has spaces at either end, which
    would otherwise show as nothing (``'  '``, not a blank in a list)."""
    return repr(label) if not label.strip() or label != label.strip() else label


def row_place(path: str | Path, row: int) -> str:
    """Where a record is, as its user finds it: a JSONL line (as a text editor numbers it), a
    spreadsheet's row (its header is row 1, so data row 1 is row 2), else the data row as the
    readers name it (CSV, Parquet)."""
    name = Path(path).name
    try:
        fmt = detect_format(name)
    except DataError:  # not a file name (a Hugging Face dataset, "held-out")
        return f"{name} row {row}"
    if fmt == "jsonl":
        return f"{name} line {row}"
    return f"{name} row {row + 1}" if fmt == "xlsx" else f"{name} row {row}"


def read_labelled(
    path: str | Path,
    label_field: str = "label",
    fields: FieldMap | None = None,
    sub_field: str = "sub",
    conf_field: str = "conf",
    low_conf_weight: float = 1.0,
) -> LabelledSet:
    """Read a labelled JSONL/CSV file; any unreadable row is an error naming the row."""
    data = LabelledSet()
    problems: list[str] = []
    text_field = (fields or FieldMap()).text
    for rec in read_records(path, fields):
        if rec.error and rec.text is None and text_field in rec.fields and rec.fields[text_field] is None:
            rec.error, rec.text = None, ""  # a null text is an empty one: scored as that row's error, as "" is
        if rec.error:
            problems.append(rec.error)
            continue
        label = rec.fields.get(label_field)
        if label in (None, ""):
            problems.append(f"{row_place(path, rec.row)}: no {label_field!r} value")
            continue
        # a row without an id gets one that names its file: "row-3" of two files is not one message
        data.ids.append(rec.id if has_given_id(rec, fields) else f"{Path(path).name}:{rec.id}")
        data.titles.append(rec.title)
        data.texts.append(rec.text)  # type: ignore[arg-type]
        data.labels.append(label_text(label))
        sub = rec.fields.get(sub_field)
        data.subs.append(label_text(sub) if sub not in (None, "") else None)
        data.weights.append(low_conf_weight if rec.fields.get(conf_field) == "low" else 1.0)
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DataError(f"{path}: {len(problems)} unusable rows:\n  {shown}{more}")
    if not data.labels:
        raise DataError(f"{path}: no labelled rows")
    return data


def relabelled(data: LabelledSet, path: str | Path, held_out: set[str] | frozenset[str] = frozenset()) -> tuple[LabelledSet, int]:
    """``data`` with the labels of an ``id,label,sub`` file for the rows it names, at weight 1
    (a label decided again, e.g. by the majority of three annotators under a newer guide), and how
    many rows changed label. An id the data lacks is an error (that label would be lost silently),
    unless it is ``held_out`` (a test set's id, dropped from the data on purpose)."""
    wanted = read_id_label_file(path)
    missing = sorted(set(wanted) - set(data.ids) - held_out)
    if missing:
        raise DataError(f"{path}: {len(missing)} ids are not in the training data (e.g. {', '.join(missing[:5])}); "
                        f"a relabel file replaces labels of rows the train/extra_data files give")
    out = data.take(list(range(len(data))))
    changed = 0
    for i, message_id in enumerate(out.ids):
        if message_id in wanted:
            label, sub = wanted[message_id]
            changed += label != out.labels[i]
            out.labels[i], out.subs[i], out.weights[i] = label, sub, 1.0
    return out, changed


def read_id_labels(path: str | Path, corpus: str | Path | Iterable[InputRecord], fields: FieldMap | None = None,
                   exclude_ids: set[str] | None = None, corpus_name: str | None = None) -> LabelledSet:
    """Join an ``id,label,sub`` file (our own labels, committed without texts) with a corpus: a
    file, or its records already read (``corpus_name`` then names it in errors). An id the corpus
    lacks, or whose corpus row is unusable, is an error: those labels would otherwise be dropped
    without a word."""
    wanted = read_id_label_file(path)
    exclude_ids = exclude_ids or set()
    records = read_records(corpus, fields) if isinstance(corpus, str | Path) else corpus
    data = LabelledSet()
    found: set[str] = set()
    unusable: list[str] = []
    for rec in records:
        if rec.id not in wanted or rec.id in found:  # an id the corpus repeats: its first message
            continue
        if rec.error:
            unusable.append(rec.error)
            continue
        found.add(rec.id)
        if rec.id in exclude_ids:
            continue
        label, sub = wanted[rec.id]
        data.ids.append(rec.id)
        data.titles.append(rec.title)
        data.texts.append(rec.text)  # type: ignore[arg-type]
        data.labels.append(label)
        data.subs.append(sub)
        data.weights.append(1.0)
    missing = [i for i in wanted if i not in found]
    if missing:
        where = corpus if isinstance(corpus, str | Path) else corpus_name or "the corpus"
        detail = f"; unusable corpus rows: {'; '.join(unusable[:3])}" if unusable else ""
        raise DataError(
            f"{path}: {len(missing)} of its {len(wanted)} ids have no usable text in {where} "
            f"(e.g. {', '.join(missing[:5])}){detail}. Give the --corpus these labels were made on."
        )
    return data


def check_labels(data: LabelledSet, taxonomy: Taxonomy, source: str) -> None:
    """Labels outside the taxonomy are an error that says what to do."""
    if taxonomy.is_free:
        return
    unknown = taxonomy.unknown_labels(data.labels)
    if unknown:
        codes = Codes(taxonomy)
        named = [label for label in unknown if codes.topic(label.strip()) is not None]
        if named:  # a city's export with topic names (or lower-case codes): import maps them, --taxonomy none would not
            raise DataError(
                f"{source}: labels given as topic names or in lower case ({', '.join(named[:5])}); the model trains on "
                f"codes ({', '.join(taxonomy.labels[:3])}, ...): convert the file first with "
                f"`chuishao import {source} -o labelled.jsonl`, which maps names and codes in any case.")
        raise DataError(
            f"{source}: labels not in taxonomy {taxonomy.name} v{taxonomy.version}: {', '.join(unknown[:10])}. "
            f"Known labels: {', '.join(taxonomy.labels)}. For another label set use --taxonomy none "
            f"or --taxonomy FILE, or choose the label column with --label-field."
        )
    bad_subs = sorted({s for s, lab in zip(data.subs, data.labels, strict=True) if s and s not in taxonomy.subs_of(lab)})
    if bad_subs:
        raise DataError(f"{source}: sub-problem codes that do not belong to their topic: {', '.join(bad_subs[:10])}")
