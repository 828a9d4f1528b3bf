"""Draw the 300 corpus messages hand-annotated for place mentions (issue 17, location figure).

    python bench/sample_places.py --corpus ../shared/data/corpus.jsonl [--seed 17] [-o data/labels/places-300-ids.txt]
    python bench/sample_places.py --seed 1717 --hangzhou 50 --teddy 100 --exclude data/labels/places-300-ids.txt \
        -o data/labels/places-test-150-ids.txt    # the held-out set, drawn after places-300 was tuned on

Stratified, seeded sample: 100 ids from the `hangzhou` source (real place names) and 200 from the Teddy sources
(`teddy-*`, anonymised names such as A市A1区), drawn in proportion to each Teddy source's size. Rows with an empty
text are skipped. The same corpus and seed always give the same ids, written one a line (ids only: the corpus has
no licence, so no text is copied).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def read_ids_by_source(corpus: Path) -> dict[str, list[str]]:
    """Ids of the rows with a non-empty text, grouped by source, in file order."""
    by_source: dict[str, list[str]] = defaultdict(list)
    with corpus.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{corpus}:{n}: not JSON ({exc.msg})") from exc
            if str(row.get("text") or "").strip():
                by_source[str(row["source"])].append(str(row["id"]))
    return by_source


def quotas(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` over the sources in proportion to their sizes (largest remainders)."""
    whole = sum(sizes.values())
    exact = {s: total * n / whole for s, n in sizes.items()}
    out = {s: int(x) for s, x in exact.items()}
    for s in sorted(exact, key=lambda s: (out[s] - exact[s], s))[: total - sum(out.values())]:
        out[s] += 1
    return out


def sample(by_source: dict[str, list[str]], n_hangzhou: int, n_teddy: int, seed: int,
           exclude: frozenset[str] = frozenset()) -> list[str]:
    rng = random.Random(seed)
    by_source = {s: [i for i in ids if i not in exclude] for s, ids in by_source.items()}
    teddy = {s: len(ids) for s, ids in sorted(by_source.items()) if s.startswith("teddy")}
    wanted = {"hangzhou": n_hangzhou} | quotas(teddy, n_teddy)
    picked: list[str] = []
    for source, k in wanted.items():
        ids = sorted(by_source.get(source, []))
        if len(ids) < k:
            raise SystemExit(f"source {source!r} has {len(ids)} non-empty rows, {k} wanted")
        picked += rng.sample(ids, k)
    return picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "data" / "corpus.jsonl")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--hangzhou", type=int, default=100)
    ap.add_argument("--teddy", type=int, default=200)
    ap.add_argument("--exclude", type=Path, action="append", default=[],
                    help="id files (one a line) never drawn, e.g. an earlier sample")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "data" / "labels" / "places-300-ids.txt")
    args = ap.parse_args()
    if not args.corpus.is_file():
        raise SystemExit(f"corpus not found: {args.corpus}")
    exclude = frozenset(line.strip() for f in args.exclude for line in f.read_text(encoding="utf-8").splitlines())
    ids = sample(read_ids_by_source(args.corpus), args.hangzhou, args.teddy, args.seed, exclude)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    print(f"{len(ids)} ids -> {args.output}")


if __name__ == "__main__":
    main()
