"""Checks of labelled data before training: leakage into a test set, duplicates, conflicting labels,
empty texts, rare classes, taxonomy codes without an example, the label distribution.

Texts are compared in a matching form: NFKC, lower case, and only letters and digits kept (white
space, punctuation and symbols removed), so a re-wrapped or re-punctuated copy still matches.

- exact duplicates: the same matching form;
- near duplicates: character 5-gram ("shingle") sets whose Jaccard similarity is at least
  ``near_threshold`` (0.9). Candidates come from MinHash signatures (64 hash functions) banded
  for locality-sensitive hashing (16 bands of 4): a pair at Jaccard 0.9 shares a band with
  probability above 0.999 999; every candidate is then verified on its exact shingle sets, so a
  pair reported has the Jaccard it says. Pure numpy, no extra dependency.

``problems`` (the check fails: exit 1, and ``chuishao train`` refuses leakage) and ``warnings``
(said, not refused) are kept apart.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chuishao.errors import DataError
from chuishao.io.records import FieldMap, InputRecord, has_given_id, read_records
from chuishao.taxonomy import Taxonomy
from chuishao.training.data import LabelledSet, label_text, row_place, visible

SHINGLE = 5
NUM_PERM = 64
BANDS = 16
_ROWS = NUM_PERM // BANDS
_BIG_BUCKET = 400  # a band bucket larger than this pairs only across train and test (templated messages)
_SHOWN = 20  # examples kept per finding in the report (counts are always whole)


def matching_form(text: str | None) -> str:
    """A text as compared for duplicates: NFKC, lower case, letters and digits only."""
    norm = unicodedata.normalize("NFKC", text or "").lower()
    return "".join(ch for ch in norm if unicodedata.category(ch)[0] in "LN")


@dataclass
class Rows:
    """Labelled rows to check, each with the place it came from (``file row N``)."""

    where: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    subs: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # rows that could not be read, as errors naming them
    unlabelled: list[str] = field(default_factory=list)  # rows without a label

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_labelled(cls, data: LabelledSet, where: str) -> Rows:
        rows = cls()
        for i, (message_id, label, sub, text) in enumerate(zip(data.ids, data.labels, data.subs, data.texts, strict=True)):
            rows._add(f"{where} #{i + 1}", message_id, label, sub, text)
        return rows

    @classmethod
    def from_records(cls, records: Iterable[InputRecord], where: str, fields: FieldMap | None = None,
                     label_field: str | None = "label", sub_field: str = "sub") -> Rows:
        """Records as read by ``read_records``: an unreadable row or a row without label is kept as
        a finding, not dropped. ``label_field`` None: unlabelled rows (a held-out set's texts only)."""
        rows = cls()
        for rec in records:
            place = row_place(where, rec.row)  # as the reader's own errors name it: a JSONL line, a spreadsheet row
            text_field = (fields or FieldMap()).text
            null_text = text_field in rec.fields and rec.fields[text_field] is None  # an empty text, as read_labelled has it
            if rec.error and not null_text:
                rows.unreadable.append(rec.error)
                continue
            label = rec.fields.get(label_field) if label_field else ""
            if label_field and label in (None, ""):
                rows.unlabelled.append(place)
                continue
            sub = rec.fields.get(sub_field)
            message_id = rec.id if has_given_id(rec, fields) else f"{where}:{rec.id}"
            rows._add(place, message_id, label_text(label), label_text(sub) if sub not in (None, "") else None,
                      rec.text if isinstance(rec.text, str) else "")
        return rows

    @classmethod
    def read(cls, path: str | Path, fields: FieldMap | None = None, label_field: str | None = "label") -> Rows:
        return cls.from_records(read_records(path, fields), Path(path).name, fields, label_field)

    def _add(self, where: str, message_id: str, label: str, sub: str | None, text: str) -> None:
        self.where.append(where)
        self.ids.append(message_id)
        self.labels.append(label)
        self.subs.append(sub)
        self.texts.append(text)

    def extend(self, other: Rows) -> None:
        for name in ("where", "ids", "labels", "subs", "texts", "unreadable", "unlabelled"):
            getattr(self, name).extend(getattr(other, name))


@dataclass
class CheckReport:
    figures: dict[str, object]
    problems: list[str]  # the check fails
    warnings: list[str]
    details: dict[str, object]
    leaked_row_indices: set[int] = field(default_factory=set)  # training rows that copy a test row or share its id

    @property
    def leaked_rows(self) -> int:
        return len(self.leaked_row_indices)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {"passed": self.passed, **self.figures, "problems": self.problems, "warnings": self.warnings,
                "details": self.details}

    def text(self) -> str:
        """The readable report (stderr)."""
        f = self.figures
        lines = [f"chuishao check: {f['train_rows']} training rows" + (f", {f['test_rows']} test rows" if f["test_rows"] else "")
                 + f" ({f['seconds']} s)"]
        dist = self.details.get("distribution")
        if isinstance(dist, list) and dist:
            lines.append("  label        name                 train    share    test    share")
            for d in dist:
                lines.append(f"  {d['label']:<12} {str(d['name'])[:10]:<12} {d['train']:>6} {d['train_share']:>7.1%}  "
                             f"{d['test']:>6} {d['test_share']:>7.1%}")
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines.append("  passed" if self.passed else f"  FAILED: {len(self.problems)} problem(s)")
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)


