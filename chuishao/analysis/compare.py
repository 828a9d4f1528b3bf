"""Two models on the same labelled data: what changed, and whether the change is more than noise.

- per-class F1 deltas (B minus A), from the figures ``chuishao test`` gives;
- paired bootstrap confidence intervals of the macro-F1 and accuracy differences: the rows are
  resampled with replacement (seeded), both models scored on each resample;
- McNemar's test on the rows one model gets right and the other wrong (exact binomial below
  25 discordant rows, the chi-square with continuity correction above);
- the messages whose answer changed, texts with personal data masked.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from chuishao.models.calibration import macro_f1_from_predictions
from chuishao.models.cascade import RoutingModel
from chuishao.pipeline.privacy import mask_pii_raw
from chuishao.training.data import LabelledSet
from chuishao.training.evaluate import evaluate

EXACT_BELOW = 25  # discordant rows under which McNemar's test is the exact binomial one


@dataclass
class Comparison:
    a: str  # model versions
    b: str
    n: int
    figures: dict[str, dict[str, float | None]]  # figure -> {"a", "b", "delta"}
    per_class: list[dict[str, object]]  # label, name, f1_a, f1_b, delta, support
    bootstrap: dict[str, dict[str, float]]  # "macro_f1"/"accuracy" -> delta, low, high
    mcnemar: dict[str, object]
    changed: list[dict[str, object]] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)
    seen: dict[str, dict[str, object]] = field(default_factory=dict)  # "a"/"b" -> evaluate's training_overlap

    def as_dict(self, with_changed: bool = True) -> dict[str, object]:
        out = {"a": self.a, "b": self.b, "n": self.n, "settings": self.settings, "figures": self.figures,
               "bootstrap": self.bootstrap, "mcnemar": self.mcnemar, "per_class": self.per_class,
               "changed_answers": len(self.changed), "training_overlap": self.seen}
        if with_changed:
            out["changed"] = self.changed
        return out


def paired_bootstrap(true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, resamples: int = 1000,
                     seed: int = 0, confidence: float = 0.95) -> dict[str, dict[str, float]]:
    """Confidence intervals of B minus A in macro-F1 and accuracy, both models scored on the same
    resampled rows (percentile intervals). Labels are any strings; macro-F1 is over the classes a
    resample's truth or answers hold, as ``evaluate`` computes it."""
    codes = {lab: i for i, lab in enumerate(sorted({*true.tolist(), *pred_a.tolist(), *pred_b.tolist()}))}
    y = np.array([codes[v] for v in true.tolist()], dtype=np.int64)
    a = np.array([codes[v] for v in pred_a.tolist()], dtype=np.int64)
    b = np.array([codes[v] for v in pred_b.tolist()], dtype=np.int64)
    n, k = len(y), len(codes)
    rng = np.random.default_rng(seed)
    f1_delta = np.empty(resamples)
    acc_delta = np.empty(resamples)
    right_a, right_b = (a == y), (b == y)
    for r in range(resamples):
        idx = rng.integers(0, n, n)
        yr = y[idx]
        f1_delta[r] = macro_f1_from_predictions(b[idx], yr, k) - macro_f1_from_predictions(a[idx], yr, k)
        acc_delta[r] = right_b[idx].mean() - right_a[idx].mean()
    tail = 100 * (1 - confidence) / 2
    point = {"macro_f1": macro_f1_from_predictions(b, y, k) - macro_f1_from_predictions(a, y, k),
             "accuracy": float(right_b.mean() - right_a.mean())}
    out = {}
    for name, deltas in (("macro_f1", f1_delta), ("accuracy", acc_delta)):
        low, high = np.percentile(deltas, [tail, 100 - tail])
        out[name] = {"delta": round(float(point[name]), 4), "low": round(float(low), 4), "high": round(float(high), 4)}
    return out


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, object]:
    """McNemar's test: do the two models err on different rows more than chance would have them?
    ``only_a_right``/``only_b_right``: the discordant rows."""
    only_a = int((correct_a & ~correct_b).sum())
    only_b = int((~correct_a & correct_b).sum())
    discordant = only_a + only_b
    if discordant == 0:
        method, statistic, p = "none (no discordant rows)", None, 1.0
    elif discordant < EXACT_BELOW:
        method, statistic = "exact binomial", None
        p = float(stats.binomtest(only_a, discordant, 0.5).pvalue)
    else:
        method = "chi-square with continuity correction"
        statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
        p = float(stats.chi2.sf(statistic, 1))
    return {"only_a_right": only_a, "only_b_right": only_b, "method": method,
            "statistic": None if statistic is None else round(float(statistic), 4), "p_value": round(p, 6)}


def _figure(ma: dict[str, object], mb: dict[str, object], key: str) -> dict[str, float | None]:
    va, vb = ma.get(key), mb.get(key)
    delta = round(float(vb) - float(va), 4) if isinstance(va, int | float) and isinstance(vb, int | float) else None
    return {"a": va, "b": vb, "delta": delta}  # type: ignore[dict-item]


