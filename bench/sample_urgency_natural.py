"""Draw corpus ids at random (the corpus's own share of danger reports) for urgency training labels, reproducibly.

    python bench/sample_urgency_natural.py --size 500 --seed 31 --exclude FILE ... --exclude-near FILE ... \
        -o data/labels/urgency-natural-ids.txt

The enriched draws (bench/sample_urgency_enriched.py) hold only messages with a danger expression; a detector
trained on them alone never sees the ordinary messages it must leave alone. This draw is plain random among the
corpus messages with a non-empty text, one id per distinct text, leaving out the --exclude ids (and their texts)
and the near-repeats of the --exclude-near ids (test sets; the near rule of bench/split_urgency_enriched.py).
Ids only, one per line, in draw order; labels are assigned by hand (docs/annotation-urgency.md).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from sample_urgency import read_corpus  # same corpus reader, same errors
from sample_urgency_enriched import read_ids
from split_urgency_enriched import distinct_messages, near_repeat_test

ROOT = Path(__file__).resolve().parent.parent


def draw(rows: list[dict[str, str]], exclude: set[str], exclude_near: set[str], size: int, seed: int) -> list[str]:
    pool = distinct_messages(rows, exclude | exclude_near)
    random.Random(seed).shuffle(pool)  # corpus order in: a stable input for the seeded shuffle
    is_near = near_repeat_test(rows, exclude_near)
    taken: list[str] = []
    for row in pool:  # near-repeats checked only for the messages reached
        if len(taken) == size:
            break
        if not is_near(row):
            taken.append(row["id"])
    if len(taken) < size:
        raise SystemExit(f"only {len(taken)} messages can be drawn, {size} needed")
    return taken


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--exclude", type=Path, action="append", default=[], help="ids files (or id,... CSV); repeatable")
    ap.add_argument("--exclude-near", type=Path, action="append", default=[],
                    help="ids files (or CSV) whose messages' near-repeats are left out too (test sets); repeatable")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "data" / "labels" / "urgency-natural-ids.txt")
    args = ap.parse_args()
    rows = read_corpus(args.shared / "corpus.jsonl")
    exclude = set().union(*(read_ids(f) for f in args.exclude))
    exclude_near = set().union(*(read_ids(f) for f in args.exclude_near))
    taken = draw(rows, exclude, exclude_near, args.size, args.seed)
    args.output.write_text("\n".join(taken) + "\n", encoding="utf-8")
    print(f"corpus {len(rows)} rows; drew {len(taken)} at random -> {args.output}")


if __name__ == "__main__":
    main()
