"""Draw the 300 corpus ids for the urgency hand annotation (issue 17), reproducibly.

    python bench/sample_urgency.py [--shared ../shared/data] [--seed 17] [-o data/labels/urgency-300-ids.txt]

- 150 ids at random among all corpus messages with a non-empty text (seeded);
- 150 ids at random among the *candidates*: messages whose title or text contains any word of DANGER_WORDS,
  a deliberately wide list, so that false friends (火锅, 火车, 燃气费, 消防验收) are drawn as well as real dangers.
The two halves are disjoint (the candidate draw skips ids already drawn), and a text repeated under several ids is
drawn once. The output holds ids only, one per line: the first 150 lines the random half, the last 150 the
candidate half. Labels are assigned by hand (docs/annotation-urgency.md), never by this script.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PER_HALF = 150

# Wide on purpose: the aim is recall of real danger reports in the sample, at the price of many false friends.
DANGER_WORDS = (
    "燃气", "煤气", "天然气", "液化气", "气味", "异味", "泄漏", "漏气",
    "火", "烟", "爆", "炸",
    "塌", "裂", "倾斜", "危房", "倒", "坠", "掉落", "脱落", "松动",
    "漏", "水管", "爆管", "淹", "积水", "井盖",
    "困", "电梯",
    "消防", "通道", "堵塞",
    "电线", "触电", "漏电", "电缆",
    "危险", "隐患", "救命", "紧急",  # not 安全 alone: 1,995 hits, nearly all generic (食品安全, 安全感)
)


def read_corpus(path: Path) -> list[dict[str, str]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: not JSON ({e.msg})") from e
            if "id" not in row:
                raise SystemExit(f"{path}:{n}: no 'id'")
            rows.append({"id": str(row["id"]), "title": row.get("title") or "", "text": row.get("text") or ""})
    return rows


def is_candidate(row: dict[str, str]) -> bool:
    joined = row["title"] + "\n" + row["text"]
    return any(w in joined for w in DANGER_WORDS)


def draw(rows: list[dict[str, str]], seed: int) -> tuple[list[str], list[str]]:
    seen_texts: set[str] = set()
    pool = []
    for row in rows:  # non-empty, one id per distinct text, in corpus order (stable input for the seeded draw)
        key = row["text"].strip()
        if key and key not in seen_texts:
            seen_texts.add(key)
            pool.append(row)
    rng = random.Random(seed)
    randoms = rng.sample(pool, PER_HALF)
    taken = {r["id"] for r in randoms}
    candidates = [r for r in pool if r["id"] not in taken and is_candidate(r)]
    if len(candidates) < PER_HALF:
        raise SystemExit(f"only {len(candidates)} candidates, {PER_HALF} needed")
    picked = rng.sample(candidates, PER_HALF)
    return [r["id"] for r in randoms], [r["id"] for r in picked]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "data" / "labels" / "urgency-300-ids.txt")
    args = ap.parse_args()
    rows = read_corpus(args.shared / "corpus.jsonl")
    randoms, candidates = draw(rows, args.seed)
    n_cand = sum(is_candidate(r) for r in rows)
    in_random = sum(is_candidate(r) for r in rows if r["id"] in set(randoms))
    args.output.write_text("\n".join(randoms + candidates) + "\n", encoding="utf-8")
    print(f"corpus {len(rows)} rows, {n_cand} candidates by the word list; "
          f"random half {len(randoms)} ({in_random} of them candidates), candidate half {len(candidates)} -> {args.output}")


if __name__ == "__main__":
    main()
