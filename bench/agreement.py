"""Inter-annotator agreement on the issue 17 gold files: the second annotator against the first, on their shared ids.

    python bench/agreement.py [-o bench/results/agreement.json]

Places (`places-300.csv` vs `places-second-60.csv`, rule docs/annotation-places.md), per level:
- mention-level precision / recall / F1 of the second file against the first (exact match of the written surface
  forms, each message's cell taken as a set; F1 is symmetric, so it is also the plain "mention agreement");
- message-level exact agreement: the share of messages whose cell (as a set) is identical in both files, per level
  and over all three levels at once.
Urgency (`urgency-300.csv` vs `urgency-second.csv`, rule docs/annotation-urgency.md): Cohen's kappa on danger 1/0
and on the level (none/medium/high), raw agreement, both confusion matrices (rows: first, columns: second) and the
disagreeing ids with both annotators' labels and cues.

Prints a summary and writes the figures as JSON. Ids and the files' own short cells only, never message text.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

from sklearn.metrics import cohen_kappa_score, confusion_matrix

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "data" / "labels"
PLACE_LEVELS = ("district", "street", "community")
DANGER_LEVELS = ("none", "medium", "high")

Places = dict[str, dict[str, frozenset[str]]]
Urgency = dict[str, dict[str, Any]]


def _rows(path: Path, header: list[str]) -> list[dict[str, str]]:
    """The rows of a labels CSV, refusing a wrong header or a repeated id (a clear error naming file and line)."""
    try:
        fh = path.open(encoding="utf-8", newline="")
    except OSError as e:
        raise SystemExit(f"{path}: cannot read ({e.strerror})") from e
    with fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != header:
            raise SystemExit(f"{path}: header is {reader.fieldnames}, expected {header}")
        rows, seen = [], set()
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise SystemExit(f"{path}:{line}: expected {len(header)} columns")
            if not row["id"]:
                raise SystemExit(f"{path}:{line}: empty id")
            if row["id"] in seen:
                raise SystemExit(f"{path}:{line}: id {row['id']} appears twice")
            seen.add(row["id"])
            rows.append(row)
    return rows


def read_places(path: Path) -> Places:
    """id -> level -> the set of written mentions (cells are `|`-separated; an empty cell is the empty set)."""
    out: Places = {}
    for row in _rows(path, ["id", *PLACE_LEVELS]):
        cells = {}
        for level in PLACE_LEVELS:
            mentions = [m.strip() for m in row[level].split("|")] if row[level].strip() else []
            if any(not m for m in mentions):
                raise SystemExit(f"{path}: id {row['id']}: empty mention in {level} cell {row[level]!r}")
            cells[level] = frozenset(mentions)
        out[row["id"]] = cells
    return out


def read_urgency(path: Path) -> Urgency:
    """id -> {danger: 0|1, level, cues}; danger and level must agree (danger 1 iff level is not none)."""
    out: Urgency = {}
    for row in _rows(path, ["id", "danger", "level", "cues"]):
        if row["danger"] not in ("0", "1"):
            raise SystemExit(f"{path}: id {row['id']}: danger {row['danger']!r} is not 0 or 1")
        if row["level"] not in DANGER_LEVELS:
            raise SystemExit(f"{path}: id {row['id']}: level {row['level']!r} is not one of {DANGER_LEVELS}")
        if (row["danger"] == "1") != (row["level"] != "none"):
            raise SystemExit(f"{path}: id {row['id']}: danger {row['danger']} contradicts level {row['level']}")
        out[row["id"]] = {"danger": int(row["danger"]), "level": row["level"], "cues": row["cues"]}
    return out


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def places_agreement(first: Places, second: Places) -> dict[str, Any]:
    """Per-level mention P/R/F1 (second against first) and message exact agreement, on the ids both files hold."""
    shared = [i for i in second if i in first]
    levels: dict[str, Any] = {}
    for level in PLACE_LEVELS:
        tp = n_first = n_second = same = 0
        disagreements = []
        for i in shared:
            a, b = first[i][level], second[i][level]
            tp += len(a & b)
            n_first += len(a)
            n_second += len(b)
            if a == b:
                same += 1
            else:
                disagreements.append({"id": i, "first_only": sorted(a - b), "second_only": sorted(b - a)})
        levels[level] = {
            "mentions_first": n_first, "mentions_second": n_second, "mentions_both": tp,
            "precision": _ratio(tp, n_second), "recall": _ratio(tp, n_first), "f1": _ratio(2 * tp, n_first + n_second),
            "messages_identical": same, "message_agreement": _ratio(same, len(shared)),
            "messages_with_mention_first": sum(bool(first[i][level]) for i in shared),
            "messages_with_mention_second": sum(bool(second[i][level]) for i in shared),
            "disagreements": disagreements,
        }
    all_same = sum(all(first[i][lv] == second[i][lv] for lv in PLACE_LEVELS) for i in shared)
    # Most messages name no place at all: agreement on those is easy, so it is also given without them.
    named = [i for i in shared if any(first[i][lv] or second[i][lv] for lv in PLACE_LEVELS)]
    named_same = sum(all(first[i][lv] == second[i][lv] for lv in PLACE_LEVELS) for i in named)
    tp_all = sum(levels[lv]["mentions_both"] for lv in PLACE_LEVELS)
    n_all = sum(levels[lv]["mentions_first"] + levels[lv]["mentions_second"] for lv in PLACE_LEVELS)
    return {
        "ids_shared": len(shared), "ids_second_not_in_first": sorted(set(second) - set(first)),
        "levels": levels,
        "all_levels": {"messages_identical": all_same, "message_agreement": _ratio(all_same, len(shared)),
                       "f1": _ratio(2 * tp_all, n_all), "messages_with_a_mention_either": len(named),
                       "of_those_identical": named_same, "agreement_on_those": _ratio(named_same, len(named))},
    }


def _kappa(a: list[Any], b: list[Any], labels: list[Any]) -> float | None:
    """Cohen's kappa; None where it is undefined (both annotators gave one and the same label to every item)."""
    if not a:
        return None
    if len(set(a) | set(b)) < 2:
        return None
    k = float(cohen_kappa_score(a, b, labels=labels))
    return None if math.isnan(k) else round(k, 4)


