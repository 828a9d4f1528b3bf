"""Draw 300 corpus ids enriched in danger reports for a second urgency hand annotation (issue 17), reproducibly.

    python bench/sample_urgency_enriched.py [--shared ../shared/data] [--seed 17] \
        [-o data/labels/urgency-enriched-ids.txt]

`urgency-300.csv` holds 12 danger reports in 300, too few for a recall figure. This sample draws only among
messages whose title or text holds an expression of DANGER_EXPRESSIONS, a NARROW list of words that name a danger
(not 火 or 裂 alone, as the wide list of bench/sample_urgency.py does), so that most drawn messages are candidates.

- the pool is one id per distinct non-empty text, in corpus order; ids of data/labels/urgency-300-ids.txt, and any
  message whose text equals the text of one of them, are left out (the two sets are disjoint);
- stratified: each expression has its own seeded shuffle of the messages holding it; the draw goes round the
  expressions in list order taking the next message not yet drawn, so that rare expressions (被困, 困在电梯, 触电)
  give all their messages and common ones (积水, 堵塞, 倾斜) do not swamp the sample; an expression gives at most
  MAX_PER_EXPRESSION messages (a message counts for the expression it was drawn for);
- the output holds ids only, one per line, in draw order. Labels are assigned by hand
  (docs/annotation-urgency.md), never by this script.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

from sample_urgency import read_corpus  # same corpus reader, same errors
from split_urgency_enriched import distinct_messages, near_repeat_test  # the dev/test split's near-repeat rule

ROOT = Path(__file__).resolve().parent.parent
SIZE = 300
MAX_PER_EXPRESSION = 40

# Narrow on purpose: each names a danger or a failure that the rule's levels speak of. Some still have false
# friends (泄漏 of personal data, 积水 on a road after rain, 堵塞 of traffic); the hand labels sort them out.
DANGER_EXPRESSIONS = (
    # gas
    "燃气味", "煤气味", "漏气", "泄漏", "煤气罐", "液化气罐", "爆炸", "中毒",
    # fire
    "起火", "着火", "失火", "冒烟", "浓烟",
    # people trapped
    "被困", "困在", "困在电梯",
    # structures
    "坍塌", "倒塌", "塌陷", "塌方", "裂缝", "开裂", "倾斜", "危房", "随时倒",
    "摇摇欲坠", "险情",
    # falling objects
    "脱落", "掉落", "坠落", "下坠", "高空抛物", "砸伤",
    # electricity
    "电线裸露", "漏电", "触电",
    # water
    "爆管", "爆裂", "水管破裂", "积水", "淹", "倒灌",
    # roads and exits
    "井盖", "窨井", "消防通道", "安全出口", "堵塞", "堵死",
)


def expressions_in(row: dict[str, str]) -> list[str]:
    joined = row["title"] + "\n" + row["text"]
    return [e for e in DANGER_EXPRESSIONS if e in joined]


def draw(rows: list[dict[str, str]], exclude: set[str], seed: int, size: int | None = None,
         exclude_near: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(id, expression it was drawn for) for `size` (default SIZE) messages, in draw order. Messages whose text is a
    near-repeat (split_urgency_enriched.near) of a message in `exclude_near` are left out too (a test set's near-copies)."""
    size = SIZE if size is None else size
    is_near = near_repeat_test(rows, exclude_near)
    by_expression: dict[str, list[str]] = {e: [] for e in DANGER_EXPRESSIONS}
    for row in distinct_messages(rows, exclude):
        found = expressions_in(row)
        if found and is_near(row):  # only rows with an expression can be drawn: the costly check only for them
            continue
        for e in found:
            by_expression[e].append(row["id"])
    rng = random.Random(seed)
    for ids in by_expression.values():  # one seeded shuffle per expression, in list order
        rng.shuffle(ids)
    taken: list[tuple[str, str]] = []
    taken_ids: set[str] = set()
    given: Counter[str] = Counter()
    cursor = dict.fromkeys(DANGER_EXPRESSIONS, 0)
    while len(taken) < size:
        progressed = False
        for e in DANGER_EXPRESSIONS:
            if len(taken) == size:
                break
            ids = by_expression[e]
            while cursor[e] < len(ids) and ids[cursor[e]] in taken_ids:
                cursor[e] += 1
            if cursor[e] < len(ids) and given[e] < MAX_PER_EXPRESSION:
                taken.append((ids[cursor[e]], e))
                taken_ids.add(ids[cursor[e]])
                given[e] += 1
                progressed = True
        if not progressed:
            raise SystemExit(f"only {len(taken)} messages can be drawn, {size} needed")
    return taken


def read_ids(path: Path) -> set[str]:
    """Ids of a one-id-per-line file, or of the first column of an id,... CSV file."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if lines and lines[0].split(",")[0].strip() == "id":
        return {line.split(",", 1)[0].strip() for line in lines[1:] if line.strip()}
    if any("," in line for line in lines):
        raise SystemExit(f"{path}: neither one id per line nor a CSV whose first column is 'id'")
    return {line.strip() for line in lines if line.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--exclude", type=Path, action="append",
                    help="ids files (or id,... CSV files) never drawn; repeatable (default: urgency-300-ids.txt)")
    ap.add_argument("--exclude-near", type=Path, action="append", default=[],
                    help="ids files (or CSV) whose messages' near-repeats are not drawn either (test sets); repeatable")
    ap.add_argument("--size", type=int, default=SIZE)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "data" / "labels" / "urgency-enriched-ids.txt")
    args = ap.parse_args()
    rows = read_corpus(args.shared / "corpus.jsonl")
    exclude = set().union(*(read_ids(f) for f in args.exclude or [ROOT / "data" / "labels" / "urgency-300-ids.txt"]))
    exclude_near = set().union(*(read_ids(f) for f in args.exclude_near))
    taken = draw(rows, exclude | exclude_near, args.seed, args.size, exclude_near)
    args.output.write_text("\n".join(i for i, _ in taken) + "\n", encoding="utf-8")
    n_match = sum(bool(expressions_in(r)) for r in rows)
    given = Counter(e for _, e in taken)
    print(f"corpus {len(rows)} rows, {n_match} hold an expression; drew {len(taken)} -> {args.output}")
    print("per expression: " + ", ".join(f"{e} {given[e]}" for e in DANGER_EXPRESSIONS))


if __name__ == "__main__":
    main()
