"""Urgency detection against hand labels (issue 17), and its speed.

    python bench/bench_urgency.py [--gold data/labels/urgency-300.csv] [--corpus ../shared/data/corpus.jsonl]
                                  [--rules data/urgency/urgency.yaml] [-o bench/results/urgency.json]

The gold file has columns id,danger,level,cues (danger 1/0, level high|medium|none) for ids of the corpus.
Prints and writes: recall and precision for danger (any level) and per level, the confusion (gold level x
detected level), the misses and false alarms (ids only), and rows/s of `annotate` over the whole corpus.
Without the gold file it measures the speed only. Target: danger recall >= 0.95 at precision >= 0.8.
The gold messages are a test set: the rules were never tuned on them.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gold", type=Path, default=ROOT / "data" / "labels" / "urgency-300.csv")
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "data" / "corpus.jsonl")
    ap.add_argument("--rules", type=Path, default=None, help="rules file (default: the bundled one)")
    ap.add_argument("--repeats", type=int, default=3, help="timing runs over the corpus; the best counts")
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "urgency.json")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"corpus not found: {args.corpus} (give --corpus)")
    started = time.perf_counter()
    detector = UrgencyDetector.from_file(args.rules)
    load_s = time.perf_counter() - started
    corpus = read_corpus(args.corpus)
    figures: dict[str, object] = {"rules": str(args.rules or "bundled"), "corpus": str(args.corpus),
                                  "load_seconds": round(load_s, 3), "speed": speed(detector, list(corpus.values()), args.repeats)}
    if args.gold.is_file():
        gold = read_gold(args.gold)
        unknown = sorted(set(gold) - set(corpus))
        if unknown:
            sys.exit(f"{args.gold}: {len(unknown)} ids not in {args.corpus}: {', '.join(unknown[:10])}")
        detected = {i: detector.annotate(*corpus[i])["level"] or "none" for i in gold}
        figures["gold"] = str(args.gold)
        figures["quality"] = score(gold, detected)
    else:
        figures["gold"] = None
        print(f"no gold file at {args.gold}: speed only", file=sys.stderr)
    print(json.dumps(figures, ensure_ascii=False, indent=1))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