def urgency_agreement(first: Urgency, second: Urgency) -> dict[str, Any]:
    """Cohen's kappa on danger and level, confusion matrices (rows first, columns second), disagreeing ids."""
    shared = [i for i in second if i in first]
    d1 = [first[i]["danger"] for i in shared]
    d2 = [second[i]["danger"] for i in shared]
    l1 = [first[i]["level"] for i in shared]
    l2 = [second[i]["level"] for i in shared]
    levels = list(DANGER_LEVELS)
    disagreements = [
        {"id": i, "first": f"{first[i]['danger']}/{first[i]['level']}", "second": f"{second[i]['danger']}/{second[i]['level']}",
         "first_cues": first[i]["cues"], "second_cues": second[i]["cues"]}
        for i in shared if first[i]["level"] != second[i]["level"]
    ]
    return {
        "ids_shared": len(shared), "ids_second_not_in_first": sorted(set(second) - set(first)),
        "danger_first": sum(d1), "danger_second": sum(d2),
        "danger_agreement": _ratio(sum(x == y for x, y in zip(d1, d2, strict=True)), len(shared)),
        "kappa_danger": _kappa(d1, d2, [0, 1]),
        "level_agreement": _ratio(sum(x == y for x, y in zip(l1, l2, strict=True)), len(shared)),
        "kappa_level": _kappa(l1, l2, levels),
        "confusion_danger": {"labels": [0, 1], "rows_first_cols_second":
                             confusion_matrix(d1, d2, labels=[0, 1]).tolist() if shared else []},
        "confusion_level": {"labels": levels, "rows_first_cols_second":
                            confusion_matrix(l1, l2, labels=levels).tolist() if shared else []},
        "disagreements": disagreements,
    }


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def report(places: dict[str, Any], urgency: dict[str, Any]) -> str:
    lines = [f"places: {places['ids_shared']} shared messages"]
    for level, f in places["levels"].items():
        lines.append(
            f"  {level:9s} mentions first {f['mentions_first']:3d} second {f['mentions_second']:3d} both {f['mentions_both']:3d}"
            f"  P {_fmt(f['precision'])} R {_fmt(f['recall'])} F1 {_fmt(f['f1'])}"
            f"  identical cells {f['messages_identical']}/{places['ids_shared']} ({_fmt(f['message_agreement'])})")
        for d in f["disagreements"]:
            lines.append(f"      {d['id']}  first only {'|'.join(d['first_only']) or '-'}"
                         f"  second only {'|'.join(d['second_only']) or '-'}")
    a = places["all_levels"]
    lines.append(f"  all levels: identical rows {a['messages_identical']}/{places['ids_shared']}"
                 f" ({_fmt(a['message_agreement'])}), mention F1 {_fmt(a['f1'])}; rows where either names a place"
                 f" {a['of_those_identical']}/{a['messages_with_a_mention_either']} ({_fmt(a['agreement_on_those'])})")
    u = urgency
    lines.append(f"urgency: {u['ids_shared']} shared messages; danger first {u['danger_first']}, second {u['danger_second']}")
    lines.append(f"  danger: agreement {_fmt(u['danger_agreement'])}, Cohen's kappa {_fmt(u['kappa_danger'])};"
                 f" confusion (rows first 0/1, cols second 0/1) {u['confusion_danger']['rows_first_cols_second']}")
    lines.append(f"  level:  agreement {_fmt(u['level_agreement'])}, Cohen's kappa {_fmt(u['kappa_level'])};"
                 f" confusion (none/medium/high) {u['confusion_level']['rows_first_cols_second']}")
    for d in u["disagreements"]:
        lines.append(f"      {d['id']}  first {d['first']} [{d['first_cues']}]  second {d['second']} [{d['second_cues']}]")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first-places", type=Path, default=LABELS / "places-300.csv")
    ap.add_argument("--second-places", type=Path, default=LABELS / "places-second-60.csv")
    ap.add_argument("--first-urgency", type=Path, default=LABELS / "urgency-300.csv")
    ap.add_argument("--second-urgency", type=Path, default=LABELS / "urgency-second.csv")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "bench" / "results" / "agreement.json")
    args = ap.parse_args()
    places = places_agreement(read_places(args.first_places), read_places(args.second_places))
    urgency = urgency_agreement(read_urgency(args.first_urgency), read_urgency(args.second_urgency))
    print(report(places, urgency))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    files = {k: str(getattr(args, k).resolve().relative_to(ROOT)) if getattr(args, k).resolve().is_relative_to(ROOT)
             else str(getattr(args, k)) for k in ("first_places", "second_places", "first_urgency", "second_urgency")}
    payload = {"files": files, "places": places, "urgency": urgency}
    args.output.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
