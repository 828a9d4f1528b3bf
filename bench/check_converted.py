"""Check that a converted model answers exactly as the pickled model it came from.

    python bench/check_converted.py --shared ../shared/data --old /tmp/old_answers.jsonl [--model DIR]

``--old``: the old model's answers, one JSON line per row of whistle/test.jsonl in order (the
``route_dicts`` answer without model_version, plus ``proba``, the full probabilities). Prints the
number of identical answers and the largest probability difference; exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from chuishao.models.persistence import load_model


def compare(model_dir: Path | None, test_path: Path, old_path: Path) -> dict[str, object]:
    model = load_model(model_dir)
    rows = [json.loads(line) for line in test_path.open(encoding="utf-8")]
    old = [json.loads(line) for line in old_path.open(encoding="utf-8")]
    if len(rows) != len(old):
        raise SystemExit(f"{old_path}: {len(old)} answers for {len(rows)} rows of {test_path}")
    texts, titles, ids = [r["text"] for r in rows], [r.get("title") for r in rows], [r.get("id") for r in rows]
    new = model.route_dicts(texts, titles=titles, ids=ids)
    proba = model.predict_proba(texts, titles=titles)
    old_proba = np.array([a.pop("proba") for a in old], dtype=np.float64)
    identical = sum({k: v for k, v in a.items() if k != "model_version"} == b for a, b in zip(new, old, strict=True))
    differing = [b["id"] for a, b in zip(new, old, strict=True) if {k: v for k, v in a.items() if k != "model_version"} != b]
    return {"model": str(model_dir or "bundled"), "version": model.version, "rows": len(rows), "identical": identical,
            "max_abs_proba_diff": float(np.abs(proba.astype(np.float64) - old_proba).max()), "differing_ids": differing[:10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    result = compare(args.model, args.shared / "whistle" / "test.jsonl", args.old)
    print(json.dumps(result, ensure_ascii=False))
    sys.exit(0 if result["identical"] == result["rows"] and result["max_abs_proba_diff"] == 0 else 1)


if __name__ == "__main__":
    main()
