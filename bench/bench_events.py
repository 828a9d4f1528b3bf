r"""Event grouping figures (issue 17, events): the corpus's groups, 1,000,000 messages grouped, signature speed.

    python bench/bench_events.py corpus  --corpus ../shared/data/corpus.jsonl [--model DIR]
    python bench/bench_events.py make-data --corpus ../shared/data/corpus.jsonl --rows 1000000 --data /tmp/ev1m.jsonl
    python bench/bench_events.py scale --data /tmp/ev1m.jsonl --workers 2
    python bench/bench_events.py signatures --corpus ../shared/data/corpus.jsonl --rows 2000
    python bench/bench_events.py lookup  --rows 1000000 --queries 2000     (the service's similar-report store)

Each prints its figures and merges them into bench/results/events.json under its own key.

``make-data`` synthesises the messages from corpus texts with random edits into a scratch file outside
the repository (never committed): events of 1 to a few hundred reports (70 % single reports), each report a copy of the event's
source text with 3-12 % of its characters deleted, replaced or inserted and a clause dropped or
repeated, at one of 2,000 places (20 % unknown), within days of the event's day in a year. The topic of
a source text is a fixed function of it (as the classifier would give one topic to all its copies):
classification is not timed here (``chuishao tag`` at 1M: bench/results/tag_throughput_1m_w2_*.json).
``scale`` times reading that file (JSONL parsing in the parent), text normalisation and MinHash
signatures (in ``--workers`` processes), band keys, candidate pairs, verification and connected
components. Memory: peak RSS of the parent plus the largest worker's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import time
from collections import deque
from itertools import islice
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chuishao.analysis.events import group
from chuishao.analysis.events_config import EventsConfig
from chuishao.analysis.minhash import block_key, normalise, shingle_hash, shingles, signatures

RESULTS = Path(__file__).resolve().parent / "results" / "events.json"
TOPICS = [f"W{i:02d}" for i in range(1, 16)] + ["OTHER"]
DAY = 86400.0


def _save(key: str, figures: dict) -> None:
    figures = {**figures, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                      "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
               "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    RESULTS.parent.mkdir(exist_ok=True)
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    saved[key] = figures
    RESULTS.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({key: figures}, ensure_ascii=False))


def _corpus_texts(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [f"{r.get('title') or ''} {r.get('text') or ''}".strip() for r in rows]


def _sizes(labels: np.ndarray) -> dict[str, object]:
    sizes = np.bincount(labels[labels >= 0])
    hist = {str(k): int(v) for k, v in zip(*np.unique(np.minimum(sizes, 10), return_counts=True), strict=True)}
    return {"events": len(sizes), "events_2_plus": int((sizes > 1).sum()),
            "reports_in_events_2_plus": int(sizes[sizes > 1].sum()), "largest": int(sizes.max(initial=0)),
            "size_histogram_10_means_10_plus": hist}


# ---- corpus --------------------------------------------------------------------------------
def corpus(args: argparse.Namespace) -> None:
    """The corpus tagged with the model and grouped as ``chuishao events`` does (no times, no places)."""
    from chuishao.analysis.events import summarise
    from chuishao.batch.rows import tag_records
    from chuishao.io.records import read_records
    from chuishao.models.persistence import load_model

    config = EventsConfig()
    model = load_model(Path(args.model) if args.model else None)
    started = time.perf_counter()
    topics, texts, deps = [], [], []
    for rec, answer in tag_records(model, read_records(args.corpus), 256):
        ok = answer["error"] is None
        topics.append(answer["topic"] if ok else None)
        texts.append(normalise(f"{rec.title or ''} {rec.text}") if ok else "")
        deps.append(answer["departments"] if ok else None)
    tagged = time.perf_counter() - started
    started = time.perf_counter()
    sigs = signatures(texts, config.num_perm, config.seed, config.shingle)
    blocks = np.array([block_key(t, None) for t in topics], dtype=np.uint64)
    valid = np.array([t is not None for t in topics])
    labels = group(sigs, blocks, None, config, valid)
    grouped = time.perf_counter() - started
    events = summarise(labels, topics, [None] * len(topics), None, deps)
    whistle = sum(bool(e.whistle_reasons(config)) for e in events)
    _save("corpus", {"rows": len(texts), "errors": int((~valid).sum()), **_sizes(labels), "whistle_candidates": whistle,
                     "seconds_tagging": round(tagged, 1), "seconds_grouping": round(grouped, 2),
                     "config": config.model_dump(), "note": "no times or places in the corpus: grouped by text and topic"})


# ---- scale ---------------------------------------------------------------------------------
def _edit(text: str, rng: random.Random) -> str:
    """A caller's own wording of the same report: characters deleted, replaced, inserted; a clause dropped or repeated."""
    chars = list(text)
    for _ in range(max(1, int(len(chars) * rng.uniform(0.03, 0.12)))):
        if not chars:
            break
        i = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.4:
            del chars[i]
        elif op < 0.7:
            chars[i] = chars[rng.randrange(len(chars))]
        else:
            chars.insert(i, chars[rng.randrange(len(chars))])
    out = "".join(chars)
    clauses = out.split("，")
    if len(clauses) > 3 and rng.random() < 0.5:
        j = rng.randrange(len(clauses))
        clauses = clauses[:j] + clauses[j + 1:] if rng.random() < 0.5 else [*clauses[:j], clauses[j], *clauses[j:]]
        out = "，".join(clauses)
    return out


