"""Urgency detection against hand labels (issue 17), and its speed.

    python bench/bench_urgency.py [--split dev|test|all ...] [--gold FILE ...] [--ids FILE]
                                  [--corpus ../shared/data/corpus.jsonl] [--rules data/urgency/urgency.yaml]
                                  [--show-ids] [-o bench/results/urgency.json]

A gold file has columns id,danger,level,cues (danger 1/0, level high|medium|none) for ids of the corpus. The default
gold files are data/labels/urgency-enriched-300.csv and data/labels/urgency-300.csv. A gold file FILE.csv that has
split lists beside it (``<stem minus -300>-dev-ids.txt`` and ``-test-ids.txt``, written by
bench/split_urgency_enriched.py) is scored once per ``--split`` asked (default: dev and test, separately); a gold
file without split lists is wholly a test set (urgency-300.csv): it is scored under ``test`` and ``all``, skipped
under ``dev``. ``--ids FILE`` scores only those ids of every gold file instead.

Prints and writes, per scored set: recall and precision for danger (any level) and per level with 95 % Wilson
intervals, the confusion (gold level x detected level); the ids of the misses, false alarms and level swaps only for
a dev set or with --show-ids (the test sets' per-id results are not shown, so that nobody tunes on them); and rows/s
of `annotate` over the whole corpus. Without any gold file it measures the speed only.
Target: danger recall >= 0.95 at precision >= 0.8. Tune with ``--split dev``; measure the test sets once.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

from chuishao.pipeline.urgency import UrgencyDetector

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LEVELS = ("high", "medium", "none")
TARGET = {"recall": 0.95, "precision": 0.8}


def read_gold(path: Path) -> dict[str, str]:
    """id -> gold level (high|medium|none); every bad row is named, none is dropped silently."""
    gold: dict[str, str] = {}
    problems: list[str] = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"id", "danger", "level"} - set(reader.fieldnames or [])
        if missing:
            sys.exit(f"{path}: no column {', '.join(sorted(missing))} (expected id,danger,level,cues)")
        for n, row in enumerate(reader, 2):
            rid, danger, level = (row["id"] or "").strip(), (row["danger"] or "").strip(), (row["level"] or "").strip().lower()
            if not rid:
                problems.append(f"line {n}: empty id")
            elif rid in gold:
                problems.append(f"line {n}: id {rid} given twice")
            elif danger not in ("0", "1"):
                problems.append(f"line {n}: danger {danger!r} is not 1 or 0")
            elif level not in LEVELS:
                problems.append(f"line {n}: level {level!r} is not high, medium or none")
            elif (danger == "1") != (level != "none"):
                problems.append(f"line {n}: danger {danger} does not agree with level {level}")
            else:
                gold[rid] = level
    if problems:
        sys.exit(f"{path}: {len(problems)} bad rows: " + "; ".join(problems[:10]))
    return gold


def read_corpus(path: Path) -> dict[str, tuple[str | None, str]]:
    rows: dict[str, tuple[str | None, str]] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                sys.exit(f"{path}:{n}: not JSON ({exc.msg})")
            rows[str(row["id"])] = (row.get("title"), row.get("text") or "")
    return rows


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """95 % Wilson interval of a proportion k/n: with a dozen danger messages in 300 the figures are rough."""
    if n == 0:
        return None
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 3), round(centre + half, 3)]


def _pr(tp: int, fp: int, fn: int) -> dict[str, object]:
    return {"precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None, "tp": tp, "fp": fp, "fn": fn,
            "precision_ci95": wilson(tp, tp + fp), "recall_ci95": wilson(tp, tp + fn)}


def score(gold: dict[str, str], detected: dict[str, str]) -> dict[str, object]:
    """Danger (any level) and per-level precision/recall, the confusion, and the ids of the errors."""
    ids = sorted(gold)
    danger = _pr(sum(gold[i] != "none" and detected[i] != "none" for i in ids),
                 sum(gold[i] == "none" and detected[i] != "none" for i in ids),
                 sum(gold[i] != "none" and detected[i] == "none" for i in ids))
    per_level = {lv: _pr(sum(gold[i] == lv and detected[i] == lv for i in ids),
                         sum(gold[i] != lv and detected[i] == lv for i in ids),
                         sum(gold[i] == lv and detected[i] != lv for i in ids)) for lv in ("high", "medium")}
    pairs = Counter((gold[i], detected[i]) for i in ids)
    recall, precision = danger["recall"], danger["precision"]
    met = (isinstance(recall, float) and isinstance(precision, float)
           and recall >= TARGET["recall"] and precision >= TARGET["precision"])
    return {
        "messages": len(ids), "gold_counts": dict(Counter(gold.values())),
        "detected_counts": dict(Counter(detected[i] for i in ids)),
        "danger": danger, "per_level": per_level,
        "confusion": {g: {d: pairs[(g, d)] for d in LEVELS} for g in LEVELS},  # rows gold, columns detected
        "misses": [i for i in ids if gold[i] != "none" and detected[i] == "none"],
        "false_alarms": [i for i in ids if gold[i] == "none" and detected[i] != "none"],
        "level_swaps": [i for i in ids if "none" not in (gold[i], detected[i]) and gold[i] != detected[i]],
        "target": TARGET, "target_met": met,
    }


def speed(detector: UrgencyDetector, rows: list[tuple[str | None, str]], repeats: int) -> dict[str, float | int]:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for title, text in rows:
            detector.annotate(title, text)
        best = min(best, time.perf_counter() - started)
    return {"rows": len(rows), "seconds_best_of": repeats, "rows_per_s": round(len(rows) / best) if best > 0 else 0}


SPLITS = ("dev", "test", "all")


def split_lists(gold: Path) -> dict[str, Path] | None:
    """The dev/test id lists beside a gold file (urgency-enriched-300.csv -> urgency-enriched-{dev,test}-ids.txt)."""
    stem = gold.stem.removesuffix("-300")
    lists = {s: gold.with_name(f"{stem}-{s}-ids.txt") for s in ("dev", "test")}
    return lists if all(p.is_file() for p in lists.values()) else None


def read_ids(path: Path) -> set[str]:
    if not path.is_file():
        sys.exit(f"id list not found: {path}")
    return set(path.read_text(encoding="utf-8").split())


def gold_sets(gold: Path, splits: list[str], ids: Path | None) -> list[tuple[str, str, set[str] | None]]:
    """(name, split, ids or None for all) for each set to score in one gold file."""
    if ids is not None:
        return [(f"{gold.stem}@{ids.stem}", "ids", read_ids(ids))]
    lists = split_lists(gold)
    out: list[tuple[str, str, set[str] | None]] = []
    for split in splits:
        if lists is None:  # no split lists: the whole file is a test set
            if split != "dev" and not out:  # test and all are the same set here: scored once
                out.append((gold.stem, "test", None))
        elif split == "all":
            out.append((f"{gold.stem}/all", "all", None))
        else:
            out.append((f"{gold.stem}/{split}", split, read_ids(lists[split])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gold", type=Path, action="append", default=None,
                    help="gold CSV (repeatable; default: urgency-enriched-300.csv and urgency-300.csv)")
    ap.add_argument("--split", choices=SPLITS, action="append", default=None,
                    help="which half of a split gold file to score (repeatable; default: dev and test)")
    ap.add_argument("--ids", type=Path, default=None, help="score only these ids (one per line) of each gold file")
    ap.add_argument("--show-ids", action="store_true", help="list the ids of the errors also for test sets")
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "data" / "corpus.jsonl")
    ap.add_argument("--rules", type=Path, default=None, help="rules file (default: the bundled one)")
    ap.add_argument("--repeats", type=int, default=3, help="timing runs over the corpus; the best counts")
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "urgency.json")
    args = ap.parse_args()
    golds = args.gold or [ROOT / "data" / "labels" / "urgency-enriched-300.csv", ROOT / "data" / "labels" / "urgency-300.csv"]
    splits = args.split or ["dev", "test"]
    if not args.corpus.is_file():
        sys.exit(f"corpus not found: {args.corpus} (give --corpus)")
    started = time.perf_counter()
    detector = UrgencyDetector.from_file(args.rules)
    load_s = time.perf_counter() - started
    corpus = read_corpus(args.corpus)
    figures: dict[str, object] = {"rules": str(args.rules or "bundled"), "corpus": str(args.corpus),
                                  "load_seconds": round(load_s, 3), "speed": speed(detector, list(corpus.values()), args.repeats)}
    sets: dict[str, object] = {}
    for path in golds:
        if not path.is_file():
            print(f"no gold file at {path}: skipped", file=sys.stderr)
            continue
        gold = read_gold(path)
        unknown = sorted(set(gold) - set(corpus))
        if unknown:
            sys.exit(f"{path}: {len(unknown)} ids not in {args.corpus}: {', '.join(unknown[:10])}")
        for name, split, ids in gold_sets(path, splits, args.ids):
            chosen = gold if ids is None else {i: lv for i, lv in gold.items() if i in ids}
            if ids is not None and len(chosen) != len(ids):
                sys.exit(f"{name}: {len(ids) - len(chosen)} ids of the list are not in {path}")
            detected = {i: detector.annotate(*corpus[i])["level"] or "none" for i in chosen}
            q = score(chosen, detected)
            if split not in ("dev", "ids") and not args.show_ids:
                for key in ("misses", "false_alarms", "level_swaps"):  # a test set's errors are counted, not named
                    q[key] = len(q[key])  # type: ignore[arg-type]
            sets[name] = {"gold": str(path), "split": split, **q}
    if not sets:
        print("no gold set to score: speed only", file=sys.stderr)
    figures["quality"] = sets
    print(json.dumps(figures, ensure_ascii=False, indent=1))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
