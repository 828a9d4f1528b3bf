"""Cross-validation of training recipes on whistle/train.jsonl, side by side in one run.

Each fold's rows are held out (data.exclude) from a model trained with the full recipe (corpus labels,
authored examples, self-training), then scored against their original labels. Recipes are given as
override lists; the first is the baseline.

    python bench/bench_cv.py --shared ../shared/data --recipe base: --recipe relabel:--data.relabel=data/labels/relabel-v1.2.csv

Prints one JSON line per recipe and writes bench/results/cv.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from chuishao.config import ChuishaoConfig
from chuishao.training.data import read_labelled
from chuishao.training.evaluate import evaluate
from chuishao.training.train import TrainRequest, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--config", type=Path, default=Path("configs/default.yaml"))
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", action="append", required=True, help="NAME:--key=value,--key=value")
    ap.add_argument("--out", type=Path, default=Path("bench/results/cv.json"))
    args = ap.parse_args()
    train_file = args.shared / "whistle" / "train.jsonl"
    rows = read_labelled(train_file)
    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(np.zeros(len(rows)), rows.labels))
    results: dict[str, object] = {"folds": args.folds, "seed": args.seed, "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.recipe:
            name, _, overrides = spec.partition(":")
            extra = [o for o in overrides.split(",") if o]
            per_fold = []
            for k, (_, held) in enumerate(folds):
                held_file = Path(tmp) / f"fold{k}.jsonl"
                held_file.write_text("".join(json.dumps({"id": rows.ids[i], "text": "-"}) + "\n" for i in held), encoding="utf-8")
                overrides = dict(o.removeprefix("--").split("=", 1) for o in extra)
                overrides |= {"paths.shared": str(args.shared),
                              "data.exclude": f"{args.shared}/whistle/test.jsonl,{held_file}"}
                config = ChuishaoConfig.load(args.config, overrides)
                model = train(TrainRequest.from_config(config))
                part = rows.take(list(held))
                figures = evaluate(model, part)
                per_fold.append({"macro_f1": figures["macro_f1"], "accuracy": figures["accuracy"]})
                print(json.dumps({"recipe": name, "fold": k, **per_fold[-1]}), flush=True)
            mean = {m: round(float(np.mean([f[m] for f in per_fold])), 4) for m in ("macro_f1", "accuracy")}
            results[name] = {"overrides": extra, "folds": per_fold, **mean}
            print(json.dumps({"recipe": name, **mean}), flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
