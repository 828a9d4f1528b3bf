"""Simulated active learning on whistle/train.jsonl: labels chosen by `chuishao suggest-labels` vs at random.

Only train.jsonl is a pool to choose from. The rounds start from the same stratified quarter of it;
each round adds ``--step`` (200) labels, chosen by the tool (``chuishao.analysis.suggest.select``
with its defaults, on the model of the round before) or at random (``--random-seeds`` runs), and
retrains a light recipe: the default config without corpus self-training or extra data. Every
model is scored on whistle/test.jsonl, which is never used for choosing; train rows that copy a
test row (exact or near, as `chuishao check` finds them) are left out of the pool first.

    nice -n 15 python bench/bench_active.py --shared ../shared/data

Prints one JSON line per model, writes bench/results/active.json and bench/results/active.svg, and
says whether the tool reaches random selection's final figures with at least 30 % fewer labels.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from chuishao.analysis.checks import matching_form, near_pairs
from chuishao.analysis.suggest import select
from chuishao.config import ChuishaoConfig
from chuishao.io.records import InputRecord
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.taxonomy import Taxonomy
from chuishao.training.data import LabelledSet, read_labelled
from chuishao.training.evaluate import evaluate

METRICS = ("macro_f1", "accuracy")


def without_test_copies(train: LabelledSet, test: LabelledSet) -> tuple[LabelledSet, int]:
    forms = [matching_form(t) for t in train.texts]
    test_forms = [matching_form(t) for t in test.texts]
    leaked = {i for i, f in enumerate(forms) if f in set(test_forms)} | set(np.nonzero(np.isin(train.ids, test.ids))[0].tolist())
    for a, b, _ in near_pairs(forms + test_forms, [0] * len(forms) + [1] * len(test_forms), 0.9):
        if a < len(forms) <= b:
            leaked.add(a)
    return train.take([i for i in range(len(train)) if i not in leaked]), len(leaked)


def fit(data: LabelledSet, rows: list[int], seed: int) -> ChuishaoClassifier:
    part = data.take(rows)
    config = ChuishaoConfig()
    config.seed = seed
    model = ChuishaoClassifier(config, Taxonomy.load())
    model.fit(part.texts, part.labels, titles=part.titles, subs=part.subs, weights=part.weights)
    labels, counts = np.unique(part.labels, return_counts=True)
    model.metadata["label_counts"] = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    return model


def records(data: LabelledSet, rows: list[int]) -> list[InputRecord]:
    return [InputRecord(row=i + 1, id=data.ids[i], text=data.texts[i], title=data.titles[i]) for i in rows]


def run_arm(name: str, data: LabelledSet, test: LabelledSet, start: list[int], rounds: int, step: int,
            chooser, seed: int, done: dict[tuple[str, int, int], dict[str, object]]) -> list[dict[str, object]]:
    """One learning curve. A point in ``done`` (an earlier run's output, --resume) is not refitted
    when the choice after it needs no model (random) or the whole arm is there: the runs are
    deterministic (same start, seeded choices and fits), so a resumed curve is the same curve."""
    labelled = list(start)
    curve = []
    whole_arm = all((name, seed, r) in done for r in range(rounds + 1))
    for r in range(rounds + 1):
        cached = done.get((name, seed, r))
        if cached is not None and (name == "random" or whole_arm):
            assert cached["labels"] == len(labelled), "the resumed run had other settings"
            point, model = {**cached, "resumed": True}, None
        else:
            began = time.perf_counter()
            model = fit(data, labelled, 0)
            figures = evaluate(model, test)
            point = {"arm": name, "seed": seed, "round": r, "labels": len(labelled),
                     **{m: round(float(figures[m]), 4) for m in METRICS},
                     "seconds": round(time.perf_counter() - began, 1)}
        if r < rounds:
            t = time.perf_counter()
            if not (whole_arm and name == "tool"):
                labelled += chooser(model, labelled, step)
            else:  # the tool's picks need its model: a fully resumed tool arm only counts them
                labelled += [-1] * step
            point.setdefault("choose_seconds", round(time.perf_counter() - t, 1))
        curve.append(point)
        print(json.dumps(point), flush=True)
    return curve


def labels_to_reach(curve: list[dict[str, object]], metric: str, target: float) -> int | None:
    for point in curve:
        if float(point[metric]) >= target:  # type: ignore[arg-type]
            return int(point["labels"])  # type: ignore[call-overload]
    return None


def plot(results: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, METRICS, strict=True):
        tool = results["tool"]
        ax.plot([p["labels"] for p in tool], [p[metric] for p in tool], "o-", label="suggest-labels")  # type: ignore[index,union-attr]
        rand = np.array([[p[metric] for p in curve] for curve in results["random"]])  # type: ignore[index,union-attr]
        x = [p["labels"] for p in results["random"][0]]  # type: ignore[index]
        ax.plot(x, rand.mean(axis=0), "s--", label=f"random (mean of {len(rand)})")
        ax.fill_between(x, rand.min(axis=0), rand.max(axis=0), alpha=0.2)
        for curve in results.get("random_partial") or []:  # type: ignore[union-attr]
            ax.plot([p["labels"] for p in curve], [p[metric] for p in curve], ":", color="gray",
                    label=f"random seed {curve[0]['seed']} (unfinished)")
        ax.set_xlabel("labelled training rows")
        ax.set_ylabel(f"{metric} on whistle/test.jsonl")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--step", type=int, default=200)
    ap.add_argument("--random-seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/results/active.json"))
    ap.add_argument("--resume", type=Path, help="the printed lines of an earlier run with the same settings")
    args = ap.parse_args()
    done: dict[tuple[str, int, int], dict[str, object]] = {}
    if args.resume is not None:
        for line in args.resume.read_text(encoding="utf-8").splitlines():
            point = json.loads(line) if line.startswith('{"arm"') else None
            if point is not None and not (point["arm"] == "random" and point["round"] == 0 and point["seed"]):
                done[(point["arm"], point["seed"], point["round"])] = point
    if ("tool", 0, 0) in done:  # round 0 is one model for every arm (same start, same fit)
        for s in range(args.random_seeds):
            shared = {k: v for k, v in done[("tool", 0, 0)].items() if k not in ("choose_seconds", "resumed")}
            done.setdefault(("random", s, 0), {**shared, "arm": "random", "seed": s})
    started = time.perf_counter()
    test = read_labelled(args.shared / "whistle" / "test.jsonl")
    data, leaked = without_test_copies(read_labelled(args.shared / "whistle" / "train.jsonl"), test)
    everything = list(range(len(data)))
    start, _ = train_test_split(everything, train_size=0.25, stratify=data.labels, random_state=0)
    start = sorted(start)

    def by_tool(model, labelled, k):
        taken = set(labelled)
        pool = [i for i in everything if i not in taken]
        where = {data.ids[i]: i for i in pool}
        chosen = select(model, records(data, pool), k, labelled=records(data, labelled))
        return [where[p.id] for p in chosen.picks]

    def at_random(seed):
        rng = np.random.default_rng(seed)

        def choose(model, labelled, k):
            taken = set(labelled)
            pool = [i for i in everything if i not in taken]
            return rng.choice(pool, size=min(k, len(pool)), replace=False).tolist()
        return choose

    results: dict[str, object] = {
        "what": "labels chosen by suggest-labels vs at random; light recipe (default config, no corpus self-training, "
                "no extra data); chosen from whistle/train.jsonl only, scored on whistle/test.jsonl",
        "pool_rows": len(data), "left_out_test_copies": leaked, "start": len(start), "step": args.step,
        "rounds": args.rounds, "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    results["tool"] = run_arm("tool", data, test, start, args.rounds, args.step, by_tool, 0, done)
    results["random"] = [run_arm("random", data, test, start, args.rounds, args.step, at_random(s), s, done)
                         for s in range(args.random_seeds)]
    # curves of further random seeds an interrupted run left unfinished (--resume): shown, not in the verdict
    results["random_partial"] = [[p for (arm, seed, _), p in sorted(done.items()) if arm == "random" and seed == s]
                                 for s in sorted({seed for arm, seed, _ in done if arm == "random"})
                                 if s >= args.random_seeds and (("random", s, 1) in done)]
    results["resumed_points"] = sum(bool(p.get("resumed")) for c in [results["tool"], *results["random"]] for p in c)
    final = {m: round(float(np.mean([c[-1][m] for c in results["random"]])), 4) for m in METRICS}  # type: ignore[union-attr,index]
    final_labels = int(results["random"][0][-1]["labels"])  # type: ignore[index]
    verdict: dict[str, object] = {"random_final": final, "random_final_labels": final_labels}
    for m in METRICS:
        reached = labels_to_reach(results["tool"], m, final[m])  # type: ignore[arg-type]
        saving = None if reached is None else round(1 - reached / final_labels, 3)
        # the same counting only the labels added to the start: what an annotator is asked for
        added = None if reached is None else round(1 - (reached - len(start)) / (final_labels - len(start)), 3)
        verdict[m] = {"tool_labels_to_reach": reached, "fewer_labels": saving, "fewer_added_labels": added,
                      "target_30_percent_met": saving is not None and saving >= 0.3}
    results["verdict"] = verdict
    results["seconds"] = round(time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    plot(results, args.out.with_suffix(".svg"))
    print(json.dumps({"verdict": verdict, "seconds": results["seconds"]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
