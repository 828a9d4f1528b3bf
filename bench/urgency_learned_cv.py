"""Would a learned stage beside the urgency rules help? Cross-validated on the training labels only (issue 17).

    python bench/urgency_learned_cv.py [--corpus ../shared/data/corpus.jsonl] [--folds 5]

The pool: data/labels/urgency-train-500.csv, urgency-natural-500.csv, urgency-tuning-80.csv and the dev half of
urgency-enriched-300.csv (never a test part). Model: character 1-3-gram TF-IDF + logistic regression (balanced), with
and without the rules' level as a feature; out-of-fold danger probabilities give precision at recall >= 0.95 and the
figures of "model OR rules" at a few thresholds, beside the rules alone. Prints JSON; docs/urgency.md has the result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from bench_urgency import read_corpus, read_gold, read_ids  # the same checked readers as the figures
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from chuishao.pipeline.urgency import UrgencyDetector, prepare

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "data" / "labels"
LEVEL = {None: 0, "medium": 1, "high": 2}


def pool() -> dict[str, str]:
    """id -> gold level over the training files (bench_urgency's checked reader: a bad row is an error)."""
    dev = read_ids(LABELS / "urgency-enriched-dev-ids.txt")
    gold: dict[str, str] = {}
    for name in ("urgency-train-500.csv", "urgency-natural-500.csv", "urgency-tuning-80.csv", "urgency-enriched-300.csv"):
        for rid, level in read_gold(LABELS / name).items():
            if name != "urgency-enriched-300.csv" or rid in dev:
                gold.setdefault(rid, level)
    return gold


def pr(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    return {"precision": round(tp / max(tp + fp, 1), 3), "recall": round(tp / max(tp + fn, 1), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "data" / "corpus.jsonl")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    corpus = read_corpus(args.corpus)
    gold = pool()
    ids = list(gold)
    y = np.array([gold[i] != "none" for i in ids])
    texts = [prepare((corpus[i][0] or "") + "。" + corpus[i][1])[:3000] for i in ids]
    detector = UrgencyDetector.from_file(None)
    level = np.array([LEVEL[detector.annotate(*corpus[i])["level"]] for i in ids])
    out: dict[str, object] = {"messages": len(y), "danger": int(y.sum()), "rules": pr(level > 0, y)}
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    for with_rules in (False, True):
        for c in (1.0, 4.0, 16.0):
            oof = np.zeros(len(y))
            for tr, te in folds.split(texts, y):
                vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
                x_tr, x_te = vec.fit_transform([texts[i] for i in tr]), vec.transform([texts[i] for i in te])
                if with_rules:
                    onehot = np.eye(3)[level]
                    x_tr = hstack([x_tr, csr_matrix(onehot[tr])]).tocsr()
                    x_te = hstack([x_te, csr_matrix(onehot[te])]).tocsr()
                model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(x_tr, y[tr])
                oof[te] = model.predict_proba(x_te)[:, 1]
            at95 = float(np.sort(oof[y])[int(0.05 * y.sum())])
            out[f"C={c:g}{' +rules' if with_rules else ''}"] = {
                "at_recall_0.95": pr(oof >= at95, y),
                "or_rules": {str(t): pr((oof >= t) | (level > 0), y) for t in (0.3, 0.4, 0.5)},
            }
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