# ---- near duplicates ------------------------------------------------------------------------
_RNG = np.random.default_rng(20261206)  # fixed: the same data always gives the same candidates
_A = _RNG.integers(1, 2**63, NUM_PERM, dtype=np.uint64) | np.uint64(1)
_B = _RNG.integers(0, 2**63, NUM_PERM, dtype=np.uint64)
_POLY = np.uint64(1_000_003)


def shingles(form: str, k: int = SHINGLE) -> np.ndarray:
    """The distinct 64-bit hashes of a matching form's character k-grams (the whole form if shorter)."""
    codes = np.frombuffer(form.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(codes) == 0:
        return codes
    k = min(k, len(codes))
    with np.errstate(over="ignore"):
        h = np.zeros(len(codes) - k + 1, dtype=np.uint64)
        for j in range(k):  # a polynomial rolling hash, vectorised over windows (uint64 wraps)
            h = h * _POLY + codes[j:len(codes) - k + 1 + j]
    return np.unique(h)


def _signature(sh: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return ((_A[:, None] * sh[None, :] + _B[:, None]) >> np.uint64(32)).min(axis=1)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 or len(b) == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def near_pairs(forms: list[str], side: list[int], threshold: float) -> list[tuple[int, int, float]]:
    """Pairs (i, j, jaccard) of distinct matching forms at Jaccard >= threshold. ``side`` is 0 for
    training forms, 1 for test forms: big LSH buckets only pair across sides."""
    sets = [shingles(f) for f in forms]
    buckets: dict[bytes, list[int]] = defaultdict(list)
    for i, sh in enumerate(sets):
        if len(sh) == 0:
            continue
        sig = _signature(sh).astype(np.uint32)
        for band in range(BANDS):
            buckets[bytes([band]) + sig[band * _ROWS:(band + 1) * _ROWS].tobytes()].append(i)
    candidates: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len(members) < 2:
            continue
        if len(members) > _BIG_BUCKET:
            train = [m for m in members if side[m] == 0]
            test = [m for m in members if side[m] == 1]
            candidates.update((min(a, b), max(a, b)) for a in train for b in test)
            continue
        candidates.update((a, b) for x, a in enumerate(members) for b in members[x + 1:])
    found = []
    for a, b in sorted(candidates):
        la, lb = len(sets[a]), len(sets[b])
        if min(la, lb) / max(la, lb) < threshold:  # Jaccard can be at most the ratio of the set sizes
            continue
        sim = jaccard(sets[a], sets[b])
        if sim >= threshold:
            found.append((a, b, round(sim, 4)))
    return found


# ---- the checks -----------------------------------------------------------------------------
def _id_groups(rows: Rows) -> tuple[list[list[int]], list[list[int]]]:
    """Rows sharing a message id: the groups whose labels (topic or sub-problem) differ, and those
    with one label but other texts."""
    by_id: dict[str, list[int]] = defaultdict(list)
    for i, message_id in enumerate(rows.ids):
        by_id[message_id].append(i)
    two_labels, two_texts = [], []
    for members in by_id.values():
        if len({(rows.labels[i], rows.subs[i]) for i in members}) > 1:
            two_labels.append(members)
        elif len({rows.texts[i] for i in members}) > 1:
            two_texts.append(members)
    return two_labels, two_texts


def _repeated_ids(rows: Rows, problems: list[str], warnings: list[str], details: dict[str, object]) -> tuple[int, int]:
    """Repeated message ids in the training rows, said as ``chuishao train`` will treat them: one id
    with two labels stops it (a problem), one id with other texts is trained on its first row only,
    the others being dropped without a word (a warning). Returns how many ids of each."""
    two_labels, two_texts = _id_groups(rows)

    def shown(group: list[int], labelled: bool) -> str:
        places = [rows.where[i] + (f" {rows.labels[i]}" + (f"/{rows.subs[i]}" if rows.subs[i] else "") if labelled else "")
                  for i in group[:3]]
        return f"id {rows.ids[group[0]]}: {' vs '.join(places) if labelled else ', '.join(places)}"

    def rows_of(group: list[int]) -> list[dict[str, object]]:
        return [{"where": rows.where[i], "id": rows.ids[i], "label": rows.labels[i], "sub": rows.subs[i]} for i in group]

    if two_labels:
        problems.append(f"{len(two_labels)} message ids come with two different labels, which chuishao train refuses "
                        f"(e.g. {'; '.join(shown(g, True) for g in two_labels[:3])})")
        details["ids_with_two_labels"] = [rows_of(g) for g in two_labels[:_SHOWN]]
    if two_texts:
        warnings.append(f"{len(two_texts)} message ids come with different texts; chuishao train keeps the first row "
                        f"of each and drops the others (e.g. {'; '.join(shown(g, False) for g in two_texts[:3])})")
        details["ids_with_two_texts"] = [rows_of(g) for g in two_texts[:_SHOWN]]
    return len(two_labels), len(two_texts)


def run_checks(train: Rows, test: Rows | None = None, taxonomy: Taxonomy | None = None, min_examples: int = 5,
               near_threshold: float = 0.9) -> CheckReport:
    """Check training rows (and a test set's, for leakage). ``taxonomy`` None: labels are free."""
    import time

    started = time.perf_counter()
    test = test or Rows()
    problems: list[str] = []
    warnings: list[str] = []
    details: dict[str, object] = {}

    for name, rows in (("training", train), ("test", test)):
        if rows.unreadable:
            problems.append(f"{len(rows.unreadable)} unreadable {name} rows (e.g. {'; '.join(rows.unreadable[:3])})")
            details[f"unreadable_{name}_rows"] = rows.unreadable[:_SHOWN]
        if rows.unlabelled:
            problems.append(f"{len(rows.unlabelled)} {name} rows without a label (e.g. {', '.join(rows.unlabelled[:3])})")
            details[f"unlabelled_{name}_rows"] = rows.unlabelled[:_SHOWN]

    # unknown labels and sub-problems
    if taxonomy is not None and not taxonomy.is_free:
        for name, rows in (("training", train), ("test", test)):
            unknown = Counter(lab for lab in rows.labels if lab and lab not in set(taxonomy.labels))
            if unknown:
                problems.append(f"{sum(unknown.values())} {name} rows have labels not in taxonomy {taxonomy.name}: "
                                + ", ".join(f"{visible(k)} ({v})" for k, v in unknown.most_common(10)))
            bad_subs = Counter(s for s, lab in zip(rows.subs, rows.labels, strict=True)
                               if s and lab in set(taxonomy.labels) and s not in taxonomy.subs_of(lab))
            if bad_subs:
                problems.append(f"{sum(bad_subs.values())} {name} rows have a sub-problem not under their topic: "
                                + ", ".join(f"{k} ({v})" for k, v in bad_subs.most_common(10)))

    two_labels, two_texts = _repeated_ids(train, problems, warnings, details)
    forms_train = [matching_form(t) for t in train.texts]
    forms_test = [matching_form(t) for t in test.texts]

    # empty texts
    for name, rows, forms in (("training", train, forms_train), ("test", test, forms_test)):
        empty = [rows.where[i] for i, f in enumerate(forms) if not f]
        if empty:
            warnings.append(f"{len(empty)} {name} rows have an empty text (nothing but spaces or punctuation; "
                            f"e.g. {', '.join(empty[:3])})")
            details[f"empty_{name}_texts"] = empty[:_SHOWN]

    # identical texts: groups of rows per matching form
    groups: dict[str, list[tuple[int, int]]] = defaultdict(list)  # form -> [(side, row)]
    for side, forms in ((0, forms_train), (1, forms_test)):
        for i, form in enumerate(forms):
            if form:
                groups[form].append((side, i))

    def row_of(side: int, i: int) -> dict[str, object]:
        rows = train if side == 0 else test
        return {"where": rows.where[i], "id": rows.ids[i], "label": rows.labels[i]}

    conflicts = []
    repeated_train = 0
    exact_leaks: list[tuple[int, int]] = []  # (train row, test row)
    for members in groups.values():
        if len({(train if s == 0 else test).labels[i] for s, i in members} - {""}) > 1:
            conflicts.append([row_of(s, i) for s, i in members])
        in_train = [i for s, i in members if s == 0]
        in_test = [i for s, i in members if s == 1]
        repeated_train += max(0, len(in_train) - 1)
        exact_leaks += [(a, b) for a in in_train for b in in_test]
    if conflicts:
        rows_in = sum(len(c) for c in conflicts)
        problems.append(f"{len(conflicts)} identical texts carry different labels ({rows_in} rows; e.g. "
                        + "; ".join(" vs ".join(f"{r['where']} {r['label']}" for r in c[:3]) for c in conflicts[:2]) + ")")
        details["conflicting_labels"] = conflicts[:_SHOWN]
    if repeated_train:
        warnings.append(f"{repeated_train} training rows repeat the text of another training row")

    # leakage: shared ids, exact and near copies of test rows in the training rows
    shared_ids = sorted(set(train.ids) & set(test.ids))
    near: list[tuple[int, int, float]] = []  # (train row, test row, jaccard)
    near_train: list[tuple[int, int, float]] = []  # pairs of training rows
    distinct = sorted({f for f in forms_train if f} | {f for f in forms_test if f})
    train_forms = {f for f in forms_train if f}
    sides = [0 if f in train_forms else 1 for f in distinct]
    for a, b, sim in near_pairs(distinct, sides, near_threshold):
        ra, rb = groups[distinct[a]], groups[distinct[b]]
        near += [(i, j, sim) for s, i in ra if s == 0 for t, j in rb if t == 1]
        near += [(i, j, sim) for s, i in rb if s == 0 for t, j in ra if t == 1]
        first_a = next((i for s, i in ra if s == 0), None)
        first_b = next((i for s, i in rb if s == 0), None)
        if first_a is not None and first_b is not None:
            near_train.append((first_a, first_b, sim))
    leaked: set[int] = set()
    if shared_ids:
        ids = set(shared_ids)
        leaked.update(i for i, m in enumerate(train.ids) if m in ids)
        problems.append(f"leakage: {len(shared_ids)} message ids are in both the training and the test data "
                        f"(e.g. {', '.join(shared_ids[:5])})")
        details["shared_ids"] = shared_ids[:_SHOWN]
    if exact_leaks:
        leaked.update(i for i, _ in exact_leaks)
        shown = ", ".join(f"{train.where[i]} = {test.where[j]}" for i, j in exact_leaks[:3])
        problems.append(f"leakage: {len({i for i, _ in exact_leaks})} training rows have the same text as a test row "
                        f"(e.g. {shown})")
        details["exact_leaks"] = [{"train": row_of(0, i), "test": row_of(1, j)} for i, j in exact_leaks[:_SHOWN]]
    if near:
        leaked.update(i for i, _, _ in near)
        shown = ", ".join(f"{train.where[i]} ~ {test.where[j]} ({sim})" for i, j, sim in near[:3])
        problems.append(f"leakage: {len({i for i, _, _ in near})} training rows are near copies (Jaccard >= "
                        f"{near_threshold}) of {len({j for _, j, _ in near})} test rows (e.g. {shown})")
        details["near_leaks"] = [{"train": row_of(0, i), "test": row_of(1, j), "jaccard": sim} for i, j, sim in near[:_SHOWN]]
    if near_train:
        warnings.append(f"{len(near_train)} pairs of training rows are near copies of each other (Jaccard >= {near_threshold})")
        details["near_duplicates_in_training"] = [{"a": row_of(0, i), "b": row_of(0, j), "jaccard": sim}
                                                  for i, j, sim in near_train[:_SHOWN]]

    # classes: too few examples, codes with none, the distribution
    counts = Counter(train.labels)
    sub_counts = Counter(s for s in train.subs if s)
    few = {k: v for k, v in sorted(counts.items()) if v < min_examples}
    few_subs = {k: v for k, v in sorted(sub_counts.items()) if v < min_examples}
    if few or few_subs:
        warnings.append(f"classes with fewer than {min_examples} training examples: "
                        + ", ".join(f"{k} ({v})" for k, v in {**few, **few_subs}.items()))
        details["few_examples"] = {**few, **few_subs}
    test_counts = Counter(lab for lab in test.labels if lab)
    if taxonomy is not None and not taxonomy.is_free:
        codes = [c for topic in taxonomy.labels for c in (topic, *taxonomy.subs_of(topic))]
        missing = [c for c in codes if c not in counts and c not in sub_counts]
        if missing:
            warnings.append(f"{len(missing)} taxonomy codes have no training example, a model cannot answer them "
                            f"(not_learned): {', '.join(missing)}")
        details["not_learned"] = missing
        order = [*taxonomy.labels, *sorted(set(counts) - set(taxonomy.labels))]
        names = {c: taxonomy.name_of(c) if c in taxonomy.labels else "(not in taxonomy)" for c in order}
    else:
        order = sorted(set(counts) | set(test_counts))
        names = dict.fromkeys(order, "")
    n_train, n_test = max(1, len(train)), max(1, len(test))
    details["distribution"] = [
        {"label": c, "name": names[c], "train": counts.get(c, 0), "train_share": round(counts.get(c, 0) / n_train, 4),
         "test": test_counts.get(c, 0), "test_share": round(test_counts.get(c, 0) / n_test, 4)} for c in order]
    unseen_test = sorted(set(test_counts) - set(counts))
    if unseen_test:
        warnings.append(f"test labels with no training example: {', '.join(unseen_test)}")

    figures: dict[str, object] = {
        "train_rows": len(train), "test_rows": len(test),
        "unreadable_rows": len(train.unreadable) + len(test.unreadable),
        "empty_texts": sum(1 for f in forms_train if not f) + sum(1 for f in forms_test if not f),
        "repeated_texts_in_training": repeated_train,
        "ids_with_two_labels": two_labels, "ids_with_two_texts": two_texts,
        "conflicting_texts": len(conflicts),
        "shared_ids": len(shared_ids),
        "exact_leaks": len({i for i, _ in exact_leaks}),
        "near_leaks": len({i for i, _, _ in near}),
        "near_pairs_in_training": len(near_train),
        "leaked_training_rows": len(leaked),
        "few_example_classes": len(few) + len(few_subs),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return CheckReport(figures, problems, warnings, details, leaked_row_indices=leaked)


def leakage_problems(report: CheckReport) -> list[str]:
    return [p for p in report.problems if p.startswith("leakage:")]


def check_files(train: list[Path], test: list[Path] | None = None, fields: FieldMap | None = None,
                label_field: str = "label", taxonomy: Taxonomy | None = None, min_examples: int = 5,
                near_threshold: float = 0.9) -> CheckReport:
    if not train:
        raise DataError("no data to check: give one or more labelled files")
    rows, held = Rows(), Rows()
    for path in train:
        rows.extend(Rows.read(path, fields, label_field))
    for path in test or []:
        held.extend(Rows.read(path, fields, label_field))
    return run_checks(rows, held, taxonomy, min_examples, near_threshold)


LEAKAGE_POLICIES = ("refuse", "drop", "allow")


def train_preflight(data: LabelledSet, held_out: list[InputRecord], taxonomy: Taxonomy | None, leakage: str = "refuse",
                    fields: FieldMap | None = None, near_threshold: float = 0.9,
                    say: Callable[[str], None] | None = None) -> tuple[set[int], dict[str, object]]:
    """The check ``chuishao train`` runs on its training set against its held-out files (data.exclude):
    leakage (a shared id, the same text, a near copy) refuses the training unless ``leakage`` is
    ``drop`` (those training rows are left out) or ``allow``. Other problems (identical texts with
    two labels) are said as warnings. Returns the rows to leave out and figures for the manifest."""
    if leakage not in LEAKAGE_POLICIES:
        raise DataError(f"leakage policy {leakage!r}: use one of {', '.join(LEAKAGE_POLICIES)}")
    train = Rows.from_labelled(data, "training set")
    for i, message_id in enumerate(data.ids):  # name rows by id: the set joins several files
        train.where[i] = f"id {message_id}"
    test = Rows.from_records(held_out, "held-out", fields, label_field=None)
    report = run_checks(train, test, taxonomy, near_threshold=near_threshold)
    leaks = leakage_problems(report)
    say = say or (lambda line: None)
    for problem in report.problems:
        if problem not in leaks:
            say(f"warning: data check: {problem}")
    figures = {k: report.figures[k] for k in ("shared_ids", "exact_leaks", "near_leaks", "leaked_training_rows",
                                              "conflicting_texts", "repeated_texts_in_training")}
    figures["leakage_policy"] = leakage
    if not leaks:
        return set(), figures
    if leakage == "refuse":
        raise DataError(f"{report.leaked_rows} training rows leak into the held-out data: {'; '.join(leaks)}. "
                        f"Remove them, or give --data.leakage drop to leave them out (--allow-leakage trains on them)")
    if leakage == "allow":
        say(f"warning: training on {report.leaked_rows} rows that leak into the held-out data (--allow-leakage): "
            + "; ".join(leaks))
        return set(), figures
    say(f"left out {report.leaked_rows} training rows that leak into the held-out data: " + "; ".join(leaks))
    return report.leaked_row_indices, figures
