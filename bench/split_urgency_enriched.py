"""Split data/labels/urgency-enriched-300.csv into a dev half (for tuning the urgency rules) and a test half, reproducibly.

    python bench/split_urgency_enriched.py [--shared ../shared/data] \
        [-o data/labels/urgency-enriched]   # writes <o>-dev-ids.txt and <o>-test-ids.txt

- Near-repeats travel together: ids whose texts share >= NEAR of their character 5-grams (containment over the
  shorter text) form one group, so a reposted letter cannot sit in both halves (the sample holds a few such pairs).
- A group holding a near-repeat of a urgency-300.csv message goes to the test half: urgency-300 is a test set too.
- Stratified by danger (1/0): within each stratum the groups are ordered by the sha1 of their smallest id and the dev
  half takes groups in that order until it holds half of the stratum (rounded down), the test half the rest.
The output is ids only, one per line, sorted. The labels never decide anything but the stratum.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from collections.abc import Callable
from pathlib import Path

from sample_urgency import read_corpus  # same corpus reader, same errors

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "data" / "labels"
NEAR = 0.4
GRAM = 5


def grams(text: str) -> set[str]:
    text = "".join(text.split())
    return {text[i:i + GRAM] for i in range(max(len(text) - GRAM + 1, 1))} if text else set()


def near(a: set[str], b: set[str]) -> bool:
    """Containment of the shorter gram set in the other, at least NEAR."""
    small = min(len(a), len(b))
    return small > 0 and len(a & b) / small >= NEAR


def distinct_messages(rows: list[dict[str, str]], exclude: set[str]) -> list[dict[str, str]]:
    """One row per distinct non-empty text, in corpus order, leaving out the `exclude` ids and any message whose text
    equals the text of one of them: the pool every urgency draw starts from."""
    excluded_texts = {r["text"].strip() for r in rows if r["id"] in exclude}
    seen: set[str] = set()
    pool = []
    for row in rows:
        key = row["text"].strip()
        if key and key not in seen and key not in excluded_texts and row["id"] not in exclude:
            seen.add(key)
            pool.append(row)
    return pool


def near_repeat_test(rows: list[dict[str, str]], ids: set[str]) -> Callable[[dict[str, str]], bool]:
    """Whether a message is a near-repeat (`near`) of the message of one of `ids` (a test set's near-copies)."""
    held = [grams(r["title"] + r["text"]) for r in rows if r["id"] in ids]
    return lambda row: bool(held) and any(near(grams(row["title"] + row["text"]), g) for g in held)


def groups_of(ids: list[str], texts: dict[str, str]) -> list[list[str]]:
    """Union of near-repeats (single linkage), each group sorted, groups in order of their smallest id."""
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    g = {i: grams(texts[i]) for i in ids}
    for n, a in enumerate(ids):
        for b in ids[n + 1:]:
            if near(g[a], g[b]):
                parent[root(a)] = root(b)
    out: dict[str, list[str]] = {}
    for i in ids:
        out.setdefault(root(i), []).append(i)
    return sorted((sorted(v) for v in out.values()), key=lambda v: v[0])


def _sha(group: list[str]) -> str:
    return hashlib.sha1(group[0].encode("utf-8")).hexdigest()


def split(danger: dict[str, str], texts: dict[str, str], held_out: set[str]) -> tuple[list[str], list[str]]:
    """(dev ids, test ids). ``danger`` id -> "1"/"0"; ``held_out`` texts' ids that force their near-repeats to test."""
    ids = sorted(danger)
    groups = groups_of(ids, texts)
    held = [grams(texts[i]) for i in held_out]
    dev: list[str] = []
    test: list[str] = []
    for stratum in ("1", "0"):
        mine = [g for g in groups if danger[g[0]] == stratum]
        mixed = [g for g in mine if any(danger[i] != stratum for i in g)]
        if mixed:
            raise SystemExit(f"near-repeats with different danger labels: {mixed[0]} (fix the labels first)")
        want = sum(len(g) for g in mine) // 2
        taken = 0
        for g in sorted(mine, key=_sha):
            forced = any(near(grams(texts[i]), h) for i in g for h in held)
            if not forced and taken + len(g) <= want:
                dev.extend(g)
                taken += len(g)
            else:
                test.extend(g)
    return sorted(dev), sorted(test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--labels", type=Path, default=LABELS / "urgency-enriched-300.csv")
    ap.add_argument("--held-out", type=Path, default=LABELS / "urgency-300-ids.txt")
    ap.add_argument("-o", "--output", type=Path, default=LABELS / "urgency-enriched")
    args = ap.parse_args()
    with args.labels.open(encoding="utf-8", newline="") as f:
        danger = {r["id"]: r["danger"] for r in csv.DictReader(f)}
    corpus = {r["id"]: r["title"] + "\n" + r["text"] for r in read_corpus(args.shared / "corpus.jsonl")}
    missing = sorted(set(danger) - set(corpus))
    if missing:
        raise SystemExit(f"{args.labels}: {len(missing)} ids not in the corpus: {', '.join(missing[:5])}")
    held_out = set(args.held_out.read_text(encoding="utf-8").split())
    dev, test = split(danger, corpus, held_out & set(corpus))
    for name, ids in (("dev", dev), ("test", test)):
        path = Path(f"{args.output}-{name}-ids.txt")
        path.write_text("".join(i + "\n" for i in ids), encoding="utf-8")
        print(f"{path}: {len(ids)} ids, {sum(danger[i] == '1' for i in ids)} danger")


if __name__ == "__main__":
    main()
