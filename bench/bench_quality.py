"""Quality figures (issue #2), side by side with the reference, on the held-out splits.

    python bench/bench_quality.py --shared ../shared/data [--model models/default]

- chuishao: the bundled default model on whistle/test.jsonl (trained by `make model` on train only);
- reference: char 1-3-gram TF-IDF + LinearSVC(C=0.5, class_weight=balanced) trained on train.jsonl;
- teddy7: the chuishao recipe trained with `--taxonomy none` on teddy7/train, tested on teddy7/test,
  and the same reference there.
Prints the figures and writes bench/results/quality.json. The test splits are only evaluated on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import LinearSVC

from chuishao.config import ChuishaoConfig
from chuishao.models.persistence import load_model
from chuishao.training.data import read_labelled
from chuishao.training.evaluate import evaluate
from chuishao.training.train import TrainRequest, train

RESULTS = Path(__file__).resolve().parent / "results"


def reference(train_path: Path, test_path: Path) -> dict[str, float]:
    tr, te = read_labelled(train_path), read_labelled(test_path)
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    clf = LinearSVC(C=0.5, class_weight="balanced")
    started = time.perf_counter()
    clf.fit(vec.fit_transform([f"{t or ''}\n{x}" for t, x in zip(tr.titles, tr.texts, strict=True)]), tr.labels)
    pred = clf.predict(vec.transform([f"{t or ''}\n{x}" for t, x in zip(te.titles, te.texts, strict=True)]))
    return {"macro_f1": round(f1_score(te.labels, pred, average="macro"), 4),
            "accuracy": round(accuracy_score(te.labels, pred), 4),
            "train_seconds": round(time.perf_counter() - started, 1)}


def ours(model, test_path: Path) -> dict[str, object]:
    m = evaluate(model, read_labelled(test_path))
    return {k: m[k] for k in ("macro_f1", "accuracy", "top3_accuracy", "ece", "needs_review_share", "accuracy_when_sure")} | {
        "per_class_f1": {k: v["f1"] for k, v in m["per_class"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", type=Path, default=None, help="model directory (default: bundled)")
    args = ap.parse_args()
    w, t = args.shared / "whistle", args.shared / "teddy7"
    model = load_model(args.model)
    figures: dict[str, object] = {"model_version": model.version, "whistle": {
        "chuishao": ours(model, w / "test.jsonl"), "reference": reference(w / "train.jsonl", w / "test.jsonl")}}
    teddy = train(TrainRequest(data=[t / "train.jsonl"], taxonomy=None, config=ChuishaoConfig()))
    figures["teddy7"] = {"chuishao": ours(teddy, t / "test.jsonl") | {"train_seconds": teddy.metadata["train_seconds"]},
                         "reference": reference(t / "train.jsonl", t / "test.jsonl")}
    figures["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