def compare_models(model_a: RoutingModel, model_b: RoutingModel, data: LabelledSet, *,
                   resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> Comparison:
    """Score both models on ``data`` and compare them (B against A: positive deltas are B better)."""
    da: dict[str, object] = {}
    db: dict[str, object] = {}
    ma = evaluate(model_a, data, details=da)
    mb = evaluate(model_b, data, details=db)
    true: np.ndarray = da["true"]  # type: ignore[assignment]
    pred_a: np.ndarray = da["pred"]  # type: ignore[assignment]
    pred_b: np.ndarray = db["pred"]  # type: ignore[assignment]
    pa: dict[str, dict[str, float]] = ma["per_class"]  # type: ignore[assignment]
    pb: dict[str, dict[str, float]] = mb["per_class"]  # type: ignore[assignment]
    taxonomy = model_b.taxonomy
    per_class: list[dict[str, object]] = []
    for label in sorted({*pa, *pb}):
        fa = pa.get(label, {}).get("f1")
        fb = pb.get(label, {}).get("f1")
        per_class.append({"label": label, "name": taxonomy.name_of(label) if label in taxonomy.labels else label,
                          "f1_a": fa, "f1_b": fb,
                          "delta": round(fb - fa, 4) if fa is not None and fb is not None else None,
                          "support": int((true == label).sum())})
    conf_a: np.ndarray = da["confidence"]  # type: ignore[assignment]
    conf_b: np.ndarray = db["confidence"]  # type: ignore[assignment]
    changed: list[dict[str, object]] = [
        {"id": data.ids[i], "label": str(true[i]), "answer_a": str(pred_a[i]), "answer_b": str(pred_b[i]),
         "confidence_a": round(float(conf_a[i]), 4), "confidence_b": round(float(conf_b[i]), 4),
         "now": "right" if pred_b[i] == true[i] else ("wrong, was right" if pred_a[i] == true[i] else "wrong"),
         "text": mask_pii_raw(((data.titles[i] or "") + " " + (data.texts[i] or "")).strip())}
        for i in np.flatnonzero(pred_a != pred_b)
    ]
    return Comparison(
        a=model_a.version, b=model_b.version, n=len(true),
        figures={key: _figure(ma, mb, key) for key in ("macro_f1", "accuracy", "top3_accuracy", "ece",
                                                       "needs_review_share", "accuracy_when_sure")},
        per_class=per_class,
        bootstrap=paired_bootstrap(true, pred_a, pred_b, resamples=resamples, seed=seed, confidence=confidence),
        mcnemar=mcnemar(da["correct"], db["correct"]),  # type: ignore[arg-type]
        changed=changed,
        settings={"resamples": resamples, "seed": seed, "confidence": confidence},
        seen={"a": ma["training_overlap"], "b": mb["training_overlap"]},  # type: ignore[dict-item]
    )


def overlap_warnings(c: Comparison) -> list[str]:
    """A line for each model trained on some of the rows: its figures there are flattered."""
    return [f"warning: {seen['rows']} of {seen['of']} rows ({100 * float(seen['share']):.1f} %) were in the training "  # type: ignore[arg-type]
            f"data of {side} ({version}): its figures here are flattered; compare on rows neither model was trained on"
            for side, version in (("A", c.a), ("B", c.b))
            if (seen := c.seen.get(side.lower()) or {}).get("rows")]


def summary_text(c: Comparison, data_name: str = "") -> str:
    """The comparison as a short Markdown page."""
    level = round(100 * float(c.settings.get("confidence", 0.95)))  # type: ignore[arg-type]
    lines = [f"# {c.b} (B) against {c.a} (A)", "",
             f"{c.n} labelled rows{' of ' + data_name if data_name else ''}; deltas are B minus A (positive: B better, "
             f"except ece, where lower is better).", ""]
    warnings = overlap_warnings(c)
    lines += [f"**{w}**" for w in warnings] + ([""] if warnings else [])
    lines += ["| figure | A | B | delta |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['a']} | {v['b']} | {v['delta']} |" for k, v in c.figures.items()]
    lines += ["", f"Paired bootstrap, {c.settings.get('resamples')} resamples (seed {c.settings.get('seed')}), "
                  f"{level} % intervals of the difference:", ""]
    for name, ci in c.bootstrap.items():
        verdict = ("significantly worse" if ci["high"] < 0 else "significantly better" if ci["low"] > 0
                   else "not significantly different")
        lines.append(f"- {name}: {ci['delta']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]: B is {verdict}")
    m = c.mcnemar
    lines += ["", f"McNemar ({m['method']}): {m['only_a_right']} rows only A gets right, {m['only_b_right']} only B; "
                  f"p = {m['p_value']}", "", "| label | name | F1 A | F1 B | delta | support |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['name']} | {r['f1_a']} | {r['f1_b']} | {r['delta']} | {r['support']} |"
              for r in c.per_class]
    lines += ["", f"{len(c.changed)} answers changed (changed.csv: id, label, both answers, masked text)."]
    return "\n".join(lines) + "\n"


CHANGED_COLUMNS = ("id", "label", "answer_a", "answer_b", "confidence_a", "confidence_b", "now", "text")


def write_comparison(c: Comparison, directory: str | Path, data_name: str = "") -> Path:
    """compare.json (figures, intervals, test, changed answers), changed.csv and summary.md."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "compare.json").write_text(json.dumps(c.as_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    with (directory / "changed.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CHANGED_COLUMNS)
        w.writeheader()
        w.writerows(c.changed)
    (directory / "summary.md").write_text(summary_text(c, data_name), encoding="utf-8")
    return directory
