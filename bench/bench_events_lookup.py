r"""The service's similar-report lookup with many stored reports (``bench_events.py lookup``).

Stored reports: the corpus texts' signatures, each copied with ~15 % of its values redrawn (a caller's
own wording) into events of 1 to 50 reports, at one of 2,000 places (20 % unknown) and 16 topics, over
30 days; inserted with ``SimilarStore.bulk_add`` into a SQLite file (the feedback store's default), or into the
database of ``--db-url`` (e.g. PostgreSQL; its report tables are dropped first).
Queries (``--queries``, looked up without storing): half another wording of a stored report at its
topic, place and day, half any corpus text at any place and day. Each is timed from text to answer
(normalisation, signature, band-key query, verification, event size). Classification is not timed here
(bench/results/serve.json has it).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from bench_events import TOPICS, _corpus_texts, _edit, _save
from sqlalchemy import create_engine

from chuishao.analysis.events_config import EventsConfig
from chuishao.analysis.minhash import normalise, signatures
from chuishao.serve.feedback_store import Base
from chuishao.serve.similar_store import Report, ReportBand, SimilarStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def lookup(args: Namespace) -> None:
    config = EventsConfig()
    texts = [t for t in _corpus_texts(args.corpus) if t]
    base = signatures([normalise(t) for t in texts], config.num_perm, config.seed, config.shingle)
    rng = np.random.default_rng(args.seed)
    db_url = getattr(args, "db_url", None)  # e.g. postgresql+psycopg://user@host/db: its report tables are emptied first
    db = None if db_url else Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="chuishao-lookup-")) / "reports.sqlite3"
    engine = create_engine(db_url or f"sqlite:///{db}")
    if db_url:  # the store's own tables, dropped as it creates them (any dialect)
        Base.metadata.drop_all(engine, tables=[ReportBand.__table__, Report.__table__])
    store = SimilarStore(engine, config, retention_days=60)
    started = time.perf_counter()
    done, chunk = 0, 20_000
    samples: list[tuple[int, str, str | None, datetime]] = []
    while done < args.rows:
        n = min(chunk, args.rows - done)
        sizes = np.minimum(rng.zipf(1.6, n), 50)
        sizes = sizes[np.cumsum(sizes) <= n]
        sizes = np.r_[sizes, np.ones(n - sizes.sum(), dtype=int)]
        ev = np.repeat(np.arange(len(sizes)), sizes)
        src = rng.integers(0, len(texts), len(sizes))[ev]
        topic = np.array([TOPICS[s % len(TOPICS)] for s in range(len(texts))])[src]
        place_of = np.where(rng.random(len(sizes)) < 0.2, -1, rng.integers(0, 2000, len(sizes)))[ev]
        day = rng.uniform(0, 30, len(sizes))[ev] + rng.exponential(0.5, n)
        sigs = base[src].copy()
        redraw = rng.random(sigs.shape) < 0.15
        sigs[redraw] = rng.integers(0, 2**32 - 1, redraw.sum(), dtype=np.uint64).astype(np.uint32)
        rows = [{"report_id": f"r{done + i}", "created": T0 + timedelta(days=float(day[i])), "topic": str(topic[i]),
                 "place": None if place_of[i] < 0 else f"区{place_of[i] // 50}/街道{place_of[i]}", "lead": "城管执法局"}
                for i in range(n)]
        store.bulk_add(rows, sigs)
        for i in rng.integers(0, n, max(1, n * args.queries // args.rows)).tolist():  # stored reports to query like
            samples.append((int(src[i]), rows[i]["topic"], rows[i]["place"], rows[i]["created"]))
        done += n
    filled = time.perf_counter() - started
    filled_cpu = time.process_time()

    pyrng = random.Random(args.seed)
    latencies, cpu, found = [], [], 0
    for q in range(args.queries):
        if q % 2 and samples:  # half: another wording of a stored report, at its place and time
            src, topic, place, when = samples[pyrng.randrange(len(samples))]
            when += timedelta(hours=pyrng.uniform(0, 24))
        else:  # half: any corpus text at any place and day
            src = pyrng.randrange(len(texts))
            topic, p = TOPICS[src % len(TOPICS)], pyrng.randrange(-400, 2000)
            place, when = (None if p < 0 else f"区{p // 50}/街道{p}"), T0 + timedelta(days=pyrng.uniform(0, 30))
        text = _edit(texts[src], pyrng)
        t, c = time.perf_counter(), time.process_time()
        answer = store.lookup(text, None, topic, place, when, record=False)
        latencies.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        found += bool(answer.similar)
    ms, cpu_ms = np.array(latencies) * 1000, np.array(cpu) * 1000
    _save(f"lookup_{args.rows}" + (f"_{engine.dialect.name}" if db_url else ""), {
        "stored_reports": args.rows, "queries": args.queries, "queries_with_similar": found,
        "p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2),
        # CPU time of the lookup thread: what it costs without other work waiting for the cores
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 2), "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 2),
        "seconds_to_store": round(filled, 1), "cpu_seconds_to_store": round(filled_cpu, 1),
        "database": engine.dialect.name if db_url else "sqlite (file)",
        "db_mb": round(os.path.getsize(db) / 2**20) if db else None,
        "contended": args.contended, "target_p99_ms": 20,
    })
    engine.dispose()
    if db is not None and not args.db:
        db.unlink()
    print(json.dumps({"db": str(db) if db else engine.url.render_as_string(hide_password=True)}))
