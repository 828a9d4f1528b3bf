"""Training a model from labelled files: the `chuishao train` verb."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chuishao.config import ChuishaoConfig
from chuishao.errors import DataError
from chuishao.io.records import FieldMap, InputRecord, has_given_id, read_records
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.pipeline.doc import Doc
from chuishao.pipeline.near_copies import copies_of_held
from chuishao.taxonomy import Taxonomy
from chuishao.training.data import LabelledSet, check_labels, read_id_labels, read_labelled, relabelled
from chuishao.training.sheet import read_sheet

# A check of the training set against the held-out rows before fitting (chuishao.analysis.checks
# gives one: it sits above this layer): the training rows to leave out, and figures for the manifest.
# It raises DataError to refuse the data.
Preflight = Callable[["LabelledSet", list[InputRecord]], tuple[set[int], dict[str, object]]]


@dataclass
class TrainRequest:
    data: list[Path]
    taxonomy: Taxonomy | None  # None: --taxonomy none, labels are free
    config: ChuishaoConfig
    label_field: str = "label"
    fields: FieldMap | None = None
    extra_labels: list[Path] | None = None  # id,label,sub files joined with `corpus`
    extra_data: list[Path] | None = None  # labelled files with texts that train but do not calibrate
    sheets: list[Path] | None = None  # filled labelling sheets (suggest-labels): like extra_data, empty labels skipped
    corpus: Path | None = None  # unlabelled messages: self-training, and the texts of extra labels
    exclude: list[Path] | None = None  # files whose ids must never be used (held-out test sets)
    relabel: list[Path] | None = None  # id,label,sub files replacing the labels of DATA/extra_data rows
    preflight: Preflight | None = None  # e.g. the leakage check of `chuishao train`

    @classmethod
    def from_config(cls, config: ChuishaoConfig) -> TrainRequest:
        """The request a config's data section makes, ``${paths.NAME}`` resolved; relative paths
        are the current directory's. The model keeps the recipe with the variables' names only."""
        data = config.resolved_data()
        if not data.train:
            raise DataError("no training data: give DATA files or data.train in the config")

        def paths(values: list[str]) -> list[Path] | None:
            return [Path(v) for v in values] or None

        taxonomy = None if data.taxonomy == "none" else Taxonomy.load(None if data.taxonomy == "default" else data.taxonomy)
        fields = FieldMap(id=data.id_field, text=data.text_field, title=data.title_field or None)
        return cls(data=[Path(p) for p in data.train], taxonomy=taxonomy, config=config.portable(),
                   label_field=data.label_field, fields=fields, extra_labels=paths(data.extra_labels),
                   extra_data=paths(data.extra_data), sheets=paths(data.sheets),
                   corpus=Path(data.corpus) if data.corpus else None, exclude=paths(data.exclude), relabel=paths(data.relabel))


def _read_checked(req: TrainRequest, path: Path) -> LabelledSet:
    """A labelled file with texts, its labels checked against the taxonomy in use."""
    part = read_labelled(path, req.label_field, req.fields, low_conf_weight=req.config.classifier.low_conf_weight)
    if req.taxonomy is not None:
        check_labels(part, req.taxonomy, str(path))
    return part


def _read_corpus(req: TrainRequest) -> list[InputRecord]:
    """The corpus, read once: it gives the extra labels their texts and self-training its messages."""
    return [] if req.corpus is None else list(read_records(req.corpus, req.fields))


def load_training_set(req: TrainRequest, excluded: frozenset[str] | set[str],
                      corpus: list[InputRecord]) -> tuple[LabelledSet, int, dict[str, int], int]:
    """The DATA files' rows, then the extra rows (``extra_data`` files, ``extra_labels`` joined with
    ``corpus``, the records of ``req.corpus``); how many rows the DATA files gave; and how many
    rows were dropped as held out or repeated; and how many rows the ``relabel`` files gave
    another topic."""
    dropped = {"held_out": 0, "repeated": 0}
    data = LabelledSet()
    for path in req.data:
        data.extend(_read_checked(req, path))
    data = _without_excluded_and_repeats(data, excluded, req.data, dropped)
    from_data_files = len(data)
    for path in req.extra_data or []:
        data.extend(_read_checked(req, path))
    for path in req.sheets or []:  # rows an annotator has not labelled yet are skipped, and counted
        sheet = read_sheet(path, req.taxonomy)
        data.extend(sheet.data)
        dropped["unlabelled_in_sheets"] = dropped.get("unlabelled_in_sheets", 0) + sheet.unlabelled
    data = _without_excluded_and_repeats(data, excluded, [*req.data, *(req.extra_data or []), *(req.sheets or [])], dropped)
    relabelled_rows = 0
    for path in req.relabel or []:  # before the extra labels: those may only add messages
        data, changed = relabelled(data, path, held_out=excluded)
        if req.taxonomy is not None:
            check_labels(data, req.taxonomy, str(path))
        relabelled_rows += changed
    if req.extra_labels:
        if req.corpus is None:
            raise ValueError("extra labels (id,label,sub) need --corpus to find their texts")
        for path in req.extra_labels:  # the files before (and the DATA files) win for an id they share
            part = read_id_labels(path, corpus, exclude_ids=set(data.ids) | excluded, corpus_name=str(req.corpus))
            if req.taxonomy is not None:
                check_labels(part, req.taxonomy, str(path))
            data.extend(part)
    return data, from_data_files, dropped, relabelled_rows


def _without_excluded_and_repeats(data: LabelledSet, excluded: frozenset[str] | set[str],
                                  paths: list[Path], dropped: dict[str, int]) -> LabelledSet:
    """Rows whose id is held out (--exclude) are dropped: a test set must never leak into training.
    A message given twice is trained once; twice with different labels is an error."""
    keep: list[int] = []
    first: dict[str, tuple[str, str | None]] = {}
    conflicts: list[str] = []
    for i, message_id in enumerate(data.ids):
        label = (data.labels[i], data.subs[i])
        if message_id in excluded:
            dropped["held_out"] += 1
            continue
        if message_id in first:
            if first[message_id] != label:
                conflicts.append(message_id)
            dropped["repeated"] += 1
            continue
        first[message_id] = label
        keep.append(i)
    if conflicts:
        raise DataError(f"{', '.join(str(p) for p in paths)}: {len(conflicts)} message ids come with two different "
                        f"labels (e.g. {', '.join(conflicts[:5])}); fix or remove one of each")
    return data.take(keep)


def _held_out(paths: list[Path], fields: FieldMap | None) -> tuple[set[str], list[InputRecord]]:
    """The message ids of held-out files (rows without an id have none to match), and their records
    (the leakage check compares texts)."""
    ids: set[str] = set()
    records: list[InputRecord] = []
    for p in paths:
        for r in read_records(p, fields, need_text=False):
            records.append(r)
            if has_given_id(r, fields):
                ids.add(r.id)
    return ids, records


def _unlabelled_docs(model: ChuishaoClassifier, corpus: list[InputRecord], trained: set[str], excluded: set[str],
                     held_out: list[InputRecord]) -> list[Doc]:
    """The corpus messages to self-train on: none with a training or held-out id, nor a copy or near-copy of a
    held-out text (the corpus repeats letters under other ids; a held-out file listing ids only gives its texts through
    the corpus messages of those ids), nor one the model refuses."""
    held = [{"id": r.id, "title": r.title, "text": r.text} for r in held_out if r.error is None]
    untrained = [r for r in corpus if r.error is None and (r.id not in trained or r.id in excluded)]
    copies = copies_of_held(held, excluded, [{"id": r.id, "title": r.title, "text": r.text} for r in untrained])
    recs = [r for r in untrained if r.id not in excluded and r.id not in copies]
    recs = [r for r in recs if model.preprocessor.problem(r.text, title=r.title) is None]
    return model.docs([r.text for r in recs], titles=[r.title for r in recs])  # type: ignore[misc]


def _not_learned(taxonomy: Taxonomy, data: LabelledSet) -> list[str]:
    """Taxonomy codes with no training example: the model can never answer them, and says so."""
    if taxonomy.is_free:
        return []
    seen = set(data.labels) | {s for s in data.subs if s}
    return [code for topic in taxonomy.labels for code in (topic, *taxonomy.subs_of(topic)) if code not in seen]


def train(req: TrainRequest) -> ChuishaoClassifier:
    started = time.perf_counter()
    excluded, held_out = _held_out(req.exclude or [], req.fields)  # held-out ids and texts, read once
    corpus = _read_corpus(req)
    data, from_data_files, dropped, relabelled_rows = load_training_set(req, excluded, corpus)
    data_check: dict[str, object] = {}
    if req.preflight is not None:
        leave_out, data_check = req.preflight(data, held_out)
        if leave_out:
            keep = [i for i in range(len(data)) if i not in leave_out]
            from_data_files = sum(1 for i in keep if i < from_data_files)
            data = data.take(keep)
            dropped["leaked"] = len(leave_out)
    sources = [*req.data, *(req.extra_data or []), *(req.sheets or []), *(req.extra_labels or []), *(req.relabel or [])]
    files = ", ".join(str(p) for p in sources)
    if len(set(data.labels)) < 2:
        raise DataError(f"{files}: a model needs at least two labels to tell apart; found only {sorted(set(data.labels))}")
    taxonomy = req.taxonomy or Taxonomy.free(data.labels)
    model = ChuishaoClassifier(req.config, taxonomy)
    if all(model.preprocessor.problem(te, title=ti) for te, ti in zip(data.texts, data.titles, strict=True)):
        example = model.preprocessor.problem(data.texts[0], title=data.titles[0])
        raise DataError(f"{files}: no row has a text the model can learn from (e.g. row 1: {example})")
    self_training = req.config.classifier.self_training_weight > 0
    extra_docs = _unlabelled_docs(model, corpus, set(data.ids), excluded, held_out) if self_training else []
    # Calibrate on the DATA files' rows only: extra id-label files can cover a whole corpus, mostly
    # easy OTHER, and would set a review threshold too lax for the messages operators see.
    model.fit(data.texts, data.labels, titles=data.titles, subs=data.subs, weights=data.weights, unlabelled=extra_docs,
              calibration_rows=[i < from_data_files for i in range(len(data))])
    model.metadata.update({
        "data_fingerprint": data.fingerprint(),
        "training_rows": len(data),
        # rows per topic: suggest-labels favours the rare ones
        "label_counts": dict(sorted(Counter(data.labels).items())),
        "dropped_rows": dropped,  # held out by --exclude, or given twice
        "relabelled_rows": relabelled_rows,  # rows whose topic a relabel file changed
        "training_files": [str(p) for p in sources],
        "unlabelled_docs": len(extra_docs),
        "not_learned": _not_learned(taxonomy, data),
        **({"data_check": data_check} if data_check else {}),
        "train_seconds": round(time.perf_counter() - started, 1),
    })
    return model
