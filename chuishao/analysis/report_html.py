"""``report.html``: the evaluation report as one self-contained page (pictures inlined as base64
PNG, styles inline, no external asset), for people who would rather look than read.

It shows the headline figures, the per-class table with topic names, the confusion matrix with
topic names, a reliability (calibration) diagram, the coverage-vs-precision curve of the
``needs_review`` threshold with the model's threshold marked, and the worst errors (the most
confident wrong answers) with personal data masked.

Chinese labels need a CJK font installed for matplotlib (Debian: ``apt-get install fonts-noto-cjk``);
without one, labels are shown by code in the pictures and the page lists the codes.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chuishao.models.cascade import RoutingModel
from chuishao.pipeline.privacy import mask_pii_raw
from chuishao.training.data import LabelledSet
from chuishao.training.evaluate import ERROR_COLUMN, cjk_family, confusion_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WORST = 25  # confident wrong answers shown
TEXT_CHARS = 240  # of each, at most


def _png(fig: Figure) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fonts() -> list[str]:
    from matplotlib import rcParams

    cjk = cjk_family()
    return [*rcParams["font.sans-serif"][:1], *([cjk] if cjk else [])]


def reliability_figure(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> Figure:
    """Accuracy against confidence, per confidence bin (the diagonal is perfect calibration)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    acc = np.divide(np.bincount(which, weights=correct.astype(float), minlength=bins), counts,
                    out=np.full(bins, np.nan), where=counts > 0)
    mean_conf = np.divide(np.bincount(which, weights=confidence, minlength=bins), counts,
                          out=np.full(bins, np.nan), where=counts > 0)
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(4.8, 5.2), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    centres = (edges[:-1] + edges[1:]) / 2
    ax.bar(centres, np.nan_to_num(acc), width=1 / bins * 0.9, color="#4C78A8", alpha=0.85, label="accuracy in bin")
    ax.plot(mean_conf, acc, "o", color="#F58518", ms=5, label="mean confidence vs accuracy")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax_n.bar(centres, counts, width=1 / bins * 0.9, color="#999999")
    ax_n.set_xlim(0, 1)
    ax_n.set_xlabel("confidence of the answer")
    ax_n.set_ylabel("rows")
    fig.tight_layout()
    return fig


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each threshold (the distinct confidences, high to low): the share of rows at or above it
    (answered without review) and the accuracy among them."""
    order = np.argsort(-confidence, kind="mergesort")
    conf, right = confidence[order], correct[order].astype(float)
    hits = np.cumsum(right)
    n = np.arange(1, len(conf) + 1)
    last = np.r_[conf[1:] != conf[:-1], True]  # the last row of each run of equal confidences
    return conf[last], n[last] / len(conf), hits[last] / n[last]


def coverage_figure(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 5.2))
    if len(confidence):
        _, coverage, precision = coverage_curve(confidence, correct)
        ax.plot(coverage, precision, color="#4C78A8", lw=1.8)
        sure = confidence >= threshold
        if sure.any():
            cov, prec = float(sure.mean()), float(correct[sure].mean())
            ax.plot([cov], [prec], "o", color="#E45756", ms=8, zorder=3)
            ax.annotate(f"model's threshold {threshold:.2f}\n{100 * cov:.0f} % answered, {100 * prec:.1f} % right",
                        (cov, prec), textcoords="offset points", xytext=(-10, -34), ha="right", fontsize=8,
                        arrowprops={"arrowstyle": "-", "color": "#E45756"})
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("coverage: share answered without review")
    ax.set_ylabel("precision of those answers")
    ax.set_title("needs_review threshold: coverage vs precision", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


_CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif;margin:0;
 background:#f6f7f9;color:#1d2330}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:34px 0 10px;border-bottom:1px solid #dde1e8;padding-bottom:4px}
.sub{color:#5b6475;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:18px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:22px} .card span{font-size:12px;color:#5b6475}
.note{background:#fff8e1;border:1px solid #f0d78c;border-radius:6px;padding:8px 12px;margin-top:14px;font-size:13px}
.ok{background:#eef7ee;border-color:#b9dcb9}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}
th,td{border-bottom:1px solid #e6e9ef;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:9px;background:#4C78A8;border-radius:2px;margin-right:6px;vertical-align:middle}
.low .bar{background:#E45756}
.figs{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:0;background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:8px}
figcaption{font-size:12px;color:#5b6475;max-width:560px;margin-top:4px}
img{max-width:100%;height:auto;display:block}
.text{max-width:560px;color:#333}
.tag{display:inline-block;padding:0 6px;border-radius:4px;font-size:12px;background:#eef1f5}
.wrong{background:#fde8e8}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _named(code: str, model: RoutingModel) -> str:
    taxonomy = model.taxonomy
    if code in taxonomy.labels and taxonomy.name_of(code) != code:
        return f"{code} {taxonomy.name_of(code)}"
    return code


def _shown(name: str, value: object) -> str:
    """A headline figure: shares as percentages, scores (macro-F1, ECE) and counts as they are."""
    if value is None:
        return "-"
    if isinstance(value, float) and name not in ("macro-F1", "ECE (calibration error)"):
        return f"{value:.1%}"
    return str(value)


def _bar(value: float) -> str:
    return f'<span class="bar" style="width:{round(70 * value)}px"></span>{value:.3f}'


def render_html(metrics: dict[str, object], details: dict[str, object], model: RoutingModel, data: LabelledSet,
                title: str) -> str:
    """The page (a string): see the module's docstring."""
    from matplotlib import rc_context

    labels: list[str] = list(metrics["labels"])  # type: ignore[call-overload]
    per_class: dict[str, dict[str, float]] = metrics["per_class"]  # type: ignore[assignment]
    confidence = np.asarray(details["confidence"], dtype=float)
    correct = np.asarray(details["correct"], dtype=bool)
    pred = np.asarray(details["pred"])
    true = np.asarray(details["true"])
    failed = pred == ERROR_COLUMN
    threshold = float(details["review_threshold"])  # type: ignore[arg-type]
    named = {lab: _named(lab, model) for lab in labels}
    with rc_context({"font.family": "sans-serif", "font.sans-serif": _fonts()}):
        fig, codes = confusion_figure(np.array(metrics["confusion"]), [named[x] for x in labels],
                                      [*(named[x] for x in labels), ERROR_COLUMN])
        confusion_png = _png(fig)
        reliability_png = _png(reliability_figure(confidence[~failed], correct[~failed]))
        coverage_png = _png(coverage_figure(confidence[~failed], correct[~failed], threshold))

    def fig_block(src: str, alt: str, caption: str) -> str:
        return f'<figure><img src="{src}" alt="{_e(alt)}"><figcaption>{caption}</figcaption></figure>'

    cards = [("macro-F1", metrics.get("macro_f1")), ("accuracy", metrics.get("accuracy")),
             ("top-3 accuracy", metrics.get("top3_accuracy")), ("ECE (calibration error)", metrics.get("ece")),
             ("needs review", metrics.get("needs_review_share")), ("accuracy when sure", metrics.get("accuracy_when_sure")),
             ("rows", metrics.get("n")), ("errors (unclassifiable)", metrics.get("errors"))]
    parts = [f"<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>",
             f"<style>{_CSS}</style></head><body><main>",
             f"<h1>{_e(title)}</h1><div class=\"sub\">model {_e(model.version)} · taxonomy {_e(model.taxonomy.name)} "
             f"v{_e(model.taxonomy.version)} · review threshold {threshold:.3f}</div>",
             '<div class="cards">' + "".join(f'<div class="card"><b>{_e(_shown(k, v))}</b><span>{_e(k)}</span></div>'
                                             for k, v in cards) + "</div>"]
    overlap: dict = metrics.get("training_overlap") or {}  # type: ignore[assignment]
    if overlap:
        ok = overlap.get("checked") and not overlap.get("rows")
        parts.append(f'<div class="note{" ok" if ok else ""}">Training data overlap: {_e(overlap.get("message"))}</div>')
    unlearned = list(metrics.get("unlearned_labels") or [])  # type: ignore[call-overload]
    if unlearned:
        parts.append(f'<div class="note">The model never learned {_e(", ".join(named.get(u, u) for u in unlearned))}: '
                     f"those rows are scored as misses.</div>")

    parts.append("<h2>Per class</h2><table><tr><th>topic</th><th>precision</th><th>recall</th><th>F1</th>"
                 "<th>support</th><th>errors</th></tr>")
    for lab, m in sorted(per_class.items(), key=lambda kv: kv[1]["f1"]):
        low = ' class="low"' if m["f1"] < 0.6 else ""
        parts.append(f"<tr{low}><td>{_e(named.get(lab, lab))}</td><td>{_bar(m['precision'])}</td>"
                     f"<td>{_bar(m['recall'])}</td><td>{_bar(m['f1'])}</td>"
                     f"<td class=\"num\">{m['support']}</td><td class=\"num\">{m.get('errors', 0)}</td></tr>")
    parts.append("</table><div class=\"sub\">Sorted by F1, weakest first; red bars: F1 under 0.6.</div>")

    parts.append("<h2>Where the answers go</h2><div class=\"figs\">")
    legend = ""
    if codes:
        legend = " Shown by code (no installed font draws them): " + ", ".join(f"{_e(c)} = {_e(lab)}" for lab, c in codes.items())
    parts.append(fig_block(confusion_png, "confusion matrix", "Rows: the true topic; columns: the answer. Colour: share of "
                           "the true topic's rows; numbers: counts." + legend))
    parts.append("</div><h2>Can the confidence be trusted?</h2><div class=\"figs\">")
    parts.append(fig_block(reliability_png, "reliability diagram", "Accuracy of the answers in each confidence bin: bars "
                           "on the diagonal mean a confidence of 0.8 is right 80 % of the time. Below: rows per bin."))
    parts.append(fig_block(coverage_png, "coverage vs precision", "Raising the needs_review threshold sends more messages "
                           "to an operator (less coverage) and makes the rest more often right. The red point is the "
                           "model's threshold."))
    parts.append("</div>")

    wrong = np.flatnonzero(~correct & ~failed)
    worst = wrong[np.argsort(-confidence[wrong], kind="mergesort")][:WORST]
    parts.append(f"<h2>The most confident mistakes</h2><div class=\"sub\">{len(wrong)} wrong answers; the {len(worst)} "
                 f"the model was surest of. Personal numbers and e-mail addresses are masked.</div>"
                 "<table><tr><th>id</th><th>true topic</th><th>answer</th><th>confidence</th><th>text</th></tr>")
    for i in worst:
        text = mask_pii_raw(" ".join(t for t in (data.titles[i] or "", data.texts[i] or "") if t))
        if len(text) > TEXT_CHARS:
            text = text[:TEXT_CHARS] + "…"
        parts.append(f"<tr><td>{_e(data.ids[i])}</td><td><span class=\"tag\">{_e(named.get(str(true[i]), true[i]))}</span></td>"
                     f"<td><span class=\"tag wrong\">{_e(named.get(str(pred[i]), pred[i]))}</span></td>"
                     f"<td class=\"num\">{confidence[i]:.3f}</td><td class=\"text\">{_e(text)}</td></tr>")
    parts.append("</table></main></body></html>\n")
    return "".join(parts)


def write_html_report(metrics: dict[str, object], details: dict[str, object], model: RoutingModel,
                      data: LabelledSet, directory: str | Path, title: str = "chuishao evaluation") -> Path:
    path = Path(directory) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(metrics, details, model, data, title), encoding="utf-8")
    return path
