"""Evaluation figures and the analyst's report (per-class table, confusion-matrix picture)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from whistle.errors import DataError
from whistle.models.calibration import expected_calibration_error
from whistle.models.classifier import WhistleClassifier
from whistle.training.data import LabelledSet


def evaluate(model: WhistleClassifier, data: LabelledSet, batch_size: int = 2048) -> dict[str, object]:
    unknown = sorted(set(data.labels) - set(model.classes_))
    if unknown:
        raise DataError(
            f"labels {', '.join(unknown[:10])} are not among the model's labels ({', '.join(model.classes_)}): "
            f"is this data for another taxonomy, or is --label-field wrong?"
        )
    answers = []
    for start in range(0, len(data), batch_size):
        stop = start + batch_size
        answers.extend(model.route(data.texts[start:stop], data.titles[start:stop], data.ids[start:stop]))
    y = np.array(data.labels)
    pred = np.array([a.topic if a.error is None else "<error>" for a in answers])
    labels = list(model.classes_)
    top3 = np.array([any(t.topic == yi for t in a.top[:3]) for a, yi in zip(answers, y)])
    conf = np.array([a.confidence or 0.0 for a in answers])
    correct = pred == y
    review = np.array([a.needs_review for a in answers])
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    gold_subs = np.array([s or "" for s in data.subs])
    pred_subs = np.array([a.sub or "" for a in answers])
    has_sub = (gold_subs != "") & correct
    return {
        "n": len(y),
        "errors": int(sum(a.error is not None for a in answers)),
        # over the classes the data has or the model predicted: a class absent from both is not a
        # failure (a 1-row file would otherwise score 1/16)
        "macro_f1": round(float(f1_score(y, pred, labels=[c for c in labels if c in set(y) | set(pred)],
                                         average="macro", zero_division=0)), 4),
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "top3_accuracy": round(float(top3.mean()), 4),
        "sub_accuracy_given_topic": round(float((gold_subs[has_sub] == pred_subs[has_sub]).mean()), 4) if has_sub.any() else None,
        "ece": round(expected_calibration_error(conf, correct), 4),
        "needs_review_share": round(float(review.mean()), 4),
        "accuracy_when_sure": round(float(correct[~review].mean()), 4) if (~review).any() else None,
        "per_class": {
            lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4), "f1": round(float(f[i]), 4), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "labels": labels,
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
    }


def write_report(metrics: dict[str, object], directory: str | Path, title: str = "whistle evaluation") -> Path:
    """metrics.json, per_class.csv, confusion.png and a short report.md."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    per_class: dict[str, dict[str, float]] = metrics["per_class"]  # type: ignore[assignment]
    with (directory / "per_class.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "precision", "recall", "f1", "support"])
        for lab, m in per_class.items():
            w.writerow([lab, m["precision"], m["recall"], m["f1"], m["support"]])
    plot_confusion(np.array(metrics["confusion"]), list(metrics["labels"]), directory / "confusion.png")  # type: ignore[arg-type]
    lines = [f"# {title}", "", "| figure | value |", "|---|---|"]
    for key in ("n", "errors", "macro_f1", "accuracy", "top3_accuracy", "sub_accuracy_given_topic", "ece",
                "needs_review_share", "accuracy_when_sure"):
        lines.append(f"| {key} | {metrics.get(key)} |")
    lines += ["", "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {lab} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |" for lab, m in per_class.items()]
    lines += ["", "![confusion matrix](confusion.png)", ""]
    (directory / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return directory


def plot_confusion(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row_sums = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, row_sums, out=np.zeros_like(matrix, dtype=float), where=row_sums > 0)
    size = max(6.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_title("confusion matrix (counts; colour = share of the true class)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
