r"""Pairs for a human check of the corpus grouping: 200 grouped pairs and 200 near misses.

    chuishao events ../shared/data/corpus.jsonl -o /tmp/corpus-events.jsonl          # the grouping to check
    python bench/events_pairs.py --events /tmp/corpus-events.jsonl --write-template   # data/labels/event-pairs.csv
    python bench/events_pairs.py --events /tmp/corpus-events.jsonl --show 1           # pairs 1-20, texts on the terminal
    python bench/events_pairs.py --score                                              # precision / recall from the verdicts
    python bench/events_pairs.py --score --compare /tmp/ev-places.jsonl               # ... and how another grouping splits them

Grouped pairs: two reports of one event (an event drawn at random, then two of its reports). Near
misses: same topic, a shared LSH band, similarity in [threshold - 0.1, threshold): the pairs the
grouping just refused. The checker writes ``same_problem`` (1/0) into data/labels/event-pairs.csv
(ids and similarity only; the texts are printed, never written). Scores: precision = grouped pairs
judged the same problem; near-miss rate = near misses judged the same problem; estimated recall =
true grouped pairs / (those + the same problems among all near-miss pairs), each share scaled to its
population (the pair counts are in the file's header comment). Precision gets a 95 % Wilson interval
(the near misses are all of them, so their rate has none). ``--score`` merges the figures into
bench/results/events.json under ``hand_check``; ``--compare EVENTS`` adds, for another ``chuishao
events`` output of the same corpus (e.g. with places), how many judged pairs it keeps in one event.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chuishao.analysis.events import _band_pairs
from chuishao.analysis.events_config import EventsConfig
from chuishao.analysis.minhash import band_keys, block_key, normalise, signatures, similarity

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "data" / "labels" / "event-pairs.csv"
RESULTS = REPO / "bench" / "results" / "events.json"
CHUNK = 20


def _load(events_path: str, corpus_path: str) -> tuple[list[dict], dict[str, str]]:
    with open(events_path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    texts = {}
    with open(corpus_path, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            texts[str(r["id"])] = f"{r.get('title') or ''} {r.get('text') or ''}".strip()
    return rows, texts


def draw(rows: list[dict], texts: dict[str, str], config: EventsConfig, n: int, seed: int) -> tuple[list[dict], dict]:
    rng = random.Random(seed)
    members: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r.get("event_id"):
            members[r["event_id"]].append(str(r["id"]))
    multi = sorted(e for e, ids in members.items() if len(ids) > 1)
    grouped_total = sum(len(ids) * (len(ids) - 1) // 2 for ids in members.values())
    ok = [r for r in rows if r.get("event_id") and str(r["id"]) in texts]
    ids = [str(r["id"]) for r in ok]
    sigs = signatures([normalise(texts[i]) for i in ids], config.num_perm, config.seed, config.shingle)
    keys = band_keys(sigs, np.array([block_key(r["topic"], r.get("place")) for r in ok], dtype=np.uint64), config.bands)
    times = np.full(len(ids), np.nan)
    by_time = np.arange(len(ids))
    cands = np.unique(np.concatenate([_band_pairs(keys[:, b], by_time, times, np.arange(len(ids)), config)
                                      for b in range(config.bands)]), axis=0)
    sims = similarity(sigs[cands[:, 0]], sigs[cands[:, 1]]) if len(cands) else np.empty(0)
    event_of = [r["event_id"] for r in ok]
    near = [(int(a), int(b), float(s)) for (a, b), s in zip(cands.tolist(), sims.tolist(), strict=True)
            if config.threshold - 0.1 <= s < config.threshold and event_of[a] != event_of[b]]
    pairs = []
    seen: set[tuple[str, str]] = set()
    tries = 0
    while len([p for p in pairs if p["kind"] == "grouped"]) < n and multi and tries < 100 * n:
        tries += 1
        a, b = sorted(rng.sample(members[rng.choice(multi)], 2))
        if (a, b) not in seen and a in texts and b in texts:
            seen.add((a, b))
            sim = float(similarity(*signatures([normalise(texts[a]), normalise(texts[b])], config.num_perm, config.seed,
                                               config.shingle)))
            pairs.append({"kind": "grouped", "id_a": a, "id_b": b, "similarity": round(sim, 3)})
    for a, b, s in rng.sample(near, min(n, len(near))):
        pairs.append({"kind": "near_miss", "id_a": ids[a], "id_b": ids[b], "similarity": round(s, 3)})
    order = list(range(len(pairs)))
    rng.shuffle(order)  # the checker does not know which kind a pair is
    pairs = [{"pair": k + 1, **pairs[i]} for k, i in enumerate(order)]
    return pairs, {"grouped_pairs_total": grouped_total, "near_miss_pairs_total": len(near)}


def write_template(pairs: list[dict], totals: dict, path: Path) -> None:
    if path.exists():
        sys.exit(f"{path} exists: it may hold verdicts; move it away to draw again")
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(f"# {json.dumps(totals)}; kind is hidden from the checker when shown\n")
        w = csv.writer(fh)
        w.writerow(["pair", "kind", "id_a", "id_b", "similarity", "same_problem"])
        for p in pairs:
            w.writerow([p["pair"], p["kind"], p["id_a"], p["id_b"], p["similarity"], ""])
    print(f"wrote {len(pairs)} pairs to {path}")


def read_pairs(path: Path) -> tuple[list[dict], dict]:
    with path.open(encoding="utf-8") as fh:
        first = fh.readline()
        totals = json.loads(first[1:].split(";")[0]) if first.startswith("#") else {}
        if not first.startswith("#"):
            fh.seek(0)
        return list(csv.DictReader(fh)), totals


def show(path: Path, texts: dict[str, str], part: int, width: int) -> None:
    pairs, _ = read_pairs(path)
    for p in pairs[(part - 1) * CHUNK:part * CHUNK]:
        print(f"=== pair {p['pair']}   ({p['id_a']} / {p['id_b']})")
        print("  A:", texts.get(p["id_a"], "?")[:width])
        print("  B:", texts.get(p["id_b"], "?")[:width])
    print(f"--- part {part} of {(len(pairs) + CHUNK - 1) // CHUNK}: write same_problem 1/0 per pair in {path}")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return round((centre - half) / (1 + z * z / n), 3), round((centre + half) / (1 + z * z / n), 3)


def compare(pairs: list[dict], events_path: str) -> dict[str, dict[str, int]]:
    """For each kind and verdict: judged pairs the other grouping keeps in one event, and splits."""
    event = {}
    with open(events_path, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            event[str(r["id"])] = r.get("event_id")
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in pairs:
        if p["same_problem"] in ("0", "1"):
            a, b = event.get(p["id_a"]), event.get(p["id_b"])
            out[f"{p['kind']}_same_{p['same_problem']}"]["together" if a and a == b else "apart"] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def score(path: Path, compare_with: str | None = None) -> dict[str, object]:
    pairs, totals = read_pairs(path)
    judged = [p for p in pairs if p["same_problem"] in ("0", "1")]
    by_kind = {k: [int(p["same_problem"]) for p in judged if p["kind"] == k] for k in ("grouped", "near_miss")}
    out: dict[str, object] = {"judged": len(judged), "of": len(pairs)}
    g, m = by_kind["grouped"], by_kind["near_miss"]
    if g:
        out["precision"] = round(sum(g) / len(g), 3)
        out["precision_95ci"] = wilson(sum(g), len(g))
    if m:
        out["near_miss_same_problem_rate"] = round(sum(m) / len(m), 3)
    if g and m and totals:
        tp = sum(g) / len(g) * totals["grouped_pairs_total"]
        fn = sum(m) / len(m) * totals["near_miss_pairs_total"]
        out["estimated_recall_against_near_misses"] = round(tp / (tp + fn), 3) if tp + fn else None
    out.update(totals)
    if compare_with:
        out["compare"] = {"events": compare_with, **compare(pairs, compare_with)}
    print(json.dumps(out))
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    saved["hand_check"] = {**out, "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    RESULTS.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", help="chuishao events output (JSONL) on the corpus")
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "data" / "corpus.jsonl"))
    parser.add_argument("--pairs", default=str(LABELS), help="the pair / verdict file")
    parser.add_argument("--n", type=int, default=200, help="pairs of each kind")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--write-template", action="store_true")
    parser.add_argument("--show", type=int, metavar="PART", help=f"print pairs of part PART ({CHUNK} a part)")
    parser.add_argument("--width", type=int, default=400, help="characters of each text shown")
    parser.add_argument("--score", action="store_true")
    parser.add_argument("--compare", metavar="EVENTS", help="with --score: another grouping of the corpus (JSONL)")
    args = parser.parse_args()
    path = Path(args.pairs)
    if args.score or (not args.write_template and args.show is None and path.is_file()):
        score(path, args.compare)
        return
    if not args.events:
        parser.error("--events FILE is needed to draw pairs")
    rows, texts = _load(args.events, args.corpus)
    if args.write_template:
        pairs, totals = draw(rows, texts, EventsConfig(), args.n, args.seed)
        write_template(pairs, totals, path)
    if args.show is not None:
        show(path, texts, args.show, args.width)


if __name__ == "__main__":
    main()