def _normalise_and_sign(task: tuple[list[str], int, int, int]) -> np.ndarray:
    texts, num_perm, seed, shingle = task
    return signatures([normalise(t) for t in texts], num_perm, seed, shingle)


def _synthetic_rows(rows: int, sources: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    total = 0
    while total < rows:
        size = 1 if rng.random() < 0.7 else int(min(400, rng.zipf(1.8) + 1))
        size = min(size, rows - total)
        sizes.append(size)
        total += size
    n_events = len(sizes)
    event_source = rng.integers(0, sources, n_events)
    event_place = np.where(rng.random(n_events) < 0.2, -1, rng.integers(0, 2000, n_events))
    event_day = rng.uniform(0, 365, n_events) * DAY
    truth = np.repeat(np.arange(n_events), sizes)
    truth = truth[rng.permutation(rows)]  # reports of an event arrive mixed with all the others
    times = event_day[truth] + rng.exponential(DAY, rows)
    return {"truth": truth, "source": event_source[truth], "place": event_place[truth], "times": times}


def _cpu() -> dict[str, float]:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"parent": own.ru_utime + own.ru_stime, "workers": kids.ru_utime + kids.ru_stime}


def _pair_scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pairwise precision / recall of the grouping against the synthetic truth."""
    def pairs(counts: np.ndarray) -> int:
        return int((counts.astype(np.int64) * (counts - 1) // 2).sum())

    both = pairs(np.unique(labels.astype(np.int64) * (truth.max() + 1) + truth, return_counts=True)[1])
    found, real = pairs(np.bincount(labels)), pairs(np.bincount(truth))
    return {"pair_precision": round(both / found, 4) if found else 1.0, "pair_recall": round(both / real, 4) if real else 1.0}


def make_data(args: argparse.Namespace) -> None:
    """The synthetic messages as JSONL in a scratch file (outside the repository: corpus texts, edited)."""
    sources = [t for t in _corpus_texts(args.corpus) if t]
    syn = _synthetic_rows(args.rows, len(sources), args.seed)
    rng = random.Random(args.seed)
    with open(args.data, "w", encoding="utf-8") as out:
        for i in range(args.rows):
            s, p = int(syn["source"][i]), int(syn["place"][i])
            out.write(json.dumps({"id": f"s{i}", "text": _edit(sources[s], rng), "topic": TOPICS[s % len(TOPICS)],
                                  "place": None if p < 0 else f"区{p // 50}/街道{p}", "time": round(float(syn["times"][i]), 1),
                                  "truth": int(syn["truth"][i])}, ensure_ascii=False) + "\n")
    print(json.dumps({"rows": args.rows, "data": args.data, "bytes": os.path.getsize(args.data)}))


def scale(args: argparse.Namespace) -> None:
    """Stream the scratch file: parse, normalise and sign in worker processes, then group."""
    config = EventsConfig()
    started = time.perf_counter()
    meta: dict[str, list] = {"topic": [], "place": [], "time": [], "truth": []}

    def tasks():  # chunks of texts to the workers; the rest stays here, as short values
        with open(args.data, encoding="utf-8") as fh:
            while lines := list(islice(fh, 4000)):
                rows = [json.loads(line) for line in lines]
                for key in meta:
                    meta[key].extend(r[key] for r in rows)
                yield [r["text"] for r in rows], config.num_perm, config.seed, config.shingle

    parts: list[np.ndarray] = []
    with get_context("fork").Pool(args.workers) as pool:
        pending: deque = deque()  # at most 2 chunks per worker in flight: Pool.imap would read the whole file ahead
        for task in tasks():
            pending.append(pool.apply_async(_normalise_and_sign, (task,)))
            if len(pending) >= 2 * args.workers:
                parts.append(pending.popleft().get())
        parts.extend(p.get() for p in pending)
    sigs = np.concatenate(parts)
    del parts
    signed = time.perf_counter() - started
    rss_signed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu_signed = _cpu()
    t0 = time.perf_counter()
    cache: dict[tuple[str, str | None], int] = {}
    for key in zip(meta["topic"], meta["place"], strict=True):
        if key not in cache:
            cache[key] = block_key(*key)
    blocks = np.fromiter((cache[key] for key in zip(meta["topic"], meta["place"], strict=True)), dtype=np.uint64,
                         count=len(sigs))
    labels = group(sigs, blocks, np.asarray(meta["time"], dtype=np.float64), config)
    grouped = time.perf_counter() - t0
    wall = time.perf_counter() - started
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    cpu = _cpu()
    truth = np.asarray(meta["truth"])
    _save(f"scale_{len(sigs)}", {
        "rows": len(sigs), "workers": args.workers, "wall_seconds": round(wall, 1),
        "seconds_read_normalise_sign": round(signed, 1), "seconds_keys_pairs_components": round(grouped, 1),
        "peak_rss_mb_parent": round(parent), "peak_rss_mb_largest_worker": round(child),
        "peak_rss_mb_parent_plus_worker": round(parent + child), "peak_rss_mb_parent_after_signing": round(rss_signed),
        "cpu_seconds_parent_reading": round(cpu_signed["parent"], 1), "cpu_seconds_workers": round(cpu["workers"], 1),
        "cpu_seconds_parent_grouping": round(cpu["parent"] - cpu_signed["parent"], 1),
        # what 2 cores of our own would take: the parent reads while the 2 workers sign, then it groups alone
        "estimated_wall_seconds_2_free_cores": round(max(cpu_signed["parent"], (cpu["workers"] + cpu_signed["parent"]) / 2)
                                                     + cpu["parent"] - cpu_signed["parent"], 1),
        **_sizes(labels), "true_events": int(truth.max() + 1), **_pair_scores(labels, truth),
        "contended": args.contended,
    })


# ---- signatures: vectorised numpy against datasketch ------------------------------------------
def signature_speed(args: argparse.Namespace) -> None:
    from datasketch import MinHash

    config = EventsConfig()
    texts = [normalise(t) for t in _corpus_texts(args.corpus)[:args.rows]]
    signatures(texts[:10], config.num_perm, config.seed, config.shingle)  # load (or compile) the numba kernel first
    started = time.perf_counter()
    ours = signatures(texts, config.num_perm, config.seed, config.shingle)
    vectorised = time.perf_counter() - started
    started = time.perf_counter()
    sets = [[s.encode("utf-8") for s in shingles(t, config.shingle)] for t in texts]
    theirs = MinHash.bulk(sets, num_perm=config.num_perm, seed=config.seed, hashfunc=shingle_hash)
    bulk = time.perf_counter() - started
    same = all(np.array_equal(m.hashvalues, s) for m, s in zip(theirs, ours, strict=True))
    _save("signatures", {"rows": len(texts), "seconds_vectorised": round(vectorised, 2),
                         "seconds_datasketch_bulk": round(bulk, 2), "speedup": round(bulk / vectorised, 1),
                         "identical": same, "contended": args.contended})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("corpus", "make-data", "scale", "signatures", "lookup"):
        p = sub.add_parser(name)
        p.add_argument("--corpus", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/corpus.jsonl"))
        p.add_argument("--rows", type=int, default=1_000_000)
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--model", default=None)
        p.add_argument("--queries", type=int, default=2000)
        p.add_argument("--data", default="/tmp/chuishao-events-1m.jsonl", help="make-data/scale: the scratch file")
        p.add_argument("--db", default=None, help="lookup: database file (default: a temporary one)")
        p.add_argument("--db-url", default=None, help="lookup: a SQLAlchemy URL instead (e.g. PostgreSQL); "
                       "its chuishao_reports and chuishao_report_bands tables are DROPPED first: never a live database")
        p.add_argument("--contended", action="store_true", help="record that other work shared the CPUs")
    args = parser.parse_args()
    if args.cmd == "corpus":
        corpus(args)
    elif args.cmd == "make-data":
        make_data(args)
    elif args.cmd == "scale":
        scale(args)
    elif args.cmd == "signatures":
        signature_speed(args)
    else:
        from bench_events_lookup import lookup  # the service store's figure, beside this file

        lookup(args)


if __name__ == "__main__":
    main()
