"""The cascade (classical + e5 re-scoring, chuishao.models.cascade): quality on the held-out test split and speed.

    python bench/bench_cascade.py quality --classical models/default --e5 ONNX_DIR --cascade DIR [--cascade DIR ...]
    python bench/bench_cascade.py speed --cascade DIR [--classical models/default --e5 ONNX_DIR --rows 2000]

``quality`` reads whistle/test.jsonl: run it once per candidate, after every choice was made on the dev split.
``speed``: ``chuishao tag`` rows/s on corpus messages (``--source``: others, e.g. whistle/train.jsonl, whose
share of unsure messages, hence re-scored ones, is higher) (a subprocess, model load included and excluded), the
encoder alone in ms/message (batches of 32), and single-message ``route`` latency p50/p99 (the service's path).
Both merge their figures into bench/results/cascade.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results" / "cascade.json"


def _rows(path: Path, limit: int | None = None) -> list[dict]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line))
                if limit and len(out) >= limit:
                    break
    return out


def _figures(y: list[str], pred: list[str], labels: list[str]) -> dict[str, float]:
    f = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)[2]
    return {"macro_f1": round(float(np.mean(f)), 4), "accuracy": round(float(np.mean(np.array(y) == np.array(pred))), 4)}


def _save(key: str, value: object) -> None:
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = value
    data["machine"] = f"{os.cpu_count()} CPU cores (shared), onnxruntime CPU"
    RESULTS.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def quality(args: argparse.Namespace) -> None:
    from chuishao.models.onnx_encoder import OnnxClassifier
    from chuishao.models.persistence import load_model

    test = _rows(args.data)
    y = [r["label"] for r in test]
    texts = [r["text"] for r in test]
    titles = [r.get("title") for r in test]
    out: dict[str, object] = {"data": args.data.name, "rows": len(test)}
    classical = load_model(args.classical)
    labels = sorted(set(classical.classes_) | set(y))

    def routed(model) -> list[str]:
        return [a.topic or "ERROR" for a in model.route(texts, titles=titles)]

    out["classical"] = {"version": classical.version, **_figures(y, routed(classical), labels)}
    if args.e5:
        enc = OnnxClassifier.load(args.e5, threads=args.threads)
        out["e5"] = {"dir": str(args.e5), **_figures(y, enc.predict(test), labels)}
        if (Path(args.e5) / "model.int8.onnx").exists():
            enc8 = OnnxClassifier.load(args.e5, int8=True, threads=args.threads)
            out["e5_int8"] = _figures(y, enc8.predict(test), labels)
    for d in args.cascade or []:
        model = load_model(d)
        answers = model.route(texts, titles=titles)
        pred = [a.topic or "ERROR" for a in answers]
        manifest = json.loads((Path(d) / "manifest.json").read_text())
        sure = [not a.needs_review for a in answers]
        right = np.array(pred) == np.array(y)
        out[f"cascade:{Path(d).name}"] = {
            "version": model.version, "int8": manifest["transformer"]["int8"], **manifest["cascade"],
            **_figures(y, pred, labels), "review_share": round(1 - float(np.mean(sure)), 4),
            "accuracy_when_sure": round(float(right[np.array(sure)].mean()), 4) if any(sure) else None}
    print(json.dumps(out, ensure_ascii=False, indent=1))
    key = f"test:{args.data.parent.name}/{args.data.name}"
    earlier = json.loads(RESULTS.read_text()).get(key, {}) if RESULTS.exists() else {}
    _save(key, {**earlier, **out})  # candidates measured in earlier runs stay


def _tag(model_dir: Path, src: Path, workers: int, threads: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CHUISHAO_ONNX_THREADS": str(threads), "PYTHONPATH": str(REPO)}
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "chuishao.cli", "tag", str(src), "-o", f"{tmp}/out.jsonl", "--model",
                            str(model_dir), "--workers", str(workers)], env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if r.returncode:
            raise SystemExit(r.stderr[-2000:])
        n = len(Path(f"{tmp}/out.jsonl").read_text(encoding="utf-8").splitlines())
    t0 = time.perf_counter()  # the load alone, to tell it from tagging
    code = f"from chuishao.models.persistence import load_model; load_model({str(model_dir)!r}).warm_up()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    load = time.perf_counter() - t0
    return {"rows": n, "workers": workers, "onnx_threads": threads, "wall_s": round(wall, 1),
            "rows_per_s": round(n / wall, 1), "load_s": round(load, 1),
            "rows_per_s_after_load": round(n / max(wall - load, 1e-9), 1)}


def speed(args: argparse.Namespace) -> None:
    from chuishao.models.onnx_encoder import OnnxClassifier
    from chuishao.models.persistence import load_model

    rows = _rows(args.source, args.rows)
    out: dict[str, object] = {"rows": len(rows), "source": f"{args.source.parent.name}/{args.source.name}, first rows"}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "corpus.jsonl"
        src.write_text("".join(json.dumps({k: r.get(k) for k in ("id", "title", "text")}, ensure_ascii=False) + "\n"
                               for r in rows), encoding="utf-8")
        tags = {}
        for d in [*(args.cascade or []), *([args.classical] if str(args.classical) not in ("", ".") else [])]:
            for workers, threads in ((1, 2), (2, 1)):
                tags[f"{Path(d).name} w{workers} t{threads}"] = _tag(Path(d), src, workers, threads)
                print(json.dumps({Path(d).name: tags[f"{Path(d).name} w{workers} t{threads}"]}), flush=True)
        out["tag"] = tags
    if args.e5:
        enc_rows = rows[:args.encoder_rows]
        for int8 in (False, True):
            if int8 and not (Path(args.e5) / "model.int8.onnx").exists():
                continue
            enc = OnnxClassifier.load(args.e5, int8=int8, threads=2)
            enc.predict_proba(enc_rows[:32])
            t0 = time.perf_counter()
            enc.predict_proba(enc_rows, batch_size=32)
            ms = 1000 * (time.perf_counter() - t0) / len(enc_rows)
            out[f"e5_{'int8' if int8 else 'fp32'}_ms_per_message_batched"] = round(ms, 2)
            kind = "int8" if int8 else "fp32"
            print(json.dumps({f"e5 {kind} ms/message (2 threads, batches of 32)": round(ms, 2)}), flush=True)
    lat = {}
    for d in args.cascade or []:
        os.environ["CHUISHAO_ONNX_THREADS"] = "1"
        model = load_model(d)
        model.warm_up()
        one = rows[:args.latency_rows]
        times, rescored = [], 0
        gate = getattr(model, "params", None)
        for r in one:
            t0 = time.perf_counter()
            model.route([r["text"]], titles=[r.get("title")])
            times.append(1000 * (time.perf_counter() - t0))
        if gate is not None:
            p = model.classical.predict_proba([r["text"] for r in one], titles=[r.get("title") for r in one])
            rescored = int((p.max(1) < gate.gate).sum())
        lat[Path(d).name] = {"messages": len(one), "p50_ms": round(float(np.percentile(times, 50)), 1),
                             "p99_ms": round(float(np.percentile(times, 99)), 1), "mean_ms": round(float(np.mean(times)), 1),
                             "rescored_share": round(rescored / len(one), 3), "onnx_threads": 1}
        print(json.dumps({Path(d).name: lat[Path(d).name]}), flush=True)
    out["route_latency_single_message"] = lat
    _save(f"speed:{args.source.parent.name}/{args.source.name}", out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["quality", "speed"])
    ap.add_argument("--classical", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--e5", type=Path, help="ONNX folder of the encoder (export-onnx)")
    ap.add_argument("--cascade", type=Path, action="append", help="cascade directory (repeatable)")
    ap.add_argument("--data", type=Path, default=SHARED / "whistle" / "test.jsonl")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--source", type=Path, default=SHARED / "corpus.jsonl", help="messages to time (speed)")
    ap.add_argument("--encoder-rows", type=int, default=500)
    ap.add_argument("--latency-rows", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    quality(args) if args.what == "quality" else speed(args)


if __name__ == "__main__":
    main()
