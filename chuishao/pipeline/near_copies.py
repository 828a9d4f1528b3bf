"""Copies and near-copies of held-out messages among other messages: a held-out message must not come back as a
training row under another id (the corpus repeats letters with a word changed, a greeting added, ...)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["NEAR", "SHINGLE", "STEP", "copies_of_held", "near_copies"]

SHINGLE = 10  # characters of a shingle
STEP = 5  # a dev text's shingles are taken every STEP characters
NEAR = 0.5  # a corpus text holding this share of a dev text's shingles is a near-copy of it


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _joined(rec: dict[str, Any]) -> str:
    return _norm(f"{rec.get('title') or ''}{rec.get('text') or ''}")


def near_copies(dev: Sequence[dict[str, Any]], corpus: Sequence[dict[str, Any]],
                same_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Corpus ids whose title+text is a copy or near-copy of a dev row's (alphanumerics only, lower case: at
    least NEAR of the dev text's SHINGLE-character shingles), each with the dev id it copies. Corpus rows with one of
    ``same_ids`` (default: the dev rows' ids) are the dev messages themselves, left out by id already: not compared."""
    index: dict[str, list[int]] = defaultdict(list)
    needed = np.zeros(len(dev), dtype=np.int64)
    whole: dict[str, int] = {}
    for i, rec in enumerate(dev):
        t = _joined(rec)
        whole.setdefault(t, i)
        shingles = {t[j:j + SHINGLE] for j in range(0, max(len(t) - SHINGLE, 0) + 1, STEP)} if len(t) >= SHINGLE else set()
        needed[i] = len(shingles)
        for s in shingles:
            index[s].append(i)
    dev_ids = {str(i) for i in same_ids} if same_ids is not None else {str(r.get("id")) for r in dev}
    found: dict[str, str] = {}
    for rec in corpus:
        cid = str(rec.get("id"))
        if cid in dev_ids:
            continue  # the same message: excluded by its id already
        t = _joined(rec)
        if t in whole:
            found[cid] = str(dev[whole[t]].get("id"))
            continue
        hits: dict[int, int] = defaultdict(int)
        for s in {t[j:j + SHINGLE] for j in range(len(t) - SHINGLE + 1)}:
            for i in index.get(s, ()):
                hits[i] += 1
        best = max(hits.items(), key=lambda kv: kv[1] / max(needed[kv[0]], 1), default=None)
        if best is not None and needed[best[0]] and best[1] >= NEAR * needed[best[0]]:
            found[cid] = str(dev[best[0]].get("id"))
    return found


def copies_of_held(held: Sequence[dict[str, Any]], held_ids: Collection[str], messages: Sequence[dict[str, Any]]) -> set[str]:
    """Ids of the ``messages`` without a held-out id that copy or nearly copy a held-out text: one of ``held``, or the
    text that a message with a held-out id has among ``messages`` (a held-out file may list ids only)."""
    texts = [*held, *(m for m in messages if m["id"] in held_ids)]
    candidates = [m for m in messages if m["id"] not in held_ids]
    return set(near_copies(texts, candidates, same_ids=held_ids)) if texts else set()
