"""Evaluation figures and the analyst's report (per-class table, confusion-matrix picture)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from chuishao.errors import DataError
from chuishao.models.calibration import expected_calibration_error
from chuishao.models.cascade import RoutingModel
from chuishao.pipeline.rowprint import seen
from chuishao.training.data import LabelledSet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# the predicted "class" of a row the model could not classify (empty text, not Chinese, ...):
# the last column of the confusion matrix, so that the matrix accounts for every row
ERROR_COLUMN = "(error)"
TOP_K = 3

# families that draw Chinese, in order of preference (matched as name prefixes)
CJK_FAMILIES = (
    "Noto Sans CJK", "Noto Sans SC", "Noto Sans TC", "Noto Serif CJK", "Noto Serif SC", "Source Han Sans",
    "Source Han Serif", "WenQuanYi", "Microsoft YaHei", "SimHei", "PingFang", "Hiragino Sans GB", "Heiti",
    "STHeiti", "SimSun", "Droid Sans Fallback", "AR PL",
)


def training_overlap(model: RoutingModel, data: LabelledSet) -> dict[str, object]:
    """How many of ``data``'s rows the model was trained on (same text once normalised), from the
    prints of its training rows; ``checked`` False when the model does not keep them."""
    rows = getattr(model, "training_rows_", None)  # a cascade's classical part keeps them
    if rows is None:
        return {"checked": False, "rows": None, "of": len(data), "share": None,
                "message": "cannot check whether these rows were in the training data: the model keeps no "
                           "fingerprint of its training rows (saved before chuishao kept them)"}
    hits = seen(rows, data.texts)
    n, m = int(hits.sum()), len(data)
    share = n / m if m else 0.0
    return {"checked": True, "rows": n, "of": m, "share": round(share, 4),
            "message": f"{n} of {m} rows ({100 * share:.1f} %) were in the training data"}


def evaluate(model: RoutingModel, data: LabelledSet, batch_size: int = 2048,
             details: dict[str, object] | None = None) -> dict[str, object]:
    """Figures of ``model`` on ``data``. ``confusion`` has a row per label and a column per label
    plus a last ``ERROR_COLUMN``: rows that came back with an error (they count as wrong).
    ``details``, when given, is filled with the per-row arrays behind the figures (``pred``,
    ``confidence``, ``needs_review``, ``correct``), for the HTML report and model comparisons."""
    classes = list(model.classes_)
    # what the model may answer: its taxonomy's labels (a --taxonomy none model's are its classes)
    allowed = list(dict.fromkeys([*model.taxonomy.labels, *classes]))
    unknown = sorted(set(data.labels) - set(allowed))
    if unknown:
        raise DataError(
            f"labels {', '.join(unknown[:10])} are not among the model's labels ({', '.join(allowed)}): "
            f"is this data for another taxonomy, or is --label-field wrong?"
        )
    # a taxonomy label the training data lacked is a class this model always misses, not wrong data
    unlearned = sorted(set(data.labels) - set(classes))
    if unlearned:
        rows = sum(lab in unlearned for lab in data.labels)
        print(f"chuishao: warning: the model never learned {', '.join(unlearned[:10])} (labels of its taxonomy "
              f"absent from its training data): scored as misses (recall 0), {rows} row{'s' * (rows != 1)}",
              file=sys.stderr)
    y = np.array(data.labels)
    class_index = {c: i for i, c in enumerate(classes)}
    y_idx = np.array([class_index.get(lab, -1) for lab in data.labels])
    answers = []
    top3 = np.zeros(len(y), dtype=bool)
    for start in range(0, len(data), batch_size):
        stop = start + batch_size
        batch = model.route(data.texts[start:stop], titles=data.titles[start:stop], ids=data.ids[start:stop])
        answers.extend(batch)
        # top-3 from the full probability matrix: an answer's `top` is only review.top_k long
        good = [start + i for i, a in enumerate(batch) if a.error is None]
        if good:
            proba = model.predict_proba([data.texts[i] for i in good], titles=[data.titles[i] for i in good])
            top3[good] = top_k_hits(proba, y_idx[good], TOP_K)
    pred = np.array([a.topic if a.error is None else ERROR_COLUMN for a in answers])
    labels = sorted({*classes, *unlearned})
    conf = np.array([a.confidence or 0.0 for a in answers])
    correct = pred == y
    failed = pred == ERROR_COLUMN
    review = np.array([a.needs_review for a in answers])
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    # only a model with sub-problem models predicts subs (a --taxonomy none model never does)
    predicts_subs = bool(getattr(model, "sub_models", None))
    gold_subs = np.array([s or "" for s in data.subs])
    pred_subs = np.array([a.sub or "" for a in answers])
    has_sub = (gold_subs != "") & correct
    if details is not None:
        details.update(pred=pred, confidence=conf, needs_review=review, correct=correct, true=y,
                       review_threshold=float(model.review_threshold_))
    return {
        "n": len(y),
        "errors": int(failed.sum()),
        "unlearned_labels": unlearned,
        # over the classes the data has or the model predicted: a class absent from both is not a
        # failure (a 1-row file would otherwise score 1/16)
        "macro_f1": round(float(f1_score(y, pred, labels=[c for c in labels if c in set(y) | set(pred)],
                                         average="macro", zero_division=0)), 4),
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "top3_accuracy": round(float(top3.mean()), 4),
        "sub_accuracy_given_topic": round(float((gold_subs[has_sub] == pred_subs[has_sub]).mean()), 4)
        if predicts_subs and has_sub.any() else None,
        "ece": round(expected_calibration_error(conf, correct), 4),
        "needs_review_share": round(float(review.mean()), 4),
        "accuracy_when_sure": round(float(correct[~review].mean()), 4) if (~review).any() else None,
        "per_class": {
            lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4), "f1": round(float(f[i]), 4),
                  "support": int(s[i]), "errors": int((failed & (y == lab)).sum())}
            for i, lab in enumerate(labels)
        },
        "training_overlap": training_overlap(model, data),
        "labels": labels,
        # the square matrix over labels + ERROR_COLUMN, less its all-zero last row (no row is truly an error)
        "confusion": confusion_matrix(y, pred, labels=[*labels, ERROR_COLUMN])[:-1].tolist(),
    }


def top_k_hits(proba: np.ndarray, y_idx: np.ndarray, k: int) -> np.ndarray:
    """Whether each row's true class (column index; -1: none of them) is among its k most probable,
    ties broken as sklearn's ``top_k_accuracy_score`` breaks them."""
    ranked = np.argsort(proba, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return (ranked == y_idx[:, None]).any(axis=1)


def write_report(metrics: dict[str, object], directory: str | Path, title: str = "chuishao evaluation") -> Path:
    """metrics.json, per_class.csv, confusion.png and a short report.md."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    labels: list[str] = list(metrics["labels"])  # type: ignore[call-overload]
    columns = [*labels, ERROR_COLUMN]
    (directory / "metrics.json").write_text(json.dumps({**metrics, "confusion_columns": columns}, ensure_ascii=False,
                                                       indent=2), encoding="utf-8")
    per_class: dict[str, dict[str, float]] = metrics["per_class"]  # type: ignore[assignment]
    with (directory / "per_class.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "precision", "recall", "f1", "support", "errors"])
        for lab, m in per_class.items():
            w.writerow([lab, m["precision"], m["recall"], m["f1"], m["support"], m.get("errors", 0)])
    codes = plot_confusion(np.array(metrics["confusion"]), labels, columns, directory / "confusion.png")
    lines = [f"# {title}", "", "| figure | value |", "|---|---|"]
    for key in ("n", "errors", "macro_f1", "accuracy", "top3_accuracy", "sub_accuracy_given_topic", "ece",
                "needs_review_share", "accuracy_when_sure"):
        lines.append(f"| {key} | {metrics.get(key)} |")
    lines += ["", (f"`errors`: rows the model could not classify (e.g. empty text); they count as wrong and are "
                   f"the {ERROR_COLUMN} column of the confusion matrix and the errors column below.")]
    unlearned: list[str] = list(metrics.get("unlearned_labels") or [])  # type: ignore[call-overload]
    if unlearned:
        lines += ["", (f"Note: the model never learned {', '.join(unlearned)} (absent from its training data): "
                       f"those rows are scored as misses.")]
    lines += ["", "| label | precision | recall | f1 | support | errors |", "|---|---|---|---|---|---|"]
    lines += [f"| {lab} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} | {m.get('errors', 0)} |"
              for lab, m in per_class.items()]
    if codes:
        lines += ["", "Labels the picture's font cannot draw are shown there by code:", "",
                  "| code | label |", "|---|---|"]
        lines += [f"| {code} | {lab} |" for lab, code in codes.items()]
    lines += ["", "![confusion matrix](confusion.png)", ""]
    (directory / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return directory


# file names of CJK fonts, for one installed after matplotlib cached its font list
_CJK_FILES = ("notosanscjk", "notoserifcjk", "notosanssc", "sourcehan", "wqy", "droidsansfallback", "simhei",
              "msyh", "simsun", "pingfang", "uming", "ukai")


_scanned = False


def _add_system_cjk_fonts() -> bool:
    """Register CJK font files matplotlib's cached list does not know (e.g. fonts-noto-cjk installed
    after the cache was built). True when one was added."""
    from matplotlib import font_manager

    global _scanned
    if _scanned:  # once per process: the scan reads every font file's name
        return False
    _scanned = True
    known = {entry.fname for entry in font_manager.fontManager.ttflist}
    added = False
    for path in font_manager.findSystemFonts():
        if path not in known and any(key in Path(path).name.lower().replace("-", "") for key in _CJK_FILES):
            try:
                font_manager.fontManager.addfont(path)
                added = True
            except (OSError, RuntimeError, ValueError):  # an unreadable font file is skipped
                continue
    return added


def cjk_family() -> str | None:
    """A font family installed for matplotlib that draws Chinese, or None. A font installed after
    matplotlib cached its font list is found too."""
    from matplotlib import font_manager

    for attempt in range(2):
        names = {entry.name for entry in font_manager.fontManager.ttflist}
        for prefix in CJK_FAMILIES:
            # the simplified-Chinese face first: the others draw the same characters in another style
            found = sorted((not name.endswith((" SC", " CN")), name) for name in names if name.startswith(prefix))
            if found:
                return found[0][1]
        if attempt or not _add_system_cjk_fonts():
            break
    return None


def _label_fonts() -> tuple[list[str], set[int]]:
    """The font families for axis labels (matplotlib's default, then a CJK one to fall back on)
    and the code points they can draw between them."""
    from matplotlib import font_manager

    default = font_manager.get_font(font_manager.findfont(font_manager.FontProperties()))
    families, drawable = [default.family_name], set(default.get_charmap())
    cjk = cjk_family()
    if cjk is not None:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=cjk), fallback_to_default=False)
        except ValueError:  # listed but not loadable
            return families, drawable
        # trusted for the glyphs its file has, not for its name
        families.append(cjk)
        drawable |= set(font_manager.get_font(path).get_charmap())
    return families, drawable


def confusion_figure(matrix: np.ndarray, rows: list[str], columns: list[str]) -> tuple[Figure, dict[str, str]]:
    """The picture, and {label: code} for the labels shown by a code (L1, L2, ...) because no
    installed font draws them: tofu boxes (and a 'Glyph missing' warning per character) otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families, drawable = _label_fonts()
    codes: dict[str, str] = {}
    shown = {*rows, *columns}
    for lab in dict.fromkeys([*rows, *columns]):
        if not all(ord(ch) in drawable for ch in lab):
            n = len(codes) + 1
            while f"L{n}" in shown:  # a code must not read as another label
                n += 1
            codes[lab] = f"L{n}"
            shown.add(codes[lab])
    row_sums = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, row_sums, out=np.zeros_like(matrix, dtype=float), where=row_sums > 0)
    size = max(6.0, 0.45 * len(columns) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), [codes.get(c, c) for c in columns], rotation=90, fontfamily=families)
    ax.set_yticks(range(len(rows)), [codes.get(r, r) for r in rows], fontfamily=families)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(rows)):
        for j in range(len(columns)):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    if len(columns) > len(rows):  # set the error column apart from the classes
        ax.axvline(len(rows) - 0.5, color="grey", linewidth=0.8)
    # centred on the figure, not on the axes: long row labels push the axes right, and a title
    # centred over them ran off the figure's edge
    fig.suptitle("confusion matrix\ncounts; colour = share of the true class", fontsize=10)
    fig.tight_layout()
    return fig, codes


def plot_confusion(matrix: np.ndarray, rows: list[str], columns: list[str], path: Path) -> dict[str, str]:
    """Save the confusion-matrix picture; returns the {label: code} of labels shown by code."""
    import matplotlib.pyplot as plt

    fig, codes = confusion_figure(matrix, rows, columns)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return codes
